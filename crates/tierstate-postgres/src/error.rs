//! Classifying PostgreSQL failures: connection loss, timeouts and serialization failures are
//! retryable; constraint and integrity errors are not. Messages never carry the password.

use tierstate_core::{BackendErrorKind, Error};

use crate::config::redact;

pub(crate) const BACKEND: &str = "postgres";

/// Maps a sqlx error.
pub(crate) fn map(e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::PoolTimedOut => BackendErrorKind::Timeout,
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => BackendErrorKind::Closed,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => BackendErrorKind::Unavailable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // serialization_failure, deadlock_detected, lock_not_available
            Some("40001" | "40P01" | "55P03") => BackendErrorKind::Busy,
            // query_canceled (statement timeout)
            Some("57014") => BackendErrorKind::Timeout,
            // admin/crash shutdown, cannot connect now, connection exceptions
            Some(c) if c.starts_with("08") || c.starts_with("57P") => BackendErrorKind::Unavailable,
            _ => BackendErrorKind::Other,
        },
        _ => BackendErrorKind::Other,
    };
    Error::Backend {
        backend: BACKEND,
        kind,
        message: redact(&e.to_string()),
        source: Some(Box::new(e)),
    }
}
