//! PostgreSQL WARM backend for tierstate: one database shared by many strategy processes on
//! many machines.
//!
//! A batch over heads this process already knows (it committed them, see `heads.rs`) is
//! planned from them and stored in one autocommit statement whose guards refuse any head that
//! moved meanwhile (`statement.rs`): one round trip. Any other batch, or one a guard refused, is
//! a transaction that locks the heads it depends on, lets the core planner decide, and stores
//! the plan with the same statement. A lone state update commits on the caller's task, or is
//! grouped with the updates queued beside it into one statement per group (see `lane.rs`);
//! one-round-trip writes use a connection kept beside the pool when it is free (`fast.rs`).
//! Sessions run with sequential and bitmap scans off: every statement reaches rows by key. The
//! canonical
//! JSON bytes are stored as `BYTEA`, exactly the bytes the checksum covers. The schema is
//! versioned with embedded sqlx migrations, applied on connect under sqlx's advisory lock; a
//! database migrated by a newer tierstate is refused. Every commit publishes
//! `(deployment, version)` with `NOTIFY`, and [`PostgresStore`] offers the feed so managers in
//! other processes evict stale HOT entries.
//!
//! ```no_run
//! # async fn demo() -> tierstate_core::Result<()> {
//! use tierstate_core::StateStore;
//! use tierstate_postgres::{PostgresConfig, PostgresStore};
//!
//! // One schema per fleet; the password never appears in an error or a log line.
//! let config = PostgresConfig::new("postgres://trader:secret@db:5432/strategies")
//!     .schema("fleet_a")?
//!     .application_name("grid-btc");
//! let store = PostgresStore::connect(config).await?;
//! // Every other process's commits arrive here as (deployment, version) events.
//! let mut feed = store.changes().expect("listening is on by default");
//! # let _ = feed.events.recv().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod config;
mod connect;
mod error;
mod fast;
mod heads;
#[cfg(feature = "test-hooks")]
mod hooks;
mod lane;
mod listener;
mod notify;
mod records;
mod restore;
mod schema;
mod statement;
mod store;
mod write;

pub use config::PostgresConfig;
pub use notify::NOTIFY_CHANNEL;
pub use schema::PostgresSchema;
pub use store::PostgresStore;
