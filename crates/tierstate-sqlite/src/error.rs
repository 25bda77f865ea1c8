//! Mapping SQLite failures to tierstate's typed errors.

use rusqlite::ErrorCode;
use tierstate_core::{BackendErrorKind, Error};

pub(crate) const BACKEND: &str = "sqlite";

/// Classifies a rusqlite error: busy/locked are retryable, file problems are `Io`.
pub(crate) fn map(e: rusqlite::Error) -> Error {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BackendErrorKind::Busy,
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::FileLockingProtocolFailed,
        ) => BackendErrorKind::Io,
        _ => BackendErrorKind::Other,
    };
    Error::backend(BACKEND, kind, e)
}

/// The error a caller gets when the writer thread or the reader pool is gone.
pub(crate) fn closed() -> Error {
    tierstate_core::group::closed(BACKEND)
}

/// A stored value that cannot be what tierstate wrote (negative version and the like).
pub(crate) fn bad_row(what: impl Into<String>) -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: format!("unexpected stored value: {}", what.into()),
        source: None,
    }
}
