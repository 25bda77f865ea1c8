//! Mapping redb failures to tierstate's typed errors.

use tierstate_core::{BackendErrorKind, Error};

pub(crate) const BACKEND: &str = "redb";

/// Classifies a redb error. An earlier I/O error poisons redb's handle (`PreviousIo`): that is
/// reported as `Io` with the instruction to reopen.
pub(crate) fn map(e: impl Into<redb::Error>) -> Error {
    let e: redb::Error = e.into();
    let (kind, message) = match &e {
        redb::Error::DatabaseAlreadyOpen => (
            BackendErrorKind::Locked,
            "the file is already open in another process (redb allows one process per file)"
                .to_owned(),
        ),
        redb::Error::PreviousIo => (
            BackendErrorKind::Io,
            "an earlier I/O error poisoned this redb handle; reopen the store".to_owned(),
        ),
        redb::Error::Io(_) | redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_) => {
            (BackendErrorKind::Io, e.to_string())
        }
        redb::Error::DatabaseClosed => (BackendErrorKind::Closed, e.to_string()),
        _ => (BackendErrorKind::Other, e.to_string()),
    };
    Error::Backend {
        backend: BACKEND,
        kind,
        message,
        source: Some(Box::new(e)),
    }
}

/// The error a caller gets when the writer thread is gone.
pub(crate) fn closed() -> Error {
    tierstate_core::group::closed(BACKEND)
}

/// The error a write to a store opened read-only gets.
pub(crate) fn read_only() -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: "this store was opened read-only: it takes no writes".into(),
        source: None,
    }
}

std::thread_local! {
    /// Set while this thread runs redb code under [`guarded`].
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic inside redb (damage its decoders do not expect, e.g. a flipped
/// bit in a key) into a `Corrupt` error naming the file.
pub(crate) fn guarded<T>(
    file: &std::path::Path,
    f: impl FnOnce() -> tierstate_core::Result<T>,
) -> tierstate_core::Result<T> {
    let outer = GUARDED.with(|g| g.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    r.unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into());
        Err(Error::Corrupt {
            backend: BACKEND,
            location: file.display().to_string(),
            detail: format!("the file is damaged: redb failed reading it ({why})"),
        })
    })
}

/// Installs a panic hook (once, chaining to the previous one) that stays silent for panics
/// the store turns into `Corrupt` errors: a command-line tool then reports damage in its own
/// words instead of a panic message. Other panics print as before.
pub fn quiet_engine_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}
