//! tierstate keeps the state of automated trading strategies safe: versioned per deployment,
//! compare-and-swap on every write, SHA-256 verified on every durable read, cached in process.
//!
//! [`Tierstate`] is the front door: open it from a URL (`memory:`, `sqlite:PATH`, `redb:PATH`,
//! `postgres://…`) or a builder, and every domain of a deployment comes from it, so every write
//! takes its one commit path (HOT stays coherent, payload migrations apply, every operation is
//! metered and traced).
//!
//! * **HOT** (feature `hot`): a bounded in-process cache of `Arc`-shared records.
//! * **WARM**: a durable [`StateStore`]; SQLite (feature `sqlite`) is the embedded default,
//!   redb (feature `redb`) the pure-Rust one, PostgreSQL (feature `postgres`) the shared one.
//! * **Domains** on the same records, one feature each: `positions`, `accounting`, `orders`,
//!   `strategy` (one tick = one transaction).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> tierstate::Result<()> {
//! use serde_json::json;
//! use tierstate::{DeploymentId, Tierstate};
//!
//! let ts = Tierstate::open("memory:").await?;
//! let id = DeploymentId::new("btc-momentum")?;
//! let obj = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
//! let v1 = ts.state().create(&id, obj(json!({"position": "0"}))).await?;
//! let v2 = ts.state().update(&id, v1.version, obj(json!({"position": "0.5"}))).await?;
//! assert_eq!(ts.state().load(&id).await?.unwrap().version, v2.version);
//! assert_eq!(ts.metrics().latest(1)[0].domain, "state");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod builder;
mod bulk;
mod door;
mod figures;
mod handle;
mod hot;
mod manager;
pub mod metrics;
mod payload;
mod url;

pub use builder::StateManagerBuilder;
pub use bulk::{MigrationReport, migrate_states};
pub use figures::{FiguresPlan, StoreFigures};
#[cfg(feature = "accounting")]
pub use handle::DEFAULT_SNAPSHOT_RETENTION_DAYS;
pub use handle::Tierstate;
#[cfg(feature = "hot")]
pub use hot::HotConfig;
pub use manager::{StateManager, Versioned};
pub use metrics::{Metrics, Op, OpRecord, OpSummary, Outcome, TierSummary};
pub use payload::PAYLOAD_MARKER;
/// Writing a backup file whole or not at all.
pub use tierstate_core::backup;
/// Large bodies stored zstd-compressed: the threshold and its default.
pub use tierstate_core::compress;
/// A logical copy of every record into an empty store (what `tierstate copy` runs).
pub use tierstate_core::copy;
pub use tierstate_core::group::GroupStats;
/// Journals: queries, pages, and the damage a fault can do to an entry.
pub use tierstate_core::journal;
pub use tierstate_core::{
    Append, Appended, BackendErrorKind, BatchOp, Checksum, CommitProbe, Committed, DeploymentId,
    DocAddr, DocWrite, Document, Error, Fault, FaultSeam, InMemoryStore, JournalEntry, JournalInfo,
    JournalPage, JournalQuery, JournalTail, MAX_SCHEMA_VERSION, MAX_STATE_BYTES, MAX_STATE_DEPTH,
    Name, Plan, PutMode, Result, Retention, SchemaMigrate, SchemaStatus, SchemaStep, Side,
    StateData, StateStore, StateWrite, StreamAddr, Target, Tier, TruncateBefore, WriteBatch,
    canonical_json, epoch_micros, parse_decimal, truncate_to_micros,
};
pub use tierstate_migrate::{
    AppliedStep, BlockingStep, Migrated, MigrationError, MigrationRegistry, RollbackInfo,
    RollbackTarget, StateMigration,
};
/// Multi-chain positions, net and gross totals, and reconciliation against a venue.
#[cfg(feature = "positions")]
pub use tierstate_positions as positions;
pub use url::{Access, StoreUrl, redact};

/// CLOB orders with an enforced status machine, portfolio snapshots, the NAV series with
/// high-water mark and drawdown, and baseline metrics.
#[cfg(feature = "accounting")]
pub use tierstate_accounting as accounting;
/// The one order model: intents vs actual orders, the reconciliation engine, CLOB orders, a
/// simulated exchange and the order event store.
#[cfg(feature = "orders")]
pub use tierstate_orders as orders;
#[cfg(feature = "postgres")]
pub use tierstate_postgres::{PostgresConfig, PostgresStore};
#[cfg(feature = "redb")]
pub use tierstate_redb::{RedbConfig, RedbDurability, RedbStore, quiet_engine_panics};
#[cfg(feature = "sqlite")]
pub use tierstate_sqlite::{Sharing, SqliteConfig, SqliteStore, Synchronous};
/// A strategy's per-tick persistence (one tick = one transaction) and its writer lease.
#[cfg(feature = "strategy")]
pub use tierstate_strategy as strategy;

/// The SQLite backend in full (its schema steps and fixtures for tools and tests).
#[cfg(feature = "sqlite")]
pub use tierstate_sqlite as sqlite;

/// The redb backend in full.
#[cfg(feature = "redb")]
pub use tierstate_redb as redb;

/// The PostgreSQL backend in full.
#[cfg(feature = "postgres")]
pub use tierstate_postgres as postgres;
