//! The errors of the orders crate: typed, naming the order and what was wrong.

use crate::exchange::ExchangeError;

/// What can go wrong with intents, actual orders, events and reconciliation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// A bad argument or stored field; nothing was changed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument or field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An intent that is not stored.
    #[error("deployment {deployment}: no intent {intent}")]
    IntentNotFound {
        /// The deployment.
        deployment: String,
        /// The intent id.
        intent: String,
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
    /// The stored order and the fold of its events disagree.
    #[error("order {intent}: stored state and its event journal disagree ({detail})")]
    Diverged {
        /// The intent id.
        intent: String,
        /// What differs.
        detail: String,
    },
    /// Other writers kept winning the compare-and-swap while this call retried.
    #[error("{what} kept changing: gave up after {attempts} attempts ({last})")]
    Contended {
        /// What was contended.
        what: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last conflict.
        last: String,
    },
    /// The exchange refused or failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The store refused or failed (conflicts carry expected and actual versions).
    #[error(transparent)]
    Store(#[from] tierstate_core::Error),
}

impl OrdersError {
    /// An [`OrdersError::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// True for a lost compare-and-swap (a conflict, or a create that lost a race): re-read
    /// and decide again.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Store(tierstate_core::Error::Conflict { .. })
                | Self::Store(tierstate_core::Error::AlreadyExists { .. })
        )
    }
}

/// Result of this crate.
pub type Result<T, E = OrdersError> = std::result::Result<T, E>;
