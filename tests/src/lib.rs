//! Shared pieces of the cross-crate tests: opening a backend by name and reading a counter
//! state, so the crash writer and the harness agree on what they write and check.
#![deny(missing_docs)]
// Test helpers panic on impossible input: that is how a test reports it.
#![allow(clippy::missing_panics_doc)]

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tierstate_core::journal::EntryDamage;
use tierstate_core::{DeploymentId, Result, Retention, StateData, StateStore, StreamAddr};

/// Retention used by the crash writer; the harness checks history contiguity within it.
pub const CRASH_RETENTION: Retention = Retention::KeepLast(NonZeroU32::new(64).unwrap());

/// The `application_name` of the crash writer's PostgreSQL sessions on the store at `path`
/// (at most 63 bytes: the server keeps no more).
pub fn writer_session(path: &Path) -> String {
    let mut s = format!("crash-writer:{}", path.display());
    while s.len() > 63 {
        s.pop();
    }
    s
}

/// A backend the harness can drive. New backends join here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `tierstate-sqlite`, durable defaults, opened for sharing by several processes.
    Sqlite,
    /// `tierstate-redb`, durable defaults.
    Redb,
    /// `tierstate-postgres` on `TEST_DATABASE_URL`; the "path" is the schema name.
    Postgres,
}

impl Backend {
    /// Parses a backend name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sqlite" => Some(Self::Sqlite),
            "redb" => Some(Self::Redb),
            "postgres" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Redb => "redb",
            Self::Postgres => "postgres",
        }
    }

    /// Opens the store at `path` with durable defaults.
    ///
    /// # Errors
    /// Whatever the backend's open returns.
    pub async fn open(self, path: &Path) -> Result<Arc<dyn StateStore>> {
        self.open_named(path, "tierstate-tests").await
    }

    /// Opens the store at `path` as the crash writer does: on PostgreSQL its connections
    /// carry [`writer_session`], so the harness can wait for them to end ([`Backend::settle`]).
    ///
    /// # Errors
    /// Whatever the backend's open returns.
    pub async fn open_as_writer(self, path: &Path) -> Result<Arc<dyn StateStore>> {
        self.open_named(path, &writer_session(path)).await
    }

    /// Waits until no connection of a killed writer remains. A PostgreSQL server finishes the
    /// statement a client sent before it died (a COMMIT included), so until the writer's
    /// sessions are gone its last transaction may still land while the harness reads: a
    /// `get` before it and a `history` after it would disagree. Embedded stores: nothing to
    /// wait for (the writer's process is the engine).
    pub async fn settle(self, path: &Path) {
        use sqlx::Connection;
        if self != Self::Postgres {
            return;
        }
        let url = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
        let mut c = sqlx::PgConnection::connect(&url)
            .await
            .expect("connect to PostgreSQL");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (n,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(writer_session(path))
                    .fetch_one(&mut c)
                    .await
                    .expect("read pg_stat_activity");
            if n == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the killed writer's {n} session(s) never ended"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn open_named(self, path: &Path, application: &str) -> Result<Arc<dyn StateStore>> {
        match self {
            Self::Sqlite => Ok(Arc::new(
                tierstate_sqlite::SqliteStore::open(sqlite_shared(path)).await?,
            )),
            Self::Redb => Ok(Arc::new(
                tierstate_redb::RedbStore::open(tierstate_redb::RedbConfig::new(path)).await?,
            )),
            Self::Postgres => {
                let url = std::env::var("TEST_DATABASE_URL")
                    .map_err(|_| tierstate_core::Error::invalid("TEST_DATABASE_URL", "not set"))?;
                let schema = path.to_str().unwrap_or_default();
                let cfg = tierstate_postgres::PostgresConfig::new(url)
                    .schema(schema)?
                    .application_name(application)
                    .listen(false);
                Ok(Arc::new(
                    tierstate_postgres::PostgresStore::connect(cfg).await?,
                ))
            }
        }
    }

    /// Where a fresh store for this backend lives: a file in `dir`, or a new PostgreSQL schema.
    pub fn fresh_location(self, dir: &Path, name: &str) -> std::path::PathBuf {
        match self {
            Self::Postgres => std::path::PathBuf::from(fresh_schema(name)),
            _ => dir.join(format!("{name}.db")),
        }
    }

    /// Whether several processes may open one file at once (redb allows only one).
    pub fn multi_process(self) -> bool {
        match self {
            Self::Sqlite | Self::Postgres => true,
            Self::Redb => false,
        }
    }

    /// Opens the store with its corruption test hooks.
    ///
    /// # Errors
    /// Whatever the backend's open returns; `InvalidInput` for PostgreSQL, whose damage
    /// checks run in its own conformance suite.
    pub async fn open_with_damage(self, path: &Path) -> Result<(Arc<dyn StateStore>, Damager)> {
        match self {
            Self::Sqlite => {
                let s = tierstate_sqlite::SqliteStore::open(sqlite_shared(path)).await?;
                let s = Arc::new(s);
                Ok((s.clone(), Damager(s)))
            }
            Self::Redb => {
                let s =
                    tierstate_redb::RedbStore::open(tierstate_redb::RedbConfig::new(path)).await?;
                let s = Arc::new(s);
                Ok((s.clone(), Damager(s)))
            }
            Self::Postgres => Err(tierstate_core::Error::invalid(
                "backend",
                "the PostgreSQL damage checks run in its conformance suite",
            )),
        }
    }
}

/// A store's fault seam, for damaging stored rows the way a bad disk would.
pub struct Damager(Arc<dyn tierstate_core::FaultSeam>);

impl Damager {
    /// A fresh in-memory store and its seam.
    pub fn memory() -> (Arc<dyn StateStore>, Damager) {
        let m = Arc::new(tierstate_core::InMemoryStore::new());
        (m.clone(), Damager(m))
    }

    /// Flips `mask` bits of byte `offset` of a deployment's newest stored state; whether it did.
    ///
    /// # Errors
    /// A backend error from the seam's write.
    pub async fn state(&self, id: &DeploymentId, offset: usize, mask: u8) -> Result<bool> {
        self.0
            .inject(tierstate_core::Fault::StateBytes {
                id: id.clone(),
                version: None,
                offset,
                mask,
            })
            .await
    }

    /// Damages stored entry `seq` of `stream`; whether it existed.
    ///
    /// # Errors
    /// A backend error from the seam's write.
    pub async fn entry(&self, stream: &StreamAddr, seq: u64, damage: EntryDamage) -> Result<bool> {
        self.0
            .inject(tierstate_core::Fault::Entry {
                stream: stream.clone(),
                seq,
                damage,
            })
            .await
    }
}

/// SQLite settings for a file several processes of the harness open at once.
pub fn sqlite_shared(path: &Path) -> tierstate_sqlite::SqliteConfig {
    tierstate_sqlite::SqliteConfig::new(path).sharing(tierstate_sqlite::Sharing::Shared)
}

impl Backend {
    /// Every backend the harnesses run against.
    pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Redb, Backend::Postgres];
}

/// The counter state at `count`.
pub fn counter(count: u64) -> Map<String, Value> {
    json!({"count": count, "pad": "p".repeat(200)})
        .as_object()
        .expect("object")
        .clone()
}

/// The counter in a state written by [`counter`].
pub fn count_of(d: &StateData) -> u64 {
    d.state["count"]
        .as_u64()
        .expect("counter state has a count")
}

/// Deployment `name`.
pub fn dep(name: &str) -> DeploymentId {
    DeploymentId::new(name).expect("valid id")
}

/// The mixed-batch record set the crash writer's `mixed` mode commits each tick: deployment
/// `m`'s state, documents `book/a` and `book/b`, and `entries` journal entries on `m/events`.
pub mod mixed {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::{Map, Value, json};
    use tierstate_core::{Append, DocAddr, DocWrite, Name, PutMode, StateWrite, StreamAddr};
    use tierstate_core::{DeploymentId, WriteBatch};

    use super::{CRASH_RETENTION, counter, dep};

    /// The deployment.
    pub fn id() -> DeploymentId {
        dep("m")
    }

    /// The two documents.
    pub fn docs() -> [DocAddr; 2] {
        ["a", "b"].map(|k| DocAddr::new("m", "book", k).expect("valid address"))
    }

    /// The journal.
    pub fn stream() -> StreamAddr {
        StreamAddr::new("m", "events").expect("valid stream")
    }

    /// Event time of tick `tick`.
    pub fn event_time(tick: u64) -> DateTime<Utc> {
        Utc.timestamp_micros(1_800_000_000_000_000 + tick as i64 * 1_000)
            .unwrap()
    }

    /// A document's value at `tick`.
    pub fn doc_value(tick: u64) -> Map<String, Value> {
        obj(json!({"tick": tick, "pad": "d".repeat(100)}))
    }

    /// Entry `j` of tick `tick`.
    pub fn entry_value(tick: u64, j: u64) -> Map<String, Value> {
        obj(json!({"tick": tick, "j": j}))
    }

    /// Entry `j` of tick `tick`'s idempotency key.
    pub fn key(tick: u64, j: u64) -> String {
        format!("t{tick}-{j}")
    }

    /// The batch of tick `tick` (0-based: tick `t` leaves every record at version `t + 1`
    /// and the journal at `entries * (t + 1)` entries). Each append expects the last seq.
    pub fn batch(tick: u64, entries: u64) -> WriteBatch {
        let mode = if tick == 0 {
            PutMode::Create
        } else {
            PutMode::Update { expected: tick }
        };
        let mut b = WriteBatch::new()
            .with_retention(CRASH_RETENTION)
            .put(StateWrite::new(id(), mode, counter(tick)));
        for d in docs() {
            b = b.document(DocWrite::new(d, mode, doc_value(tick)));
        }
        for j in 0..entries {
            b = b.append(
                Append::new(stream(), event_time(tick), entry_value(tick, j))
                    .with_key(Name::key(key(tick, j)).expect("valid key"))
                    .expecting(tick * entries + j),
            );
        }
        b
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }
}

pub use tierstate_testkit::{fresh_schema, pg_url};

/// The ledger + registry stream the crash harness kills, and the two-process registry race:
/// tick `k` writes ledger entry `tx-k` with a registry change in one commit. Even ticks open
/// row `pos-k` (handle-less, its own group); odd ticks close the row the tick before opened.
pub mod ledger {
    use chrono::{DateTime, TimeZone, Utc};
    use tierstate::accounting::{ExecutionMode, LedgerEntry, RegistryRow, RegistryStatus};

    use super::dep;

    /// The deployment.
    pub fn id() -> tierstate_core::DeploymentId {
        dep("l")
    }

    /// The time of tick `k`.
    pub fn at(k: u64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + k as i64, 0).unwrap()
    }

    /// Tick `k`'s ledger entry.
    pub fn entry(deployment: &str, id: &str, k: u64) -> LedgerEntry {
        let mut e =
            LedgerEntry::new(id, deployment, ExecutionMode::Live, at(k), "LP", true).unwrap();
        e.gas_used = Some(k);
        e
    }

    /// The registry row tick `k` writes: `pos-j` opened at even `j`, closed at `j + 1`.
    pub fn row(k: u64) -> RegistryRow {
        let j = k - k % 2;
        let mut r = RegistryRow::open(
            "l",
            "arbitrum",
            "uniswap_v3_lp",
            format!("pos-{j}"),
            "lp",
            format!("g-{j}"),
            at(k),
        )
        .unwrap();
        if k % 2 == 1 {
            r.status = RegistryStatus::Closed;
            r.closing_block = Some(k);
        }
        r
    }
}

/// The order engine the crash harness kills: deployment `o` and a durable simulated venue
/// in a file of its own, answering each place 2 ms after accepting it (the window between submit
/// and acknowledgement that kills land in).
pub mod orders {
    use std::path::Path;
    use std::sync::Arc;

    use tierstate::orders::{FaultPlan, OrderStore, SimExchange};
    use tierstate_core::StateStore;

    /// The venue kept in `file`.
    pub fn venue(file: &Path) -> SimExchange {
        SimExchange::durable(file, FaultPlan::none(), std::time::Duration::from_millis(2))
            .expect("open the venue file")
    }

    /// The orders of deployment `o`.
    pub fn store(store: Arc<dyn StateStore>) -> OrderStore {
        OrderStore::new(store, &super::dep("o"))
    }
}

/// The README's Rust examples, compiled and run as doc-tests (here, where every domain is
/// built) so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
