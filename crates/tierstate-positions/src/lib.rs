//! Positions of a trading strategy across chains and venues: exact decimal records, totals
//! that separate net value from gross exposure, a book persisted as one versioned document,
//! and reconciliation against what a venue reports.
//!
//! Pure logic on tierstate's record primitives (documents, journals, one atomic batch): no
//! SQL here, so it works on every backend.
//!
//! ```
//! use rust_decimal::Decimal;
//! use tierstate_positions::{PositionBook, PositionRecord, PositionType};
//!
//! let mut book = PositionBook::new(["ethereum", "solana"])?;
//! book.upsert(PositionRecord::new("eth", "ethereum", PositionType::Token, "ETH",
//!     "2.50".parse()?, "8000.00".parse()?)?)?;
//! book.upsert(PositionRecord::new("usdc-loan", "ethereum", PositionType::Borrow, "USDC",
//!     "3000".parse()?, "3000.00".parse()?)?)?;
//! let totals = book.totals();
//! assert_eq!(totals.all.net_usd, "5000.00".parse::<Decimal>()?);   // what is owned
//! assert_eq!(totals.all.gross_usd, "11000.00".parse::<Decimal>()?); // what is exposed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod apply;
mod book;
mod error;
mod kind;
mod reconcile;
mod record;
mod store;
mod totals;

pub use apply::{BookReconciler, Mode, RECONCILIATION_STREAM, RunOutcome};
pub use book::{Filter, Missing, PositionBook};
pub use error::{PositionError, Result};
pub use kind::PositionType;
pub use reconcile::{
    Finding, Reconciled, ReconciliationReport, StalePolicy, Tolerance, Tolerances, VenuePosition,
    VenuePositions, VenueReport, reconcile,
};
pub use record::{MAX_MAGNITUDE, PositionRecord};
pub use rust_decimal::Decimal;
pub use store::{
    BOOK_KEY, BOOK_SCHEMA, BookChange, CHANGES, COLLECTION, PositionStore, SNAPSHOT_KEY, SavedBook,
};
pub use totals::{ChainSummary, Exposure, Totals};
