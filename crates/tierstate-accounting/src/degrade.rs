//! Graceful reads, chosen per call: a failure becomes an empty result *and* is counted, so a
//! dashboard degrades visibly instead of reading "no data".

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::Result;

/// Counts the failures [`Degraded::or_default`] turned into empty results.
#[derive(Debug, Default)]
pub struct Degraded {
    failures: AtomicU64,
    last: Mutex<Option<String>>,
}

impl Degraded {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `result`, or `T::default()` after counting and logging its error. Use it
    /// only where an empty answer is acceptable; every call that needs the truth takes the
    /// `Result` itself.
    pub fn or_default<T: Default>(&self, what: &str, result: Result<T>) -> T {
        match result {
            Ok(v) => v,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(read = what, error = %e, "read failed; serving an empty result");
                *self.last.lock() = Some(format!("{what}: {e}"));
                T::default()
            }
        }
    }

    /// Failures turned into empty results so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The last of them, as text.
    pub fn last_failure(&self) -> Option<String> {
        self.last.lock().clone()
    }
}
