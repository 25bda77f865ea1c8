//! The one error type of tierstate.

use chrono::{DateTime, Utc};

use crate::{Checksum, DeploymentId, Name, Target, Tier};

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a backend, to tell transient failures from permanent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The database is locked or busy (another process holds the write lock past the timeout).
    Busy,
    /// The backend could not be reached before the operation began: nothing was applied.
    Unavailable,
    /// An operation exceeded its time limit.
    Timeout,
    /// The file or database cannot be opened or used (permissions, not a database, full disk).
    Io,
    /// The store has been closed (or its worker stopped) and takes no more work.
    Closed,
    /// Another process holds the file exclusively (redb allows one process per file).
    Locked,
    /// The connection failed during a write: it may or may not have committed. Reload, then
    /// retry.
    ConnectionLost,
    /// Anything else; not retryable.
    Other,
}

/// Every failure tierstate reports. Match on the variant; new variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed something tierstate refuses; nothing was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument or field was rejected.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The deployment (or the requested version of it) does not exist.
    #[error("deployment {deployment_id} not found")]
    NotFound {
        /// The deployment looked up.
        deployment_id: DeploymentId,
    },
    /// A create-only write found the record already present.
    #[error("{deployment_id}{target} already exists at version {actual}")]
    AlreadyExists {
        /// The deployment written.
        deployment_id: DeploymentId,
        /// Which of its records: the state, a document or a journal.
        target: Target,
        /// The version that is stored.
        actual: u64,
    },
    /// A compare-and-swap write expected a version that is not the stored one (for a journal:
    /// an optimistic append expected another last sequence number). Reload, re-apply the
    /// change and write again.
    #[error("version conflict on {deployment_id}{target}: expected {expected}, stored {}", fmt_actual(.actual))]
    Conflict {
        /// The deployment written.
        deployment_id: DeploymentId,
        /// Which of its records: the state, a document or a journal.
        target: Target,
        /// The version the writer expected to replace (a journal: the last sequence number).
        expected: u64,
        /// The version that is stored, `None` if the record does not exist (a journal: the
        /// last sequence number, 0 when empty).
        actual: Option<u64>,
    },
    /// Stored bytes do not match their checksum: the record was damaged after it was written.
    /// The record is never returned or cached; restore it from history or a backup.
    #[error(
        "integrity failure in {tier} tier for {deployment_id}{target} {}: checksum expected {expected}, computed {actual}", record_number(target, *version)
    )]
    Integrity {
        /// The deployment whose record is damaged.
        deployment_id: DeploymentId,
        /// Which of its records: the state, a document or a journal.
        target: Target,
        /// The tier that returned the damaged record.
        tier: Tier,
        /// The version of the damaged record (a journal: the sequence number).
        version: u64,
        /// The checksum stored with the record (hex), or a description if unreadable.
        expected: String,
        /// The checksum computed from the stored bytes (hex), or why they could not be decoded.
        actual: String,
    },
    /// The database was written by a newer tierstate; this binary refuses to touch it.
    #[error(
        "{backend} database schema version {found} is newer than this build supports ({supported}); upgrade tierstate"
    )]
    SchemaTooNew {
        /// Which backend.
        backend: &'static str,
        /// The schema version recorded in the database.
        found: u32,
        /// The newest schema version this build knows.
        supported: u32,
    },
    /// A state's payload schema is newer than this build's migrations know: it is refused,
    /// never returned or rewritten by an older binary.
    #[error(
        "state of {deployment_id} is at payload schema {found}, newer than this build's {supported}; upgrade the binary"
    )]
    PayloadTooNew {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The stored state's schema version.
        found: u32,
        /// The newest schema this build's registry knows.
        supported: u32,
    },
    /// This binary is older than the oldest one that can read the store's data: opening it
    /// would risk misreading or overwriting newer states.
    #[error(
        "payload schema {data_version} has been written to this store and is readable only by binaries at schema {oldest_reader} or newer; this binary is at {binary_version} (rolled back below rollback_safe_until)"
    )]
    RollbackUnsafe {
        /// The newest payload schema written to the store.
        data_version: u32,
        /// The oldest binary schema that can read it.
        oldest_reader: u32,
        /// This binary's schema version.
        binary_version: u32,
    },
    /// A payload migration step failed; the stored state is untouched.
    #[error("migrating {deployment_id} from payload schema {from} failed: {reason}")]
    MigrationFailed {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The schema version it is stored at.
        from: u32,
        /// Which step failed and why.
        reason: String,
    },
    /// An append reused an idempotency key of its stream with a different body: it is not a
    /// retry of the stored entry but a different event. Nothing was written.
    #[error(
        "idempotency key {key:?} of journal {deployment_id}/{stream} is already used by entry {seq} with checksum {stored}; this append's checksum is {given}"
    )]
    KeyReused {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The journal stream.
        stream: Name,
        /// The idempotency key.
        key: Name,
        /// The sequence number of the stored entry holding the key.
        seq: u64,
        /// Checksum of the stored entry's body.
        stored: Checksum,
        /// Checksum of the refused append's body.
        given: Checksum,
    },
    /// A read as of a time reaches further back than retention kept.
    #[error("{deployment_id}{target} is not retained as of {at}: retention pruned it")]
    NotRetained {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Which of its records.
        target: Target,
        /// The time asked for.
        at: DateTime<Utc>,
    },
    /// The storage engine found damage below tierstate's records (a page, an index, the
    /// file's own structure): reported, never a panic. Restore the file from a backup.
    #[error("integrity failure in the {backend} engine ({location}): {detail}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// The file or database.
        location: String,
        /// What the engine said.
        detail: String,
    },
    /// Another process holds the deployment's writer lease: one writer per deployment.
    #[error(
        "deployment {deployment_id} is being written by {holder} until {until} (one writer per deployment): stop that process or wait for its lease to expire"
    )]
    Held {
        /// The deployment.
        deployment_id: DeploymentId,
        /// Who holds it (process and host).
        holder: String,
        /// When its lease expires unless renewed.
        until: DateTime<Utc>,
    },
    /// The backend failed; [`Error::is_retryable`] says whether trying again may help.
    #[error("{backend} backend error ({kind:?}): {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// Transient or permanent.
        kind: BackendErrorKind,
        /// What the backend said.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A typed state could not be converted to or from JSON.
    #[error("state of {deployment_id} does not match the requested type: {source}")]
    Serialization {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// How a record's number reads: `v7` for a version, `#7` for a journal entry's sequence.
fn record_number(target: &Target, n: u64) -> String {
    match target {
        Target::Journal { .. } => format!("#{n}"),
        _ => format!("v{n}"),
    }
}

fn fmt_actual(actual: &Option<u64>) -> String {
    match actual {
        Some(v) => format!("v{v}"),
        None => "nothing (deployment absent)".to_owned(),
    }
}

impl Error {
    /// `Integrity` for a document whose head names a version with no stored row: damage to
    /// report, never to read as "absent".
    pub fn missing_version(address: &crate::DocAddr, version: u64) -> Self {
        Self::Integrity {
            deployment_id: address.deployment_id.clone(),
            target: crate::Target::document(address),
            tier: crate::Tier::Warm,
            version,
            expected: format!("version {version}, which the head names"),
            actual: "no row".into(),
        }
    }

    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Backend`] with a source error.
    pub fn backend(
        backend: &'static str,
        kind: BackendErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            backend,
            kind,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// True if the same call may succeed when simply tried again later: the backend was busy,
    /// unreachable or timed out. A [`Error::Conflict`] is not retryable as-is: reload first
    /// (see [`Error::is_conflict`]).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                kind: BackendErrorKind::Busy
                    | BackendErrorKind::Unavailable
                    | BackendErrorKind::Timeout
                    | BackendErrorKind::ConnectionLost,
                ..
            }
        )
    }

    /// True if the failed operation certainly changed nothing: invalid input, a CAS conflict, or
    /// a backend that was busy or unreachable before the write began.
    pub fn is_not_applied(&self) -> bool {
        matches!(
            self,
            Self::InvalidInput { .. }
                | Self::Conflict { .. }
                | Self::KeyReused { .. }
                | Self::AlreadyExists { .. }
                | Self::Held { .. }
                | Self::Backend {
                    kind: BackendErrorKind::Busy | BackendErrorKind::Unavailable,
                    ..
                }
        )
    }

    /// True for a compare-and-swap conflict: reload the state, re-apply, write again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True for damage: a record that fails its checksum or chain (`Integrity`), or damage
    /// the storage engine itself found (`Corrupt`).
    pub fn is_damage(&self) -> bool {
        matches!(self, Self::Integrity { .. } | Self::Corrupt { .. })
    }
}
