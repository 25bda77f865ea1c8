//! PostgreSQL WARM backend for tierstate: one database shared by many strategy processes on
//! many machines.
//!
//! CAS writes are single statements (`UPDATE … WHERE version = $n RETURNING …`,
//! `INSERT … ON CONFLICT DO NOTHING RETURNING …`) inside one transaction per batch. The canonical
//! JSON bytes are stored as `BYTEA`, exactly the bytes the checksum covers. The schema is
//! versioned with embedded sqlx migrations, applied on connect under sqlx's advisory lock; a
//! database migrated by a newer tierstate is refused. Every commit publishes
//! `(deployment, version)` with `NOTIFY`, and [`PostgresStore`] offers the feed so managers in
//! other processes evict stale HOT entries.
#![deny(missing_docs)]

mod config;
mod error;
mod listener;
mod records;
mod store;

pub use config::PostgresConfig;
pub use store::{NOTIFY_CHANNEL, PostgresStore};
