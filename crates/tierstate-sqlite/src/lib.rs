//! SQLite WARM backend for tierstate.
//!
//! Durable by default: WAL journal with `synchronous=FULL`, so a save that returned `Ok` has
//! survived `kill -9` and power loss of the process. One writer thread owns the only write
//! connection and commits concurrent writes together (group commit: one transaction, one fsync,
//! each caller still gets its own result), and a write that finds it idle is committed on the
//! calling thread instead, sparing two thread wake-ups ([`SqliteConfig::inline_writes()`];
//! [`SqliteStore::group_stats()`] counts both kinds); reads use a pool of reader connections, point reads
//! on the calling task and scans on tokio's blocking pool. A file belongs to one process by default (a second one is refused with a
//! typed `Locked` error); opened with [`Sharing::Shared`] in every process, several may share it:
//! `BEGIN IMMEDIATE` plus a busy timeout keep compare-and-swap exact across them, and a commit
//! probe keeps each process's HOT tier coherent with the others' commits.
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
#[cfg(feature = "test-hooks")]
mod hooks;
mod reader;
mod records;
mod schema;
mod sharing;
mod store;
mod writer;

pub use config::{DEFAULT_PAGE_SIZE, SqliteConfig, Synchronous};
pub use schema::{
    SCHEMA_VERSION, STEPS, SqliteSchema, create_at_version, pending_steps, schema_sql, steps_after,
};
pub use sharing::Sharing;
pub use store::SqliteStore;
