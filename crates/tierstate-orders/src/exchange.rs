//! What the reconciliation engine needs from a venue: place (with a client order id), modify,
//! cancel, query by client id, list open orders; errors typed by what they mean for the
//! order's fate.

use async_trait::async_trait;
use rust_decimal::Decimal;

use crate::model::{Fill, OrderSpec};

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

/// Where an order stands on the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueStatus {
    /// On the book (possibly partly filled).
    Open,
    /// Completely filled.
    Filled,
    /// Cancelled.
    Cancelled,
    /// Expired (an IOC remainder).
    Expired,
}

/// An order as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VenueOrder {
    /// The venue's id.
    pub exchange_order_id: String,
    /// The client order id it was placed with.
    pub client_order_id: String,
    /// The order as it stands (price and size after any modify).
    pub spec: OrderSpec,
    /// Where it stands.
    pub status: VenueStatus,
    /// Every fill so far.
    pub fills: Vec<Fill>,
}

impl VenueOrder {
    /// Filled size.
    pub fn filled(&self) -> Decimal {
        self.fills.iter().map(|f| f.size).sum()
    }
}

/// A trading venue.
#[async_trait]
pub trait Exchange: Send + Sync {
    /// Places `spec` under `client_order_id`; a second place with the same id is `Duplicate`.
    async fn place(
        &self,
        client_order_id: &str,
        spec: &OrderSpec,
    ) -> Result<VenueOrder, ExchangeError>;
    /// Changes an open order's price and size (size not below what has filled).
    async fn modify(
        &self,
        exchange_order_id: &str,
        price: Option<Decimal>,
        size: Decimal,
    ) -> Result<VenueOrder, ExchangeError>;
    /// Cancels an open order.
    async fn cancel(&self, exchange_order_id: &str) -> Result<VenueOrder, ExchangeError>;
    /// The order placed with this client id, if the venue has it.
    async fn query(&self, client_order_id: &str) -> Result<Option<VenueOrder>, ExchangeError>;
    /// The open orders, optionally of one symbol.
    async fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<VenueOrder>, ExchangeError>;
    /// The smallest order size the venue takes on `symbol`: an intent with less than this
    /// left to trade is done. Zero unless the venue says otherwise.
    fn min_size(&self, _symbol: &str) -> Decimal {
        Decimal::ZERO
    }
}
