//! What the reconciliation engine needs from a venue: place (with a client order id), modify,
//! cancel, query by client id, list open orders. A venue reports each order as the one
//! [`Order`], with its exchange id and its status as the venue sees it (live or partly filled
//! while on the book, then filled, cancelled or expired); its failures are [`ExchangeError`].

use async_trait::async_trait;
use rust_decimal::Decimal;

pub use crate::error::ExchangeError;
use crate::order::{Order, OrderSpec};

/// A trading venue.
#[async_trait]
pub trait Exchange: Send + Sync {
    /// Places `spec` under `client_order_id`; a second place with the same id is `Duplicate`.
    async fn place(&self, client_order_id: &str, spec: &OrderSpec) -> Result<Order, ExchangeError>;
    /// Changes an open order's price and size (size not below what has filled).
    async fn modify(
        &self,
        exchange_order_id: &str,
        price: Option<Decimal>,
        size: Decimal,
    ) -> Result<Order, ExchangeError>;
    /// Cancels an open order.
    async fn cancel(&self, exchange_order_id: &str) -> Result<Order, ExchangeError>;
    /// The order placed with this client id, if the venue has it.
    async fn query(&self, client_order_id: &str) -> Result<Option<Order>, ExchangeError>;
    /// The open orders, optionally of one symbol.
    async fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<Order>, ExchangeError>;
    /// The smallest order size the venue takes on `symbol`: an intent with less than this
    /// left to trade is done. Zero unless the venue says otherwise.
    fn min_size(&self, _symbol: &str) -> Decimal {
        Decimal::ZERO
    }
}
