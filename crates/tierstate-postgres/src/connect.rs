//! Connecting: the options (never echoing the password), the first connection, creating the
//! schema and applying the embedded migrations under one advisory lock, and the checks a
//! read-only connect makes instead.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use tierstate_core::{BackendErrorKind, Error, Result, Signal};

use crate::error::{BACKEND, map, not_applied};
use crate::heads::Heads;
use crate::{PostgresConfig, PostgresStore, listener};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

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
pub(crate) fn read_only() -> Error {
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

impl PostgresStore {
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
}
