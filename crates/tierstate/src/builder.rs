//! Configuring and opening a [`StateManager`].

use std::sync::Arc;

use tierstate_core::{Error, Result, Retention, StateStore};

#[cfg(feature = "hot")]
use crate::HotConfig;
use crate::StateManager;
use crate::hot::Hot;
use crate::metrics::{Metrics, MetricsCallback};

/// Builds a [`StateManager`]. A WARM tier is required; HOT is on by default (feature `hot`).
#[must_use]
pub struct StateManagerBuilder {
    warm: Option<WarmChoice>,
    #[cfg(feature = "hot")]
    hot: Option<HotConfig>,
    retention: Retention,
    warm_up: bool,
    metrics_capacity: usize,
    callback: Option<MetricsCallback>,
    migrations: Option<tierstate_migrate::MigrationRegistry>,
    write_back: bool,
}

enum WarmChoice {
    Store(Arc<dyn StateStore>),
    #[cfg(feature = "sqlite")]
    Sqlite(tierstate_sqlite::SqliteConfig),
    #[cfg(feature = "redb")]
    Redb(tierstate_redb::RedbConfig),
    #[cfg(feature = "postgres")]
    Postgres(tierstate_postgres::PostgresConfig),
}

impl Default for StateManagerBuilder {
    fn default() -> Self {
        Self {
            warm: None,
            #[cfg(feature = "hot")]
            hot: Some(HotConfig::default()),
            retention: Retention::DEFAULT,
            warm_up: true,
            metrics_capacity: 4096,
            callback: None,
            migrations: None,
            write_back: true,
        }
    }
}

impl StateManagerBuilder {
    /// Uses the store at `url`: `sqlite:PATH`, `redb:PATH`, `postgres://…[?schema=S]` or
    /// `memory:` (see [`crate::StoreUrl`]), with its backend's durable defaults.
    ///
    /// # Errors
    /// `InvalidInput` for a URL that does not parse or needs a backend this build leaves out.
    pub fn url(self, url: &str) -> Result<Self> {
        self.store_url(&crate::StoreUrl::parse(url)?)
    }

    /// Uses the store at a parsed URL; see [`StateManagerBuilder::url`].
    ///
    /// # Errors
    /// `InvalidInput` for a backend this build leaves out.
    pub fn store_url(self, url: &crate::StoreUrl) -> Result<Self> {
        let parsed = url.clone();
        match parsed {
            crate::StoreUrl::Memory => {
                Ok(self.warm(Arc::new(tierstate_core::InMemoryStore::new())))
            }
            #[cfg(feature = "sqlite")]
            crate::StoreUrl::Sqlite(p) => Ok(self.sqlite(p)),
            #[cfg(feature = "redb")]
            crate::StoreUrl::Redb(p) => Ok(self.redb(p)),
            #[cfg(feature = "postgres")]
            crate::StoreUrl::Postgres { .. } => {
                let config = parsed.postgres_config()?;
                Ok(self.postgres(config))
            }
            #[allow(unreachable_patterns)]
            other => Err(Error::invalid(
                "url",
                format!(
                    "{} needs a backend this build leaves out: enable its feature of the tierstate crate",
                    other.shown()
                ),
            )),
        }
    }

    /// Uses the SQLite file at `path` (created if absent) with durable defaults.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.sqlite_config(tierstate_sqlite::SqliteConfig::new(path))
    }

    /// Uses SQLite with explicit settings.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_config(mut self, config: tierstate_sqlite::SqliteConfig) -> Self {
        self.warm = Some(WarmChoice::Sqlite(config));
        self
    }

    /// Uses the redb file at `path` (created if absent) with durable defaults.
    #[cfg(feature = "redb")]
    pub fn redb(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.redb_config(tierstate_redb::RedbConfig::new(path))
    }

    /// Uses redb with explicit settings.
    #[cfg(feature = "redb")]
    pub fn redb_config(mut self, config: tierstate_redb::RedbConfig) -> Self {
        self.warm = Some(WarmChoice::Redb(config));
        self
    }

    /// Uses PostgreSQL with the given settings (URL, schema, pool).
    #[cfg(feature = "postgres")]
    pub fn postgres(mut self, config: tierstate_postgres::PostgresConfig) -> Self {
        self.warm = Some(WarmChoice::Postgres(config));
        self
    }

    /// Uses an already opened store as the WARM tier (any backend, or the in-memory one).
    pub fn warm(mut self, store: Arc<dyn StateStore>) -> Self {
        self.warm = Some(WarmChoice::Store(store));
        self
    }

    /// Sets the HOT tier's capacity and TTL.
    #[cfg(feature = "hot")]
    pub fn hot(mut self, config: HotConfig) -> Self {
        self.hot = Some(config);
        self
    }

    /// Turns the HOT tier off: every load reads WARM.
    pub fn without_hot(self) -> Self {
        #[cfg(feature = "hot")]
        return Self { hot: None, ..self };
        #[cfg(not(feature = "hot"))]
        self
    }

    /// How many versions per deployment every commit keeps (default: the last 32).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Whether `build` loads existing states into HOT, in bulk (default true).
    pub fn warm_up(mut self, enabled: bool) -> Self {
        self.warm_up = enabled;
        self
    }

    /// How many operation records the metrics ring buffer keeps (default 4096).
    pub fn metrics_capacity(mut self, capacity: usize) -> Self {
        self.metrics_capacity = capacity;
        self
    }

    /// Calls `callback` with every operation record (HOT hits: the timed one in
    /// [`crate::metrics::HIT_SAMPLE`]; every hit is still counted in the totals).
    pub fn on_metric(
        mut self,
        callback: impl Fn(&crate::OpRecord) + Send + Sync + 'static,
    ) -> Self {
        self.callback = Some(Arc::new(callback));
        self
    }

    /// Payload migrations: states below the registry's current schema are migrated on load,
    /// newer ones refused, and every write is stamped with the current schema. Opening fails if
    /// this binary is below the store's recorded `rollback_safe_until`.
    pub fn migrations(mut self, registry: tierstate_migrate::MigrationRegistry) -> Self {
        self.migrations = Some(registry);
        self
    }

    /// Whether a migrated state is written back (by CAS, never clobbering a concurrent writer).
    /// Default true; with false every load of an old state migrates it in memory again.
    pub fn migration_write_back(mut self, write_back: bool) -> Self {
        self.write_back = write_back;
        self
    }

    /// Opens the WARM tier and, if enabled, warms HOT from it.
    ///
    /// # Errors
    /// `InvalidInput` if no WARM tier was configured; any error opening it (it never falls back
    /// to a HOT-only mode); `RollbackUnsafe` if this binary's payload schema is below what the
    /// store's data needs; `Backend` if the warm-up read fails.
    pub async fn build(self) -> Result<StateManager> {
        let warm: Arc<dyn StateStore> = match self.warm {
            Some(WarmChoice::Store(s)) => s,
            #[cfg(feature = "sqlite")]
            Some(WarmChoice::Sqlite(cfg)) => {
                Arc::new(tierstate_sqlite::SqliteStore::open(cfg).await?)
            }
            #[cfg(feature = "redb")]
            Some(WarmChoice::Redb(cfg)) => Arc::new(tierstate_redb::RedbStore::open(cfg).await?),
            #[cfg(feature = "postgres")]
            Some(WarmChoice::Postgres(cfg)) => {
                Arc::new(tierstate_postgres::PostgresStore::connect(cfg).await?)
            }
            None => {
                return Err(Error::invalid(
                    "warm tier",
                    "none configured: call .sqlite(path), .redb(path) or .warm(store)",
                ));
            }
        };
        #[cfg(feature = "hot")]
        let hot = Hot::new(self.hot);
        #[cfg(not(feature = "hot"))]
        let hot = Hot::new();
        let manager = StateManager::from_parts(
            warm,
            hot,
            self.retention,
            Metrics::new(self.metrics_capacity, self.callback),
            self.migrations.map(|registry| crate::payload::Payload {
                registry: Arc::new(registry),
                write_back: self.write_back,
                guard_newer: std::sync::atomic::AtomicBool::new(false),
            }),
        );
        manager.check_payload_marker().await?;
        manager.follow_changes();
        // With a change feed, warm up only once it is live: its first `Resumed` clears HOT, and
        // commits made before it started listening could otherwise stay cached.
        let live = manager
            .wait_coherent(std::time::Duration::from_secs(10))
            .await;
        if !live {
            tracing::warn!("change feed not live after 10 s: skipping warm-up; loads read WARM");
        }
        // A shared file's probe is read before warm-up, so a commit another process makes
        // while HOT fills is still noticed on the first hit.
        manager.sync_probe();
        if self.warm_up && live && manager.hot_enabled() {
            manager.warm_up().await?;
        }
        Ok(manager)
    }
}
