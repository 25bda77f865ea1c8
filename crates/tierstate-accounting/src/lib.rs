//! Accounting for a trading strategy: CLOB orders whose status can only move as the status
//! machine allows, portfolio snapshots with time queries that say what they mean, a NAV series
//! whose high-water mark and drawdown are kept current in one document, baseline metrics for
//! PnL net of deposits and withdrawals, a transaction ledger with running totals, a position
//! registry whose rows only move forward (committed atomically with their ledger entry), and
//! position and accounting events.
//!
//! Pure logic on tierstate's record primitives (documents, journals, one atomic batch): no
//! SQL here, so it works on every backend. Money is [`Decimal`], never `f64`; times are UTC
//! at microsecond precision, never compared as text.
//!
//! ```
//! use rust_decimal::Decimal;
//! use tierstate_accounting::{ClobFill, ClobOrder, OrderStatus, OrderType, Side};
//!
//! let t = chrono::Utc::now();
//! let mut o = ClobOrder::new("ord-1", "eth-basis", "ETH-USD", "ETH", Side::Buy,
//!     OrderType::Gtc, "2500".parse()?, "2".parse()?, t)?;
//! o.set_status(OrderStatus::Submitted, t, None)?;
//! o.apply_fill(ClobFill::new("f-1", "ord-1", "2499".parse()?, "0.5".parse()?, Decimal::ZERO, t)?)?;
//! assert_eq!(o.status, OrderStatus::PartiallyFilled);
//! assert!(o.set_status(OrderStatus::Pending, t, None).is_err()); // not in the table
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod amount;
mod clob;
mod degrade;
mod error;
mod events;
mod ledger;
mod metrics;
mod nav;
mod order;
mod portfolio;
mod registry;
mod retry;
mod snapshot;
mod time;

pub use amount::Amount;
pub use clob::{
    BY_INTENT, CLOSED, ClobOrders, ClosedCursor, ClosedPage, FillRecorded, OPEN, ORDER_SCHEMA,
    ORDERS, OrderChange, StoredOrder,
};
pub use degrade::Degraded;
pub use error::{AccountingError, CommitFailure, Result};
pub use events::{
    ACCOUNTING_EVENTS, AccountingEvent, AccountingEventKind, EVENT_SCHEMA, EventFilter, EventSaved,
    Events, MIGRATIONS, MigrationState, POSITION_EVENTS, POSITION_LOG, PositionEvent,
    PositionEventType, PositionLookup, PositionRef, StoredEvent,
};
pub use ledger::{
    LEDGER, LEDGER_SCHEMA, Ledger, LedgerBatchChange, LedgerChange, LedgerCursor, LedgerEntry,
    LedgerPage, LedgerQuery, LedgerStats, Recorded, STATS_KEY, StoredLedgerEntry,
};
pub use metrics::{PortfolioMetrics, pnl_between};
pub use nav::{NavCursor, NavFold, NavPage, NavPoint};
pub use order::{ClobFill, ClobOrder, FillOutcome, MAX_ID_LEN, OrderStatus, OrderType, Side};
pub use portfolio::{
    NavSummary, PORTFOLIO, PORTFOLIO_SCHEMA, Portfolio, SNAPSHOTS, Saved, SnapshotChange,
    SnapshotWindow, StoredMetrics,
};
pub use registry::{
    AUTO, CommitMode, HANDLES, OPEN_ROWS, REGISTRY_SCHEMA, ROWS, Registry, RegistryChange,
    RegistryCommitted, RegistryRow, RegistryStatus, RowFilter, StoredRow, row_key,
};
pub use rust_decimal::Decimal;
pub use snapshot::{ExecutionMode, Flows, PortfolioSnapshot, ValueConfidence};
pub use time::{parse_utc, truncate_to_micros};
