//! The errors of the orders crate: typed, naming the order and what was wrong. A venue's own
//! failures are [`ExchangeError`], typed by what they say about the order's fate.

use rust_decimal::Decimal;

/// A venue's failure, typed by what it says about the order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// Refused: the order is not on the book (a retry with the same request fails the same).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The client order id is already used on the venue (the first send arrived).
    #[error("duplicate client order id {0}")]
    Duplicate(String),
    /// The request may or may not have taken effect (a timeout after sending): resolve by
    /// querying, never by resending blindly.
    #[error("unknown outcome: {0}")]
    Unknown(String),
    /// The venue could not be reached: the request did not take effect.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No such order on the venue.
    #[error("no order {0} on the venue")]
    NotFound(String),
}

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
    /// An order that is not stored.
    #[error("deployment {deployment}: no order {order}")]
    OrderNotFound {
        /// The deployment.
        deployment: String,
        /// The order id.
        order: String,
    },
    /// A status change the status machine does not allow; nothing changed.
    #[error("order {order}: {from} -> {to} is not allowed")]
    InvalidTransition {
        /// The order.
        order: String,
        /// Its status (`OrderStatus::as_str`).
        from: &'static str,
        /// The status asked for.
        to: &'static str,
    },
    /// A fill id already recorded on the order with other content.
    #[error("order {order}: fill {fill_id} is already recorded with other content")]
    FillConflict {
        /// The order.
        order: String,
        /// The fill id.
        fill_id: String,
    },
    /// A fill larger than what is left of the order.
    #[error("order {order}: fill {fill_id} of {fill_size} exceeds the {remaining} left")]
    Overfill {
        /// The order.
        order: String,
        /// The fill id.
        fill_id: String,
        /// The fill's size.
        fill_size: Decimal,
        /// What was left.
        remaining: Decimal,
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
    /// What core's codec said about a stored `record` (field `what`): a newer schema is
    /// refused as such, anything else is malformed input named `context` (its address).
    pub(crate) fn stored(
        what: &'static str,
        record: &str,
        context: impl std::fmt::Display,
        e: tierstate_core::codec::DecodeError,
    ) -> Self {
        match e {
            tierstate_core::codec::DecodeError::Newer { found, supported } => Self::NewerSchema {
                record: record.to_owned(),
                found,
                supported,
            },
            tierstate_core::codec::DecodeError::Malformed(m) => {
                Self::invalid(what, format!("{context}: {m}"))
            }
        }
    }

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
