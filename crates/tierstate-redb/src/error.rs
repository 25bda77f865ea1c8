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
