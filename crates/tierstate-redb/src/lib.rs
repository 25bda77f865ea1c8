//! redb WARM backend for tierstate: pure Rust, no C toolchain, no SQL, one file.
//!
//! Commits use `Durability::Immediate` by default (fsync before `Ok`). One writer thread takes
//! every queued write into one transaction (group commit), and a write that finds it idle is
//! committed on the calling thread instead ([`RedbConfig::inline_writes()`];
//! [`RedbStore::group_stats()`] counts both kinds); reads run in MVCC snapshots, point
//! reads on the calling task and scans on tokio's blocking pool. redb allows one process per file: a second process gets a typed
//! `Locked` error instead of blocking. After an I/O error (a full disk) the store reopens the
//! file by itself, with backoff, losing no acknowledged write.
//!
//! ```no_run
//! # async fn demo() -> tierstate_core::Result<()> {
//! use tierstate_redb::{RedbConfig, RedbStore};
//! let store = RedbStore::open(RedbConfig::new("strategies.redb")).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod backup;
mod config;
mod error;
#[cfg(feature = "test-hooks")]
mod flaky;
mod handle;
#[cfg(feature = "test-hooks")]
mod hooks;
mod records;
mod store;
mod tables;
mod writer;

pub use config::{RedbConfig, RedbDurability};
pub use error::quiet_engine_panics;
#[cfg(feature = "test-hooks")]
pub use flaky::FlakyDevice;
pub use store::RedbStore;
pub use tables::{
    FORMAT_VERSION, Format1State, RedbSchema, STEPS, Step, create_format_1, pending_steps,
};
