//! One tokio runtime per process, created on first use. tokio is not fork-safe: a forked child
//! that inherits it is refused with the remedy (the `spawn` start method), as delta-rs does.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::prelude::*;

static RUNTIME: OnceLock<(u32, tokio::runtime::Runtime)> = OnceLock::new();

/// Runs `fut` to completion on the process's runtime with the GIL released.
///
/// # Errors
/// A `TierstateError` in a forked child, or if the runtime cannot start.
pub fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    let rt = runtime()?;
    Ok(py.detach(|| rt.block_on(fut)))
}

fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    let (pid, rt) = match RUNTIME.get() {
        Some(r) => r,
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tierstate")
                .enable_all()
                .build()
                .map_err(|e| crate::errors::base(format!("cannot start the runtime: {e}")))?;
            let _ = RUNTIME.set((std::process::id(), rt));
            RUNTIME.get().expect("just set")
        }
    };
    if *pid != std::process::id() {
        return Err(crate::errors::base(
            "tierstate was used before this process forked, and its runtime does not survive \
             a fork: use multiprocessing's \"spawn\" start method \
             (multiprocessing.set_start_method(\"spawn\")) or open tierstate only in the child"
                .into(),
        ));
    }
    Ok(rt)
}
