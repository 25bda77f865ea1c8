//! SQLite WARM backend for tierstate.
//!
//! Durable by default: WAL journal with `synchronous=FULL`, so a save that returned `Ok` has
//! survived `kill -9` and power loss of the process. One writer thread owns the only write
//! connection and commits concurrent writes together (group commit: one transaction, one fsync,
//! each caller still gets its own result); reads run on a pool of reader connections on tokio's
//! blocking pool. Several processes may share one file: `BEGIN IMMEDIATE` plus a busy timeout
//! keep compare-and-swap exact across them.
//!
//! ```no_run
//! # async fn demo() -> tierstate_core::Result<()> {
//! use tierstate_sqlite::{SqliteConfig, SqliteStore};
//! let store = SqliteStore::open(SqliteConfig::new("strategies.db")).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod reader;
mod schema;
mod store;
mod writer;

pub use config::{SqliteConfig, Synchronous};
pub use schema::{
    SCHEMA_VERSION, STEPS, create_at_version, pending_steps, schema_sql, steps_after,
};
pub use store::SqliteStore;
