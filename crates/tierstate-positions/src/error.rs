//! The errors of the positions crate: typed, naming what was wrong and where.

/// What can go wrong with positions, their persistence and their reconciliation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PositionError {
    /// A chain the book was not configured with.
    #[error("chain {chain:?} is not configured (configured: {configured:?})")]
    ChainNotFound {
        /// The chain asked for.
        chain: String,
        /// The chains the book has.
        configured: Vec<String>,
    },
    /// The same chain named twice when building a book.
    #[error("chain {0:?} is configured twice")]
    DuplicateChain(String),
    /// A position type string that is none of the known ones.
    #[error(
        "unknown position type {value:?} (expected one of token, lp, borrow, supply, perp, vault)"
    )]
    UnknownPositionType {
        /// The string found.
        value: String,
    },
    /// A money or amount field that is not a decimal number.
    #[error("{field}: {value:?} is not a decimal number")]
    InvalidDecimal {
        /// The field.
        field: &'static str,
        /// What it held.
        value: String,
    },
    /// Any other bad argument or field; nothing was changed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument or field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A stored book written by a newer build: refused rather than misread.
    #[error(
        "the stored position book is schema {found}; this build reads up to {supported}: upgrade tierstate"
    )]
    NewerSchema {
        /// The schema found.
        found: u64,
        /// The newest this build reads.
        supported: u64,
    },
    /// The venue could not report its positions; nothing was changed.
    #[error("venue {venue}: {reason}")]
    Venue {
        /// Which venue.
        venue: String,
        /// What it said.
        reason: String,
        /// Whether asking again may succeed (timeouts, rate limits).
        retryable: bool,
    },
    /// Another writer kept changing the book while reconciliation retried.
    #[error("the position book kept changing: gave up after {attempts} attempts")]
    Contended {
        /// Attempts made.
        attempts: u32,
    },
    /// The store refused or failed (conflicts, integrity, I/O).
    #[error(transparent)]
    Store(#[from] tierstate_core::Error),
}

impl PositionError {
    /// An [`PositionError::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

/// Result of this crate.
pub type Result<T, E = PositionError> = std::result::Result<T, E>;
