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
        message: redact(&message(&e)),
        source: Some(Box::new(e)),
    }
}

/// What the server said, for people: its message, SQLSTATE and detail. sqlx's own text ends
/// in the line of the *server's* C source that raised it ("at line 3211"), which tells an
/// operator nothing.
pub(crate) fn message(e: &sqlx::Error) -> String {
    let sqlx::Error::Database(db) = e else {
        return e.to_string();
    };
    let mut out = format!("error returned from database: {}", db.message());
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        out.push_str(&format!(" (SQLSTATE {})", pg.code()));
        if let Some(d) = pg.detail() {
            out.push_str(&format!("; {d}"));
        }
        if let Some(h) = pg.hint() {
            out.push_str(&format!("; hint: {h}"));
        }
    }
    out
}

/// An error raised before the transaction began: nothing was applied.
pub(crate) fn not_applied(e: sqlx::Error) -> Error {
    match map(e) {
        Error::Backend {
            kind: BackendErrorKind::Timeout | BackendErrorKind::Unavailable,
            message,
            source,
            ..
        } => Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Unavailable,
            message,
            source,
        },
        other => other,
    }
}

/// An error raised once a write transaction was under way: an I/O failure may have happened
/// after the server committed, so the outcome is unknown.
pub(crate) fn in_flight(e: sqlx::Error) -> Error {
    match map(e) {
        Error::Backend {
            kind: BackendErrorKind::Unavailable,
            message,
            source,
            ..
        } => Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::ConnectionLost,
            message,
            source,
        },
        other => other,
    }
}

/// SQLSTATEs after which the transaction certainly rolled back and a rerun sees the winner.
pub(crate) fn lost_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("23505" | "40P01" | "40001")))
}
