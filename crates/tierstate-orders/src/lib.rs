//! Orders that are never placed twice: durable intents (what a strategy wants) beside the
//! actual state of each order (what the venue has), a reconciliation engine that brings one
//! in line with the other, an append-only event journal per order that rebuilds its state,
//! and an in-process exchange with a seeded fault plan to prove it all against.
//!
//! Pure logic on tierstate's record primitives (documents, journals, one atomic batch): no
//! SQL, so it runs on every backend. Every change of an intent or an actual order commits in
//! one batch with its indexes and an event in the order's journal.
//!
//! ```
//! use std::sync::Arc;
//! use rust_decimal::Decimal;
//! use tierstate_core::{DeploymentId, InMemoryStore};
//! use tierstate_orders::{
//!     FaultPlan, OrderStatus, OrderIntent, OrderSpec, OrderStore, Reconciler, Side, SimExchange,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let orders = OrderStore::new(Arc::new(InMemoryStore::new()), &DeploymentId::new("mm-1")?);
//! let venue = Arc::new(SimExchange::new(FaultPlan::none()));
//! let spec = OrderSpec::limit("ETH-USD", Side::Buy, "2500".parse()?, "1".parse()?)?;
//! orders.create_intent(&OrderIntent::new("bid-1", "mm-1", spec, chrono::Utc::now())?).await?;
//! let engine = Reconciler::new(orders.clone(), venue.clone(), Decimal::ZERO);
//! engine.reconcile_all().await?; // places the order, durable before the send
//! venue.maker("ETH-USD", Side::Sell, "2500".parse()?, "1".parse()?)?; // someone sells into it
//! engine.reconcile_all().await?; // records the fill, marks the intent done
//! let actual = orders.actual("bid-1").await?.unwrap();
//! assert_eq!(actual.order.status, OrderStatus::Filled);
//! orders.verify("bid-1").await?; // the stored order equals the fold of its journal
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod clob;
mod engine;
mod error;
mod event;
mod exchange;
mod intent;
mod order;
mod retry;
mod sim;
mod store;
mod venue_file;

pub use clob::{
    BY_INTENT, CLOSED, ClobOrder, ClobOrders, ClosedCursor, ClosedPage, FillRecorded, OPEN,
    ORDER_SCHEMA, ORDERS, OrderChange, StoredOrder,
};
pub use engine::{Action, EngineHandle, EngineMetrics, EngineStatus, Pass, Reconciler};
pub use error::{OrdersError, Result};
pub use event::{OrderEvent, Rebuilt, fold};
pub use exchange::{Exchange, ExchangeError};
pub use intent::{IntentStatus, OrderIntent, client_order_id};
pub use order::{
    Fill, FillOutcome, MAX_ID_LEN, Order, OrderKind, OrderSpec, OrderStatus, PriorFills, Side,
    TimeInForce,
};
pub use retry::{RetryPolicy, retry_on_conflict};
pub use sim::{FaultPlan, SimExchange};
pub use store::{
    ORDER_DOC_RETENTION, ORDERS_SCHEMA, OrderPlan, OrderStore, ReconStatus, StoredActual,
    StoredIntent,
};
