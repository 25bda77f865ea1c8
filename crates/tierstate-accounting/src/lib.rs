//! Accounting for a trading strategy: a transaction ledger with running totals, a position
//! registry whose rows only move forward (committed atomically with their ledger entry),
//! portfolio snapshots with time queries that say what they mean, a NAV series whose
//! high-water mark and drawdown are kept current in one document, baseline metrics for PnL net
//! of deposits and withdrawals, and position and accounting events. Orders are the orders
//! crate's one order model; accounting books what they fill.
//!
//! Pure logic on tierstate's record primitives (documents, journals, one atomic batch): no
//! SQL here, so it works on every backend. Money is [`Decimal`], never `f64`; times are UTC
//! at microsecond precision, never compared as text.
//!
//! ```
//! use std::sync::Arc;
//! use tierstate_accounting::{ExecutionMode, Ledger, LedgerEntry, parse_utc};
//! use tierstate_core::{DeploymentId, InMemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ledger = Ledger::new(Arc::new(InMemoryStore::new()), &DeploymentId::new("eth-basis")?);
//! let at = parse_utc("at", "2026-11-21T10:00:00Z")?;
//! let swap = LedgerEntry::new("tx-1", "eth-basis", ExecutionMode::Paper, at, "SWAP", true)?;
//! ledger.append(&swap).await?;
//! ledger.append(&swap).await?; // the same entry again: recorded once
//! assert_eq!(ledger.stats().await?.count, 1);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod amount;
mod degrade;
mod error;
mod events;
mod ledger;
mod metrics;
mod nav;
mod portfolio;
mod registry;
mod retry;
mod snapshot;
mod text;
mod time;

pub use amount::Amount;
pub use degrade::Degraded;
pub use error::{AccountingError, CommitFailure, Result};
pub use events::{
    ACCOUNTING_EVENTS, AccountingEvent, AccountingEventKind, EVENT_SCHEMA, EventFilter, EventSaved,
    Events, MIGRATIONS, MigrationState, POSITION_EVENTS, POSITION_LOG, PositionEvent,
    PositionEventType, PositionLookup, PositionRef, RebuiltPosition, StoredEvent,
};
pub use ledger::{
    LEDGER, LEDGER_SCHEMA, Ledger, LedgerBatchChange, LedgerChange, LedgerCursor, LedgerEntry,
    LedgerPage, LedgerQuery, LedgerStats, Recorded, STATS_KEY, StoredLedgerEntry,
};
pub use metrics::{PortfolioMetrics, pnl_between};
pub use nav::{NavCursor, NavFold, NavPage, NavPoint};
pub use portfolio::{
    DEFAULT_SCAN_CAP, NavSummary, PORTFOLIO, PORTFOLIO_SCHEMA, Portfolio, SNAPSHOTS, Saved,
    SnapshotChange, SnapshotWindow, StoredMetrics,
};
pub use registry::{
    AUTO, CommitMode, HANDLES, OPEN_ROWS, REGISTRY_SCHEMA, ROWS, Registry, RegistryChange,
    RegistryCommitted, RegistryRow, RegistryStatus, RowFilter, StoredRow, row_key,
};
pub use rust_decimal::Decimal;
pub use snapshot::{ExecutionMode, Flows, PortfolioSnapshot, ValueConfidence};
/// Longest id, in bytes: the one id rule of every domain.
pub use tierstate_core::MAX_ID_LEN;
pub use time::{parse_utc, truncate_to_micros};
