//! PostgreSQL WARM backend for tierstate: one database shared by many strategy processes on
//! many machines.
//!
//! A batch is one transaction that locks the heads it depends on, lets the core planner decide,
//! and stores the plan. A lone state update skips all that: it commits in one round trip, one
//! statement per group of such updates queued together (see `lane.rs`). The canonical
//! JSON bytes are stored as `BYTEA`, exactly the bytes the checksum covers. The schema is
//! versioned with embedded sqlx migrations, applied on connect under sqlx's advisory lock; a
//! database migrated by a newer tierstate is refused. Every commit publishes
//! `(deployment, version)` with `NOTIFY`, and [`PostgresStore`] offers the feed so managers in
//! other processes evict stale HOT entries.
#![deny(missing_docs)]

mod config;
mod error;
mod lane;
mod listener;
mod records;
mod store;

pub use config::PostgresConfig;
pub use store::{NOTIFY_CHANNEL, PostgresStore};
