//! The errors of the accounting crate: typed, naming what was wrong and where.

use chrono::{DateTime, Utc};

/// Why [`AccountingError::Commit`] failed, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitFailure {
    /// The registry row may not move to that status.
    Transition,
    /// Another open row holds the handle.
    HandleTaken,
    /// Another open handle-less row holds the group.
    AutoModeCollision,
    /// The ledger id is stored with different content.
    LedgerConflict,
    /// A bad argument.
    InvalidInput,
    /// Other writers kept winning.
    Contended,
    /// The store refused or failed.
    Backend,
}

impl CommitFailure {
    /// The kind of `cause`.
    pub fn of(cause: &AccountingError) -> Self {
        match cause {
            AccountingError::RegistryTransition { .. } => Self::Transition,
            AccountingError::HandleTaken { .. } => Self::HandleTaken,
            AccountingError::AutoModeCollision { .. } => Self::AutoModeCollision,
            AccountingError::LedgerEntryConflict { .. } => Self::LedgerConflict,
            AccountingError::Contended { .. } => Self::Contended,
            AccountingError::Store(_) => Self::Backend,
            _ => Self::InvalidInput,
        }
    }
}

/// What can go wrong with the ledger, registry, events, snapshots and metrics. On every error nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountingError {
    /// A snapshot time already stored with different content; only `upsert` replaces one.
    #[error(
        "deployment {deployment} already has a different snapshot at {time}; use upsert to replace it"
    )]
    SnapshotExists {
        /// The deployment.
        deployment: String,
        /// The snapshot time.
        time: DateTime<Utc>,
    },
    /// A snapshot at or before the retention cut: it would be removed at once.
    #[error("snapshot time {time} is at or before the retention cut {cut}")]
    BeforeRetention {
        /// The snapshot time.
        time: DateTime<Utc>,
        /// Everything before this was removed.
        cut: DateTime<Utc>,
    },
    /// An incremental NAV read from a cursor taken before the series was rewritten (a
    /// back-filled, replaced or removed snapshot): fold again from the start.
    #[error(
        "the NAV series was rewritten since the cursor (epoch {cursor} -> {current}): read it again from the start"
    )]
    SeriesRewritten {
        /// The cursor's epoch.
        cursor: u64,
        /// The series' epoch now.
        current: u64,
    },
    /// A string from storage or a caller that names no known value (side, status, type, …).
    #[error("unknown {field} {value:?} (expected one of {expected})")]
    UnknownValue {
        /// What it was meant to be.
        field: &'static str,
        /// What it held.
        value: String,
        /// The accepted spellings.
        expected: &'static str,
    },
    /// A time given as text that is not RFC 3339 with an offset, or out of range.
    #[error("{field}: {value:?} is not a usable time: {reason}")]
    InvalidTime {
        /// The field.
        field: &'static str,
        /// What it held.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// Any other bad argument or stored field; nothing was changed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument or field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A stored record written by a newer build: refused rather than misread.
    #[error("{record} is schema {found}; this build reads up to {supported}: upgrade tierstate")]
    NewerSchema {
        /// Which record.
        record: String,
        /// The schema found.
        found: u64,
        /// The newest this build reads.
        supported: u64,
    },
    /// Other writers kept winning the compare-and-swap while this call retried.
    #[error("{what} kept changing: gave up after {attempts} attempts")]
    Contended {
        /// What was contended.
        what: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// A ledger entry id that is stored with different content (a retry is a new entry
    /// that names the failed one in `retry_of`, never an overwrite).
    #[error("deployment {deployment}: ledger entry {id} is stored (#{seq}) with different content")]
    LedgerEntryConflict {
        /// The deployment.
        deployment: String,
        /// The entry id.
        id: String,
        /// Where the stored one is.
        seq: u64,
    },
    /// A registry status change the lifecycle does not allow (see `RegistryStatus`).
    #[error("deployment {deployment}: registry row {row}: {} -> {to} is not an allowed transition", from.unwrap_or("(no row)"))]
    RegistryTransition {
        /// The deployment.
        deployment: String,
        /// The row's key.
        row: String,
        /// Its status (`None`: no row).
        from: Option<&'static str>,
        /// The status asked for.
        to: &'static str,
    },
    /// A handle an open row holds, claimed by another row.
    #[error(
        "deployment {deployment}: handle {handle} ({category}) is held by open row {held_by}; {claimed_by} cannot claim it"
    )]
    HandleTaken {
        /// The deployment.
        deployment: String,
        /// The accounting category.
        category: String,
        /// The handle.
        handle: String,
        /// The open row holding it.
        held_by: String,
        /// The row that asked for it.
        claimed_by: String,
    },
    /// A second open handle-less row for one (chain, category, grouping key).
    #[error(
        "deployment {deployment}: open handle-less row {existing} already holds this group; {new} would collide (give it a handle)"
    )]
    AutoModeCollision {
        /// The deployment.
        deployment: String,
        /// The open row holding the group.
        existing: String,
        /// The row refused.
        new: String,
    },
    /// An atomic ledger + registry commit failed; nothing was written.
    #[error("deployment {deployment}: ledger+registry commit failed ({kind:?}): {cause}")]
    Commit {
        /// What kind of failure.
        kind: CommitFailure,
        /// The deployment.
        deployment: String,
        /// The failure.
        cause: Box<AccountingError>,
    },
    /// An accounting event id stored with different content.
    #[error("deployment {deployment}: accounting event {event} is stored with different content")]
    EventConflict {
        /// The deployment.
        deployment: String,
        /// The event id.
        event: String,
    },
    /// A position event that is not stored.
    #[error("deployment {deployment}: position event {event} is not stored")]
    EventNotFound {
        /// The deployment.
        deployment: String,
        /// The event id.
        event: String,
    },
    /// A registry lookup that found no row.
    #[error("deployment {deployment}: no registry row for {lookup}")]
    RowNotFound {
        /// The deployment.
        deployment: String,
        /// What was looked up.
        lookup: String,
    },
    /// A migration state row that does not exist.
    #[error("deployment {deployment}: no migration state for {primitive} / {cutover_key}")]
    MigrationStateMissing {
        /// The deployment.
        deployment: String,
        /// The primitive.
        primitive: String,
        /// The cutover key.
        cutover_key: String,
    },
    /// The store refused or failed (conflicts carry expected and actual versions; integrity
    /// failures name the record and tier).
    #[error(transparent)]
    Store(#[from] tierstate_core::Error),
}

impl AccountingError {
    /// An [`AccountingError::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// True for a compare-and-swap conflict: re-read and decide again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_conflict())
    }

    /// True if re-reading and planning again may succeed: a conflict, or a create that lost
    /// a race to another writer.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(e) if retryable(e))
    }
}

/// True for a store error that re-reading and planning again may cure.
pub(crate) fn retryable(e: &tierstate_core::Error) -> bool {
    matches!(
        e,
        tierstate_core::Error::Conflict { .. } | tierstate_core::Error::AlreadyExists { .. }
    )
}

/// Result of this crate.
pub type Result<T, E = AccountingError> = std::result::Result<T, E>;
