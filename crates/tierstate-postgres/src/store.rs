//! [`PostgresStore`]: the [`StateStore`] implementation.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use tierstate_core::journal::{JournalInfo, JournalPage, JournalQuery, truncated_head};
use tierstate_core::plan::Reads;
use tierstate_core::{
    BackendErrorKind, ChangeFeed, Committed, DeploymentId, DocAddr, Document, Error, KeyRange,
    Name, PreparedBatch, Result, Signal, StateData, StateStore, StoredRecord, StreamAddr, Tier,
    TruncateBefore, WriteBatch, commit_time,
};
use tokio::sync::watch;

use crate::PostgresConfig;
use crate::error::{BACKEND, map};
use crate::heads::Heads;
use crate::listener;
use crate::statement;

/// The channel every commit is announced on: payload `"<schema> <version> <deployment id>"`.
pub const NOTIFY_CHANNEL: &str = "tierstate_state";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The `after` bound of a first page: below every id and name (none is empty), so a paged
/// query keeps one shape, `key > $n`, which is an index seek under any plan.
const FIRST: &str = "";

/// The PostgreSQL WARM store. Clone it freely: clones share the pool and the listener. When
/// the last clone is dropped the listener stops and the pool's connections close; `close`
/// does it at once.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    config: PostgresConfig,
    feed: Option<Arc<listener::Feed>>,
    /// Stops the listener when the last clone is dropped.
    _listening: Option<Arc<listener::Stop>>,
    /// Bumped after this store's appends and on every change-feed event (other processes'
    /// appends, gaps): what journal tails wait on.
    signal: Arc<Signal>,
    /// Lone state updates, grouped into one statement per round trip.
    lane: Arc<crate::lane::Lane>,
    /// Heads this process last saw committed: batches over them commit in one round trip.
    heads: Arc<Heads>,
    /// The connection one-round-trip writes use when it is free.
    fast: Arc<crate::fast::Fast>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .finish()
    }
}

/// An error raised before the transaction began: nothing was applied.
pub(crate) fn not_applied(e: sqlx::Error) -> Error {
    match map(e) {
        Error::Backend {
            kind: BackendErrorKind::Timeout | BackendErrorKind::Unavailable,
            message,
            source,
            ..
        } => Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Unavailable,
            message,
            source,
        },
        other => other,
    }
}

/// An error raised once a write transaction was under way: an I/O failure may have happened
/// after the server committed, so the outcome is unknown.
pub(crate) fn in_flight(e: sqlx::Error) -> Error {
    match map(e) {
        Error::Backend {
            kind: BackendErrorKind::Unavailable,
            message,
            source,
            ..
        } => Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::ConnectionLost,
            message,
            source,
        },
        other => other,
    }
}

/// A failed schema migration (the message never carries the password).
fn migration_failed(e: sqlx::migrate::MigrateError) -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: format!(
            "migration failed: {}",
            crate::config::redact(&match &e {
                sqlx::migrate::MigrateError::Execute(inner) => crate::error::message(inner),
                other => other.to_string(),
            })
        ),
        source: Some(Box::new(e)),
    }
}

/// Connection options for `config`: its URL, `application_name`, and `search_path` when a schema
/// is set. Parse errors never echo the password.
fn connect_options(config: &PostgresConfig) -> Result<PgConnectOptions> {
    let opts = PgConnectOptions::from_str(config.url()).map_err(|e| {
        Error::invalid(
            "url",
            format!(
                "{} is not a PostgreSQL URL: {}",
                config.redacted_url(),
                crate::config::redact(&e.to_string())
            ),
        )
    })?;
    // Every tierstate statement reaches its rows by key, through a plain index scan:
    // - A cached generic plan is built once, while a table may still be a page or two; with
    //   sequential scans allowed, the tick's prune steps kept a seq scan (and hash join) chosen
    //   then, and read every dead version page on each write until autovacuum came by (287
    //   pages after 2,000 ticks).
    // - A bitmap scan cannot mark dead index entries as dead, so a grouped update's prune
    //   visited the heap page of every version deleted since the last vacuum: 6,405 pages
    //   for 39 deletes (3.5 of its 4 ms); an index scan marks them once and skips them after.
    let opts = opts
        .application_name(&config.application_name)
        .options([("enable_seqscan", "off"), ("enable_bitmapscan", "off")]);
    let opts = if config.read_only {
        opts.options([("default_transaction_read_only", "on")])
    } else {
        opts
    };
    Ok(match &config.schema {
        Some(schema) => opts.options([("search_path", schema.as_str())]),
        None => opts,
    })
}

/// Key of the advisory lock that serializes schema creation and migrations across every
/// process opening a database at once ("tSt1SETP").
const SETUP_LOCK: i64 = 0x7453_7431_5345_5450;

/// `host:port/database` of a connection, for messages (never the password).
fn target(opts: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    )
}

/// One direct connection: unlike a pool (which retries until its timeout and then reports only
/// "pool timed out"), it fails with the real cause, and the message names the server.
async fn connect_once(config: &PostgresConfig) -> Result<PgConnection> {
    let opts = connect_options(config)?;
    let at = target(&opts);
    let unreachable =
        |message: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            Error::Backend {
                backend: BACKEND,
                kind: BackendErrorKind::Unavailable,
                message,
                source,
            }
        };
    match tokio::time::timeout(config.acquire_timeout, PgConnection::connect_with(&opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => match not_applied(e) {
            Error::Backend {
                kind,
                message,
                source,
                ..
            } => Err(Error::Backend {
                backend: BACKEND,
                kind,
                message: format!("cannot connect to PostgreSQL at {at}: {message}"),
                source,
            }),
            other => Err(other),
        },
        Err(_) => Err(unreachable(
            format!(
                "cannot connect to PostgreSQL at {at}: no answer within {:?}",
                config.acquire_timeout
            ),
            None,
        )),
    }
}

/// Creates the configured schema if absent and applies the embedded migrations (up to
/// `version`, or all), holding [`SETUP_LOCK`] so any number of processes opening the same
/// database at once take turns instead of racing in `CREATE SCHEMA` (SQLSTATE 23505).
async fn prepare_database(
    conn: &mut PgConnection,
    config: &PostgresConfig,
    version: Option<i64>,
) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    let outcome = async {
        if let Some(schema) = &config.schema {
            // The schema name was validated to [a-z_][a-z0-9_]* by PostgresConfig::schema.
            let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut *conn)
            .await;
            match created {
                Ok(_) => {}
                // Created meanwhile by something that does not take our lock: that is success.
                Err(sqlx::Error::Database(db))
                    if matches!(db.code().as_deref(), Some("23505" | "42P06")) => {}
                Err(e) => return Err(map(e)),
            }
        }
        refuse_newer(&mut *conn).await?;
        // `run_direct` takes the connection itself: `run`'s generic `Acquire` bound makes the
        // future impossible to prove `Send` for every lifetime, and a store must be openable
        // on a spawned task.
        MIGRATOR
            .run_direct(version, &mut *conn, false)
            .await
            .map_err(migration_failed)
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await;
    outcome?;
    unlocked.map_err(map)?;
    Ok(())
}

impl PostgresStore {
    /// Runs a query of deployment ids bound to (after, limit, the reserved range).
    async fn ids(
        &self,
        sql: &'static str,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>> {
        let rows: Vec<String> = sqlx::query_scalar(sql)
            .bind(after.map_or(FIRST, |a| a.as_str()))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(DeploymentId::RESERVED_RANGE.0)
            .bind(DeploymentId::RESERVED_RANGE.1)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(DeploymentId::from_stored).collect()
    }

    /// One run of a write transaction: lock and read the heads, plan, store, notify, commit.
    async fn try_write(&self, reads: &Reads, batch: PreparedBatch) -> Attempt {
        let mut tx = match self.pool.begin().await {
            Ok(t) => t,
            Err(e) => return Attempt::Done(Err(not_applied(e))),
        };
        let snap = match crate::records::snapshot(&mut tx, reads).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Attempt::Done(Err(e)),
            Err(e) if lost_race(&e) => return Attempt::Retry(map(e)),
            Err(e) => return Attempt::Done(Err(in_flight(e))),
        };
        self.heads.saw(reads, &snap);
        // On a plan error the transaction is dropped and rolled back: nothing stays.
        let mut plan = match tierstate_core::plan::plan(batch, &snap, commit_time()) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(Err(e)),
        };
        if !plan.removals.is_empty()
            && let Err(e) = crate::records::remove(&mut tx, &plan).await
        {
            return if lost_race(&e) {
                Attempt::Retry(map(e))
            } else {
                Attempt::Done(Err(in_flight(e)))
            };
        }
        // Everything else, NOTIFY included (delivered only if the transaction commits), in one
        // round trip. Its guards only fail here if a create raced this one.
        if let Err(e) = statement::store(&mut tx, &mut plan, &[]).await {
            return if lost_race(&e) || statement::head_moved(&e) {
                Attempt::Retry(map(e))
            } else {
                Attempt::Done(Err(in_flight(e)))
            };
        }
        match tx.commit().await {
            Ok(()) => {
                self.heads.committed(&plan);
                Attempt::Done(Ok(plan.committed))
            }
            Err(e) if lost_race(&e) => Attempt::Retry(map(e)),
            Err(e) => Attempt::Done(Err(in_flight(e))),
        }
    }

    /// A batch over remembered heads, planned without reading them and stored in one
    /// autocommit statement. `Err` hands the batch back for the locking path: a head was not
    /// remembered, was stale (a guard refused it), or the plan failed on what was remembered
    /// (the locking path then reports the real outcome).
    async fn try_optimistic(
        &self,
        reads: &Reads,
        batch: PreparedBatch,
    ) -> std::result::Result<Result<Committed>, PreparedBatch> {
        if !Heads::eligible(&batch) {
            return Err(batch);
        }
        let Some(snap) = self.heads.snapshot(reads, &batch) else {
            return Err(batch);
        };
        let Ok(mut plan) = tierstate_core::plan::plan(batch.clone(), &snap, commit_time()) else {
            return Err(batch);
        };
        // The removals the plan decided, where the remembered heads stand; and the batch's
        // checks (each expects a version: `Heads::eligible`).
        let removals = plan.removals.clone();
        let mut guards = Vec::with_capacity(removals.len() + batch.checks.len());
        for a in &removals {
            let Some(&(version, _)) = snap.documents.get(a) else {
                return Err(batch);
            };
            guards.push(statement::DocGuard {
                address: a,
                version,
                remove: true,
            });
        }
        for (a, v) in &batch.checks {
            if let Some(version) = *v {
                guards.push(statement::DocGuard {
                    address: a,
                    version,
                    remove: false,
                });
            }
        }
        let mut c = match self.fast.acquire().await {
            Ok(c) => c,
            Err(e) => return Ok(Err(not_applied(e))),
        };
        let stored = statement::store(&mut c, &mut plan, &guards).await;
        match stored {
            Ok(()) => {
                drop(c);
                self.heads.committed(&plan);
                Ok(Ok(plan.committed))
            }
            Err(e) => {
                c.after_error(&e);
                if statement::head_moved(&e) || lost_race(&e) {
                    self.heads.forget(reads);
                    Err(batch)
                } else {
                    Ok(Err(in_flight(e)))
                }
            }
        }
    }

    /// Connects, creates the schema if named and applies the embedded migrations (serialized
    /// across processes by an advisory lock), then opens the pool and starts the NOTIFY
    /// listener.
    ///
    /// # Errors
    /// `Backend` if the server cannot be reached (the message names the host and the cause) or
    /// a migration fails; `SchemaTooNew` if the database was migrated by a newer tierstate.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let mut setup = connect_once(&config).await?;
        let prepared = if config.read_only {
            check_readable(&mut setup, &config).await
        } else {
            prepare_database(&mut setup, &config, None).await
        };
        let _ = setup.close().await;
        prepared?;
        let ping_after = config.ping_after_idle;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(move |c, meta| {
                Box::pin(async move {
                    if meta.idle_for >= ping_after {
                        sqlx::Connection::ping(c).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect_options(&config)?)
            .await
            .map_err(not_applied)?;
        let signal = Arc::new(Signal::new());
        let breaks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (feed, listening) = if config.listen {
            let schema: String = sqlx::query_scalar("SELECT current_schema()")
                .fetch_one(&pool)
                .await
                .map_err(map)?;
            let feed = listener::Feed::new(signal.clone(), breaks.clone());
            let stop = listener::spawn(pool.clone(), feed.clone(), schema);
            (Some(feed), Some(Arc::new(stop)))
        } else {
            (None, None)
        };
        let heads = Arc::new(Heads::new());
        let fast = Arc::new(crate::fast::Fast::new(
            pool.clone(),
            config.ping_after_idle,
            breaks,
        ));
        let lane = Arc::new(crate::lane::Lane::start(heads.clone(), fast.clone()));
        Ok(Self {
            pool,
            config,
            feed,
            _listening: listening,
            signal,
            lane,
            heads,
            fast,
        })
    }

    /// Applies the embedded migrations up to `version` only, on a fresh schema: builds fixtures
    /// of older versions for upgrade tests and tooling. Nothing else (no listener) is started.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn create_at_version(config: &PostgresConfig, version: i64) -> Result<PgPool> {
        let mut setup = connect_once(config).await?;
        let prepared = prepare_database(&mut setup, config, Some(version)).await;
        let _ = setup.close().await;
        prepared?;
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(connect_options(config)?)
            .await
            .map_err(not_applied)
    }

    /// The migrations a database still needs, without applying anything (dry run):
    /// (version, description) pairs.
    ///
    /// # Errors
    /// `Backend` if the server cannot be reached; `SchemaTooNew` for a newer database.
    pub async fn pending_migrations(config: &PostgresConfig) -> Result<Vec<(i64, String)>> {
        let mut conn = connect_once(config).await?;
        refuse_newer(&mut conn).await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(map)?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&mut conn)
                .await
                .map_err(map)?
        } else {
            Vec::new()
        };
        let _ = conn.close().await;
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// The newest schema migration this build knows.
    pub fn schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The connection pool (for operators' queries and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool and the kept write connection; later operations fail with a `Closed`
    /// error.
    pub async fn close(&self) {
        self.pool.close().await;
        self.fast.close().await;
    }
}

/// Refuses a database on which a newer tierstate applied migrations this build does not know.
/// A read-only connect's check: the schema holds tierstate's tables at this build's
/// migration, older and newer ones refused by name; nothing is created or changed.
async fn check_readable(conn: &mut PgConnection, config: &PostgresConfig) -> Result<()> {
    let schema = config.schema.as_deref().unwrap_or("public");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    let found: Option<i64> = if exists {
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(map)?
    } else {
        None
    };
    let supported = PostgresStore::schema_version();
    match found {
        None => Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!("schema {schema:?} holds no tierstate tables"),
            source: None,
        }),
        Some(f) if f > supported => Err(Error::SchemaTooNew {
            backend: BACKEND,
            found: u32::try_from(f).unwrap_or(u32::MAX),
            supported: u32::try_from(supported).unwrap_or(u32::MAX),
        }),
        Some(f) if f < supported => Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Other,
            message: format!(
                "schema {schema:?} is at migration {f}, older than this build's {supported}: a read does not upgrade it; run `tierstate migrate` first"
            ),
            source: None,
        }),
        Some(_) => Ok(()),
    }
}

/// The error a write to a store connected read-only gets.
fn read_only() -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: "this store was connected read-only: it takes no writes".into(),
        source: None,
    }
}

async fn refuse_newer(conn: &mut PgConnection) -> Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    if !exists {
        return Ok(());
    }
    let found: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(map)?;
    let supported = PostgresStore::schema_version();
    match found {
        Some(f) if f > supported => Err(Error::SchemaTooNew {
            backend: BACKEND,
            found: u32::try_from(f).unwrap_or(u32::MAX),
            supported: u32::try_from(supported).unwrap_or(u32::MAX),
        }),
        _ => Ok(()),
    }
}

/// The columns of one stored version, in the order [`record`] reads them.
macro_rules! columns {
    () => {
        "h.deployment_id, v.version, v.schema_version, v.checksum, h.created_at, v.updated_at, v.body"
    };
}

fn record(row: &PgRow) -> Result<StoredRecord> {
    let get = |e: sqlx::Error| map(e);
    let id: String = row.try_get(0).map_err(get)?;
    let version: i64 = row.try_get(1).map_err(get)?;
    let schema: i32 = row.try_get(2).map_err(get)?;
    let bad = |what: String| Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: format!("unexpected stored value: {what}"),
        source: None,
    };
    Ok(StoredRecord {
        deployment_id: DeploymentId::from_stored(&id)
            .map_err(|e| bad(format!("id {id:?}: {e}")))?,
        version: u64::try_from(version).map_err(|_| bad(format!("version {version}")))?,
        schema_version: u32::try_from(schema)
            .map_err(|_| bad(format!("schema_version {schema}")))?,
        checksum: row.try_get(3).map_err(get)?,
        created_at_us: row.try_get(4).map_err(get)?,
        updated_at_us: row.try_get(5).map_err(get)?,
        body: row.try_get(6).map_err(get)?,
    })
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Queues one NOTIFY per payload (`"<version> <id>"`, 0 for a delete) in the transaction.
async fn notify(tx: &mut Transaction<'_, Postgres>, payloads: &[String]) -> Result<()> {
    // Prefixed with the schema: managers on other schemas of the same database hear the
    // channel too, and must not evict their own entries of the same id.
    sqlx::query("SELECT pg_notify($1, current_schema() || ' ' || p) FROM unnest($2::text[]) AS p")
        .bind(NOTIFY_CHANNEL)
        .bind(payloads)
        .execute(&mut **tx)
        .await
        .map_err(in_flight)?;
    Ok(())
}

/// How one attempt of a write transaction ended.
enum Attempt {
    /// Committed, or failed in a way retrying cannot change.
    Done(Result<Committed>),
    /// Lost a race another transaction won (a unique key it created first, a deadlock):
    /// nothing was applied; run the whole transaction again.
    Retry(Error),
}

/// SQLSTATEs after which the transaction certainly rolled back and a rerun sees the winner.
pub(crate) fn lost_race(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("23505" | "40P01" | "40001")))
}

#[async_trait]
impl StateStore for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn changes(&self) -> Option<ChangeFeed> {
        self.feed.as_ref().map(|f| f.subscribe())
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM ts_head h JOIN ts_version v \
             ON v.deployment_id = h.deployment_id AND v.version = h.version WHERE h.deployment_id = $1"
        );
        let row = sqlx::query(sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        row.map(|r| record(&r)?.verify(Tier::Warm)).transpose()
    }

    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        let Ok(v) = i64::try_from(version) else {
            return Ok(None);
        };
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM ts_head h JOIN ts_version v ON v.deployment_id = h.deployment_id \
             WHERE h.deployment_id = $1 AND v.version = $2"
        );
        let row = sqlx::query(sql)
            .bind(id.as_str())
            .bind(v)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        row.map(|r| record(&r)?.verify(Tier::Warm)).transpose()
    }

    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM ts_head h JOIN ts_version v ON v.deployment_id = h.deployment_id \
             WHERE h.deployment_id = $1 ORDER BY v.version DESC LIMIT $2"
        );
        let rows = sqlx::query(sql)
            .bind(id.as_str())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(|r| record(r)?.verify(Tier::Warm)).collect()
    }

    async fn write(&self, batch: WriteBatch) -> Result<Committed> {
        if self.config.read_only {
            return Err(read_only());
        }
        let batch = batch.prepare()?;
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        let batch = if crate::lane::Lane::takes(&batch) {
            match self.lane.submit(batch).await {
                crate::lane::Outcome::Done(r) => return r,
                crate::lane::Outcome::Fallback(b) => b,
            }
        } else {
            batch
        };
        let reads = batch.reads();
        let appends = !batch.appends.is_empty();
        let out = match self.try_optimistic(&reads, batch).await {
            Ok(out) => out,
            Err(batch) => {
                let mut attempt = 0u32;
                loop {
                    attempt += 1;
                    match self.try_write(&reads, batch.clone()).await {
                        Attempt::Done(r) => break r,
                        Attempt::Retry(e) if attempt >= 10 => break Err(e),
                        Attempt::Retry(_) => {
                            let pause = std::time::Duration::from_millis(u64::from(attempt));
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
            }
        };
        if appends && out.is_ok() {
            self.signal.bump();
        }
        out
    }

    async fn get_as_of(
        &self,
        id: &DeploymentId,
        at: chrono::DateTime<Utc>,
    ) -> Result<Option<StateData>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM ts_head h JOIN ts_version v ON v.deployment_id = h.deployment_id \
             WHERE h.deployment_id = $1 AND v.updated_at <= $2 ORDER BY v.version DESC LIMIT 1"
        );
        let row = sqlx::query(sql)
            .bind(id.as_str())
            .bind(at.timestamp_micros())
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        let found = row.map(|r| record(&r)).transpose()?;
        let oldest: Option<i64> =
            sqlx::query_scalar("SELECT min(version) FROM ts_version WHERE deployment_id = $1")
                .bind(id.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(map)?;
        let oldest = oldest.map(|v| u64::try_from(v).unwrap_or(0));
        tierstate_core::plan::state_as_of(id, at, found, oldest)
    }

    async fn get_document(&self, address: &DocAddr) -> Result<Option<Document>> {
        // Head and row in one statement (one snapshot): no head is "absent"; a head naming a
        // row that is gone is damage. (Two statements would see a document created between
        // them as damaged.)
        let row: Option<(i64, i64, Option<String>, Option<i64>, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT h.created_at, h.version, v.checksum, v.updated_at, v.body FROM ts_doc_head h \
             LEFT JOIN ts_doc_version v ON v.deployment_id = h.deployment_id \
             AND v.collection = h.collection AND v.key = h.key AND v.version = h.version \
             WHERE h.deployment_id = $1 AND h.collection = $2 AND h.key = $3",
        )
        .bind(address.deployment_id.as_str())
        .bind(address.collection.as_str())
        .bind(address.key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map)?;
        let Some((created, version, checksum, updated, body)) = row else {
            return Ok(None);
        };
        let version = u64::try_from(version).unwrap_or(0);
        match (checksum, updated, body) {
            (Some(checksum), Some(updated), Some(body)) => tierstate_core::StoredDoc {
                address: address.clone(),
                version,
                body,
                checksum,
                created_at_us: created,
                updated_at_us: updated,
            }
            .verify(Tier::Warm)
            .map(Some),
            _ => Err(tierstate_core::Error::missing_version(address, version)),
        }
    }

    async fn document_version(&self, address: &DocAddr, version: u64) -> Result<Option<Document>> {
        let mut c = self.pool.acquire().await.map_err(map)?;
        let row = crate::records::doc_version(&mut c, address, version)
            .await
            .map_err(map)?;
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn deployments(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>> {
        self.ids(
            "SELECT deployment_id FROM ( \
               SELECT deployment_id FROM ts_head WHERE deployment_id > $1 \
               UNION SELECT deployment_id FROM ts_doc_head WHERE deployment_id > $1 \
               UNION SELECT deployment_id FROM ts_journal_head WHERE deployment_id > $1) d \
             WHERE NOT (deployment_id >= $3 AND deployment_id < $4) \
             ORDER BY deployment_id LIMIT $2",
            after,
            limit,
        )
        .await
    }

    async fn document_history(&self, address: &DocAddr, limit: usize) -> Result<Vec<Document>> {
        let mut c = self.pool.acquire().await.map_err(map)?;
        let (rows, _) = crate::records::doc_versions(&mut c, address, false, None, limit)
            .await
            .map_err(map)?;
        rows.into_iter().map(|r| r.verify(Tier::Warm)).collect()
    }

    async fn document_as_of(
        &self,
        address: &DocAddr,
        at: chrono::DateTime<Utc>,
    ) -> Result<Option<Document>> {
        let mut c = self.pool.acquire().await.map_err(map)?;
        let (rows, oldest) =
            crate::records::doc_versions(&mut c, address, false, Some(at.timestamp_micros()), 1)
                .await
                .map_err(map)?;
        tierstate_core::plan::document_as_of(address, at, rows.into_iter().next(), oldest)
    }

    async fn scan_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Result<Document>>> {
        let mut c = self.pool.acquire().await.map_err(map)?;
        let rows = crate::records::scan_docs(&mut c, id, collection, range, limit)
            .await
            .map_err(map)?;
        Ok(rows
            .into_iter()
            .map(|r| r.and_then(|d| d.verify(Tier::Warm)))
            .collect())
    }

    async fn collections(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        // A loose index scan: each step seeks the next collection past the previous one.
        let rows: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE c(name) AS ( \
               (SELECT collection FROM ts_doc_head WHERE deployment_id = $1 \
                  AND collection > $2 ORDER BY collection LIMIT 1) \
               UNION ALL \
               SELECT (SELECT h.collection FROM ts_doc_head h WHERE h.deployment_id = $1 \
                         AND h.collection > c.name ORDER BY h.collection LIMIT 1) \
               FROM c WHERE c.name IS NOT NULL) \
             SELECT name FROM c WHERE name IS NOT NULL LIMIT $3",
        )
        .bind(id.as_str())
        .bind(after.map_or(FIRST, Name::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        rows.iter().map(Name::collection).collect()
    }

    async fn streams(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT stream FROM ts_journal_head WHERE deployment_id = $1 \
             AND stream > $2 ORDER BY stream LIMIT $3",
        )
        .bind(id.as_str())
        .bind(after.map_or(FIRST, Name::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        rows.iter().map(Name::stream).collect()
    }

    async fn journal_info(&self, stream: &StreamAddr) -> Result<Option<JournalInfo>> {
        let mut c = self.pool.acquire().await.map_err(map)?;
        let head = crate::records::head(&mut c, stream, false)
            .await
            .map_err(map)??;
        // The placeholder head an append creates for a new stream is never visible here: it
        // commits only with that append's entries.
        Ok(head.map(JournalInfo::from))
    }

    async fn read_journal(&self, stream: &StreamAddr, query: JournalQuery) -> Result<JournalPage> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        // Head and rows from one snapshot, so a concurrent truncation cannot tear the read.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let head = crate::records::head(&mut tx, stream, false)
            .await
            .map_err(map)??;
        let resolved = query.resolve(head, stream)?;
        let rows = crate::records::fetch(&mut tx, stream, &resolved.fetch)
            .await
            .map_err(map)?;
        let mut linked = Vec::new();
        for p in resolved.links(&rows) {
            let seq = tierstate_core::journal::Fetch::Seq { lo: p, hi: p };
            linked.extend(
                crate::records::fetch(&mut tx, stream, &seq)
                    .await
                    .map_err(map)?,
            );
        }
        tx.commit().await.map_err(map)?;
        resolved.finish(stream, rows, linked, Tier::Warm)
    }

    async fn truncate_journal(&self, stream: &StreamAddr, before: TruncateBefore) -> Result<u64> {
        if self.config.read_only {
            return Err(read_only());
        }
        let mut tx = self.pool.begin().await.map_err(not_applied)?;
        let Some(head) = crate::records::head(&mut tx, stream, true)
            .await
            .map_err(in_flight)??
        else {
            return Ok(0);
        };
        let first_kept = match before {
            TruncateBefore::Seq(n) => n,
            TruncateBefore::EventTime(t) => {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT min(seq) FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND event_at >= $3",
                )
                .bind(stream.deployment_id.as_str())
                .bind(stream.stream.as_str())
                .bind(t.timestamp_micros())
                .fetch_one(&mut *tx)
                .await
                .map_err(in_flight)?;
                found.map_or(head.last_seq + 1, |n| u64::try_from(n).unwrap_or(0))
            }
        };
        let anchor_seq = first_kept.saturating_sub(1).min(head.last_seq);
        let anchor: Option<String> = sqlx::query_scalar(
            "SELECT hash FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND seq = $3",
        )
        .bind(stream.deployment_id.as_str())
        .bind(stream.stream.as_str())
        .bind(i64_of(anchor_seq))
        .fetch_optional(&mut *tx)
        .await
        .map_err(in_flight)?;
        let new_head = truncated_head(stream, head, first_kept, anchor.as_deref())?;
        if new_head == head {
            return Ok(0);
        }
        sqlx::query(
            "DELETE FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND seq <= $3",
        )
        .bind(stream.deployment_id.as_str())
        .bind(stream.stream.as_str())
        .bind(i64_of(new_head.base_seq))
        .execute(&mut *tx)
        .await
        .map_err(in_flight)?;
        crate::records::put_head(&mut tx, stream, &new_head)
            .await
            .map_err(in_flight)?;
        notify(&mut tx, &[format!("j {stream}")]).await?;
        tx.commit().await.map_err(in_flight)?;
        self.signal.bump();
        Ok(new_head.base_seq - head.base_seq)
    }

    fn journal_signal(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }

    async fn delete(&self, id: &DeploymentId) -> Result<bool> {
        if self.config.read_only {
            return Err(read_only());
        }
        let mut tx = self.pool.begin().await.map_err(not_applied)?;
        sqlx::query("DELETE FROM ts_version WHERE deployment_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(in_flight)?;
        let gone = sqlx::query("DELETE FROM ts_head WHERE deployment_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(in_flight)?
            .rows_affected();
        notify(&mut tx, &[format!("0 {id}")]).await?;
        tx.commit().await.map_err(in_flight)?;
        Ok(gone > 0)
    }

    async fn list(&self, after: Option<&DeploymentId>, limit: usize) -> Result<Vec<DeploymentId>> {
        self.ids(
            "SELECT deployment_id FROM ts_head WHERE deployment_id > $1 \
             AND NOT (deployment_id >= $3 AND deployment_id < $4) \
             ORDER BY deployment_id LIMIT $2",
            after,
            limit,
        )
        .await
    }

    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM (SELECT deployment_id, version, created_at FROM ts_head \
               WHERE deployment_id > $1 AND NOT (deployment_id >= $3 AND deployment_id < $4) \
               ORDER BY deployment_id LIMIT $2) h \
             CROSS JOIN LATERAL (SELECT * FROM ts_version v \
               WHERE v.deployment_id = h.deployment_id AND v.version = h.version) v \
             ORDER BY h.deployment_id"
        );
        // The page of heads first (one index seek), then each head's version by primary key:
        // the plan cannot be anything else. As a plain join, fresh tables without statistics
        // (right after a bulk load) got a sequential scan and a sort of every head per page,
        // 130-175 ms instead of 1.5 ms; and a `$1 IS NULL OR` bound walked every earlier row.
        let rows = sqlx::query(sql)
            .bind(after.map_or(FIRST, |a| a.as_str()))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(DeploymentId::RESERVED_RANGE.0)
            .bind(DeploymentId::RESERVED_RANGE.1)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        Ok(rows
            .iter()
            .map(|r| record(r).and_then(|r| r.verify(Tier::Warm)))
            .collect())
    }
}
