//! The paper market maker that is tierstate's main job: each tick the simulated market moves
//! and takers trade; the strategy syncs its orders through the reconciliation engine,
//! re-quotes around the mid, and books its fills. The state, trades, positions, metrics,
//! ledger entries and NAV snapshot of a tick commit in one transaction through the front door.
//! Kill it anywhere and run it again: it resumes, never places an order twice, never loses or
//! doubles a fill, and its audit checks the venue against the books.
//!
//! `tierstate demo` (the operator CLI) runs it and draws its NAV chart.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use clap::Parser;
//! use tierstate::StoreUrl;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     demo: tierstate_demo::DemoArgs,
//! }
//! let args = Cli::parse_from(["demo", "--ticks", "20", "--venue", "/tmp/demo.venue.json"]).demo;
//! let finished = tierstate_demo::run(&StoreUrl::parse("sqlite:/tmp/demo.db")?, &args).await?;
//! assert!(finished.disagreement.is_none());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
mod maker;
mod market;
mod run;

pub use error::{DemoError, Result};
pub use run::{DemoArgs, Finished, money, next_commands, run};
