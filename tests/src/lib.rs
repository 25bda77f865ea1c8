//! Shared pieces of the cross-crate tests: opening a backend by name and reading a counter
//! state, so the crash writer and the harness agree on what they write and check.
#![deny(missing_docs)]
// Test helpers panic on impossible input: that is how a test reports it.
#![allow(clippy::missing_panics_doc)]

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tierstate_core::{DeploymentId, Result, Retention, StateData, StateStore};

/// Retention used by the crash writer; the harness checks history contiguity within it.
pub const CRASH_RETENTION: Retention = Retention::KeepLast(NonZeroU32::new(64).unwrap());

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

    /// Opens the store with its corruption test hook: the store, and a function that flips
    /// `mask` bits of byte `offset` of the newest stored record of a deployment.
    ///
    /// # Errors
    /// Whatever the backend's open returns.
    pub async fn open_with_damage(self, path: &Path) -> Result<(Arc<dyn StateStore>, DamageHook)> {
        match self {
            Self::Sqlite => {
                let s = tierstate_sqlite::SqliteStore::open(sqlite_shared(path)).await?;
                let h = s.clone();
                Ok((
                    Arc::new(s),
                    Box::new(move |id, offset, mask| {
                        let h = h.clone();
                        Box::pin(
                            async move { h.damage_stored_state(&id, None, offset, mask).await },
                        )
                    }),
                ))
            }
            Self::Redb => {
                let s =
                    tierstate_redb::RedbStore::open(tierstate_redb::RedbConfig::new(path)).await?;
                let h = s.clone();
                Ok((
                    Arc::new(s),
                    Box::new(move |id, offset, mask| {
                        let h = h.clone();
                        Box::pin(
                            async move { h.damage_stored_state(&id, None, offset, mask).await },
                        )
                    }),
                ))
            }
            Self::Postgres => Err(tierstate_core::Error::invalid(
                "backend",
                "the PostgreSQL byte-flip check runs in its conformance suite",
            )),
        }
    }
}

/// SQLite settings for a file several processes of the harness open at once.
pub fn sqlite_shared(path: &Path) -> tierstate_sqlite::SqliteConfig {
    tierstate_sqlite::SqliteConfig::new(path).sharing(tierstate_sqlite::Sharing::Shared)
}

/// Flips bits of one stored byte of a deployment's newest record; resolves to whether it did.
pub type DamageHook = Box<
    dyn Fn(
            DeploymentId,
            usize,
            u8,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send>>
        + Send
        + Sync,
>;

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

pub use tierstate_testkit::{fresh_schema, pg_url};
