//! A strategy's persistence, one tick at a time: the state checkpoint, the tick's trades, a
//! positions snapshot (the one position record) and metric points commit in one transaction,
//! so a crash never leaves a portfolio that counts fills missing from the trade log. A writer
//! lease keeps one process per deployment.
//!
//! Pure logic on tierstate's record primitives: no SQL, so it works on every backend. Through
//! the front door (`tierstate::Tierstate::strategy`) its state reads go through HOT and the
//! payload migrations, and its ticks through the one commit path.
//!
//! ```
//! use std::sync::Arc;
//! use tierstate_core::{DeploymentId, InMemoryStore};
//! use tierstate_strategy::{StrategyState, StrategyStore, Tick};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = StrategyStore::<StrategyState>::new(
//!     Arc::new(InMemoryStore::new()),
//!     &DeploymentId::new("mm-1")?,
//! );
//! let state = StrategyState::default();
//! let time = chrono::Utc::now();
//! let first = store
//!     .tick(Tick { time, expected: None, state: &state, trades: &[], positions: None, metrics: &[("nav", 1.0)] })
//!     .await?;
//! assert_eq!(store.load().await?.unwrap().version, first.version);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod lease;
mod store;

pub use lease::{LEASE, Lease};
pub use store::{
    Checkpoint, Holdings, METRIC_PREFIX, MetricPoint, POSITIONS, PositionsSnapshot, Side,
    StrategyState, StrategyStore, TRADES, Tick, TickCommitted, TickPlan, Trade, TradeCursor,
    TradePage,
};
pub use tierstate_positions::PositionRecord;
