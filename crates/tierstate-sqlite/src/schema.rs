//! The on-disk schema, its recorded version, and opening connections to it.
//!
//! A tierstate file is marked with `PRAGMA application_id` and records its schema version in
//! `PRAGMA user_version`, both in the database header, so neither can drift from the tables.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use tierstate_core::{BackendErrorKind, Error, Result};

use crate::SqliteConfig;
use crate::config::Synchronous;
use crate::error::{BACKEND, map};

/// The schema version this build writes and the newest it can open.
pub const SCHEMA_VERSION: u32 = 5;

/// `PRAGMA application_id` of tierstate files: "tSt1".
const APPLICATION_ID: i32 = 0x7453_7431;

/// The DDL steps, in order: step `v` takes a database from version `v - 1` to `v`.
///
/// v1: `ts_head` holds one small row per deployment (the CAS point); `ts_version` holds every
/// retained version's canonical JSON body and checksum.
/// v2: an index on `ts_version(updated_at)`, for time-range history queries and audits.
/// v3: documents (`ts_doc_head`, `ts_doc_version`: the state's layout keyed by
/// (deployment, collection, key)) and journals (`ts_journal_head`: last sequence, last hash and
/// the truncation anchor per stream; `ts_journal`: the hash-chained entries, with a unique
/// index on idempotency keys and an index on event time).
/// v4: drops v2's index again: no query used it (every time read goes through a deployment's
/// primary key), and it cost a page write on every version stored or pruned.
/// v5: `keep_from` on `ts_head` and `ts_doc_head`: the oldest version reads may return.
/// Retention moves it in the commit itself; the rows below it are deleted in runs of
/// `Retention::PRUNE_RUN` (16) versions, not one per commit (each delete dirtied the leaf
/// holding the oldest version: a page in the WAL and a statement on every write), except for a
/// record that keeps fewer versions than a run.
///
/// The version and journal tables stay rowid tables although their primary key is a separate
/// index: rebuilt `WITHOUT ROWID`, the tick bench measured 1.55–1.69× the plain transaction
/// against 1.45–1.49× (2026-11-22), likely because only rowid tables split an appended-to leaf
/// without rebalancing its neighbours.
pub const STEPS: &[(u32, &str)] = &[
    (
        1,
        "CREATE TABLE ts_head (
    deployment_id TEXT NOT NULL PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version >= 1),
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE ts_version (
    deployment_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    schema_version INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (deployment_id, version)
);",
    ),
    (
        2,
        "CREATE INDEX ts_version_updated_at ON ts_version (updated_at);",
    ),
    (
        3,
        "CREATE TABLE ts_doc_head (
    deployment_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, collection, key)
) WITHOUT ROWID;
CREATE TABLE ts_doc_version (
    deployment_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    checksum TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (deployment_id, collection, key, version)
);
CREATE TABLE ts_journal_head (
    deployment_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0),
    last_hash TEXT NOT NULL,
    last_commit_at INTEGER NOT NULL,
    base_seq INTEGER NOT NULL CHECK (base_seq >= 0),
    base_hash TEXT NOT NULL,
    PRIMARY KEY (deployment_id, stream)
) WITHOUT ROWID;
CREATE TABLE ts_journal (
    deployment_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    event_at INTEGER NOT NULL,
    commit_at INTEGER NOT NULL,
    idem_key TEXT,
    checksum TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (deployment_id, stream, seq)
);
CREATE UNIQUE INDEX ts_journal_key ON ts_journal (deployment_id, stream, idem_key)
    WHERE idem_key IS NOT NULL;
CREATE INDEX ts_journal_event ON ts_journal (deployment_id, stream, event_at, seq);",
    ),
    (4, "DROP INDEX ts_version_updated_at;"),
    (
        5,
        "ALTER TABLE ts_head ADD COLUMN keep_from INTEGER NOT NULL DEFAULT 1 CHECK (keep_from >= 1);
ALTER TABLE ts_doc_head ADD COLUMN keep_from INTEGER NOT NULL DEFAULT 1 CHECK (keep_from >= 1);",
    ),
];

/// The DDL of every step up to [`SCHEMA_VERSION`], concatenated.
pub fn schema_sql() -> String {
    STEPS
        .iter()
        .map(|(_, sql)| *sql)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The steps a database at `found` still needs.
pub fn steps_after(found: u32) -> Vec<(u32, &'static str)> {
    STEPS.iter().copied().filter(|(v, _)| *v > found).collect()
}

/// Test and tooling helper: creates a tierstate schema at exactly `version` in an empty
/// database (to build fixtures of older versions).
///
/// # Errors
/// `InvalidInput` for an unknown version; `Backend` if SQLite fails.
pub fn create_at_version(conn: &Connection, version: u32) -> Result<()> {
    if version == 0 || version > SCHEMA_VERSION {
        return Err(Error::invalid(
            "version",
            format!("{version} is not a schema version of this build"),
        ));
    }
    for (_, sql) in STEPS.iter().filter(|(v, _)| *v <= version) {
        conn.execute_batch(sql).map_err(map)?;
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(map)?;
    conn.pragma_update(None, "user_version", version)
        .map_err(map)?;
    Ok(())
}

/// The schema version recorded in the file at `path` and the steps opening it would apply,
/// without changing anything (`cargo xtask migrate --dry-run`).
///
/// # Errors
/// `Backend` if the file cannot be read; `SchemaTooNew` if a newer build wrote it.
pub fn pending_steps(path: &Path) -> Result<(u32, Vec<(u32, &'static str)>)> {
    let conn = open_for_reading(&SqliteConfig::new(path))?.1;
    let found: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| naming(path, map(e)))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            backend: BACKEND,
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok((found, steps_after(found)))
}

/// Creates the file with mode 0600 if it does not exist yet (SQLite would use 0644). The WAL
/// and shared-memory files SQLite creates later copy the database file's mode.
fn create_private(path: &Path) -> Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!("cannot create {}: {e}", path.display()),
            source: Some(Box::new(e)),
        }),
    }
}

/// Names the file in a backend error from opening it ("file is not a database" alone does not
/// say which file).
fn naming(path: &Path, e: Error) -> Error {
    match e {
        Error::Backend {
            backend,
            kind,
            message,
            source,
        } if !message.contains(&*path.to_string_lossy()) => Error::Backend {
            backend,
            kind,
            message: format!("cannot open {}: {message}", path.display()),
            source,
        },
        other => other,
    }
}

fn open(path: &Path, config: &SqliteConfig) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(map)?;
    conn.busy_timeout(config.busy_timeout).map_err(map)?;
    conn.set_prepared_statement_cache_capacity(32);
    // One plan per statement whatever its bound values: every tierstate statement reaches its
    // rows by key, and without this the bundled SQLite (built with STAT4) re-parsed a range
    // read each time its bounds changed (every NAV page after a cursor, every time window).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(map)?;
    Ok(conn)
}

/// Opens the writer connection: creates the file, switches to WAL, sets durability, and
/// creates or checks the schema. Every failure names the file.
pub(crate) fn open_writer(config: &SqliteConfig) -> Result<Connection> {
    open_writer_unnamed(config).map_err(|e| naming(&config.path, e))
}

fn open_writer_unnamed(config: &SqliteConfig) -> Result<Connection> {
    let size = config.page_size;
    if !(512..=65536).contains(&size) || !size.is_power_of_two() {
        return Err(Error::invalid(
            "page_size",
            format!("{size} is not a power of two from 512 to 65536"),
        ));
    }
    create_private(&config.path)?;
    let conn = open(&config.path, config)?;
    // Takes effect only while the file is still empty (SQLite ignores it later), so a file
    // keeps the page size it was created with.
    conn.pragma_update(None, "page_size", size).map_err(map)?;
    let mode: String = retry_busy(config.busy_timeout, || {
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(map)
    })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!(
                "cannot enable WAL on {} (got {mode})",
                config.path.display()
            ),
            source: None,
        });
    }
    let sync = match config.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(map)?;
    retry_busy(config.busy_timeout, || ensure_schema(&conn, &config.path))?;
    Ok(conn)
}

/// Runs `op` again while SQLite answers `SQLITE_BUSY`, until `timeout` has passed. SQLite
/// returns BUSY at once, without calling the busy handler, where waiting could deadlock: two
/// connections that both hold a shared lock and want to write, as several processes opening
/// one new file together do while it switches to WAL. Retrying after a pause resolves it.
/// (A loop bounded by the configured timeout: no retry crate needed for one call site.)
fn retry_busy<T>(timeout: std::time::Duration, mut op: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match op() {
            Err(Error::Backend {
                kind: BackendErrorKind::Busy,
                ..
            }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// How reader connections open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Beside this store's own writer: read-write connections that refuse writes.
    Writer,
    /// A read-only store while the file has a write-ahead log (a writer has it open, or one
    /// was killed): SQLite's read-only mode, which reads the log with the file.
    ReadOnly,
    /// A read-only store of a file nobody has open, in a directory it may write: connections
    /// that refuse writes, opened read-write so the last one to close removes the `-wal` and
    /// `-shm` files its reads created (SQLite's own clean-up; nothing is written to the file).
    QueryOnly,
    /// A read-only store of a file nobody has open, which this process may not write (or in a
    /// directory it may not write): read as an immutable file, with no lock and no side files.
    Immutable,
}

impl ReadMode {
    /// The mode a read-only store of `path` tries first: `ReadOnly` while a write-ahead log
    /// exists, else `QueryOnly` (the store falls back to `Immutable` if the file or its
    /// directory cannot be written).
    pub(crate) fn for_reader(path: &Path) -> Self {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        if Path::new(&wal).exists() {
            Self::ReadOnly
        } else {
            Self::QueryOnly
        }
    }
}

/// Opens a reader connection; it refuses writes. Every failure names the file.
pub(crate) fn open_reader(config: &SqliteConfig, mode: ReadMode) -> Result<Connection> {
    let named = |e| naming(&config.path, e);
    let conn = match mode {
        ReadMode::Writer | ReadMode::QueryOnly => open(&config.path, config).map_err(named)?,
        ReadMode::ReadOnly | ReadMode::Immutable => {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI;
            let conn = if mode == ReadMode::Immutable {
                let uri = format!(
                    "file:{}?immutable=1",
                    uri_path(&config.path).map_err(named)?
                );
                Connection::open_with_flags(uri, flags)
            } else {
                Connection::open_with_flags(&config.path, flags)
            }
            .map_err(|e| named(map(e)))?;
            conn.busy_timeout(config.busy_timeout)
                .map_err(|e| named(map(e)))?;
            conn
        }
    };
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| named(map(e)))?;
    Ok(conn)
}

/// `path` as the path part of a `file:` URI (absolute, with `%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> Result<String> {
    let abs = std::path::absolute(path).map_err(|e| Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Io,
        message: format!("cannot resolve {}: {e}", path.display()),
        source: Some(Box::new(e)),
    })?;
    let text = abs
        .to_str()
        .ok_or_else(|| Error::invalid("path", format!("{} is not UTF-8", abs.display())))?;
    Ok(text
        .replace('%', "%25")
        .replace('?', "%3f")
        .replace('#', "%23"))
}

/// A reader connection on a file that exists, opened so that nothing is written or left
/// behind (see [`ReadMode`]), and the mode it was opened in.
///
/// # Errors
/// `Backend` (`Io`) naming the file if it is missing, not a file, or cannot be opened.
pub(crate) fn open_for_reading(config: &SqliteConfig) -> Result<(ReadMode, Connection)> {
    let missing = |what: &str| Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Io,
        message: format!("{} {what}", config.path.display()),
        source: None,
    };
    match std::fs::metadata(&config.path) {
        Err(_) => return Err(missing("does not exist")),
        Ok(m) if !m.is_file() => return Err(missing("is not a file")),
        Ok(_) => {}
    }
    let first = ReadMode::for_reader(&config.path);
    let probe = |mode| -> Result<Connection> {
        let c = open_reader(config, mode)?;
        // The first read makes SQLite open the write-ahead log and its index, where a read-only
        // directory makes it fail.
        c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| naming(&config.path, map(e)))?;
        Ok(c)
    };
    match probe(first) {
        Ok(c) => Ok((first, c)),
        // The file or its directory cannot be written (its side files cannot be made): nobody
        // can be writing it from here, so read it as it stands.
        Err(Error::Backend {
            kind: BackendErrorKind::Io,
            ..
        }) if first == ReadMode::QueryOnly => {
            Ok((ReadMode::Immutable, probe(ReadMode::Immutable)?))
        }
        Err(e) => Err(e),
    }
}

/// Checks, without changing anything, that `conn` reads a tierstate database at this build's
/// schema: an empty file, a foreign one, an older or a newer schema are refused by name.
pub(crate) fn check_readable(conn: &Connection, path: &Path) -> Result<()> {
    let named = |e| naming(path, map(e));
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(named)?;
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(named)?;
    let not_ours = |why: String| Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Io,
        message: why,
        source: None,
    };
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(named)?;
    if app_id == 0 && version == 0 && objects == 0 {
        return Err(not_ours(format!(
            "{} is not a tierstate database (it holds no tierstate schema)",
            path.display()
        )));
    }
    if app_id != APPLICATION_ID {
        return Err(not_ours(format!(
            "{} is a SQLite database that tierstate did not create (application_id {app_id:#x})",
            path.display()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            backend: BACKEND,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        return Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Other,
            message: format!(
                "{} is at schema {version}, older than this build's {SCHEMA_VERSION}: a read does not upgrade it; run `tierstate migrate` first",
                path.display()
            ),
            source: None,
        });
    }
    Ok(())
}

/// Creates the schema in a new file, accepts the current one, refuses a newer or foreign one.
/// Runs under `BEGIN IMMEDIATE` so two processes opening a new file at once cannot race.
fn ensure_schema(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map)?;
    let outcome = check_or_create(conn, path);
    let end = if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    if let Err(e) = conn.execute_batch(end) {
        // A COMMIT refused as busy leaves the transaction open: end it so a retry starts clean.
        let _ = conn.execute_batch("ROLLBACK");
        return Err(map(e));
    }
    outcome
}

fn check_or_create(conn: &Connection, path: &Path) -> Result<()> {
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(map)?;
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(map)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(map)?;
    if app_id == 0 && objects == 0 {
        return create_at_version(conn, SCHEMA_VERSION);
    }
    if app_id != APPLICATION_ID {
        return Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!(
                "{} is a SQLite database that tierstate did not create (application_id {app_id:#x})",
                path.display()
            ),
            source: None,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            backend: BACKEND,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // Older file: apply the missing steps inside the caller's transaction (all or nothing).
    for (v, sql) in steps_after(version) {
        conn.execute_batch(sql).map_err(map)?;
        tracing::info!(path = %path.display(), step = v, "upgraded tierstate SQLite schema");
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(map)?;
    Ok(())
}

/// The SQLite file's own schema migrations ([`tierstate_core::SchemaMigrate`]).
#[derive(Debug, Clone)]
pub struct SqliteSchema {
    path: std::path::PathBuf,
}

impl SqliteSchema {
    /// The schema of the file at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait::async_trait]
impl tierstate_core::SchemaMigrate for SqliteSchema {
    async fn status(&self) -> Result<tierstate_core::SchemaStatus> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let empty = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
            let (found, steps) = if empty {
                (None, steps_after(0))
            } else {
                let (v, steps) = pending_steps(&path)?;
                ((v > 0).then_some(u64::from(v)), steps)
            };
            Ok(tierstate_core::SchemaStatus {
                backend: BACKEND,
                found,
                latest: u64::from(SCHEMA_VERSION),
                pending: steps
                    .into_iter()
                    .map(|(v, sql)| tierstate_core::SchemaStep {
                        version: u64::from(v),
                        description: sql.lines().next().unwrap_or_default().to_owned(),
                    })
                    .collect(),
            })
        })
        .await
        .map_err(|_| crate::error::closed())?
    }

    async fn apply(&self) -> Result<tierstate_core::SchemaStatus> {
        // Opening the file for writing applies every missing step in one transaction.
        crate::SqliteStore::open(SqliteConfig::new(&self.path))
            .await?
            .close()
            .await;
        self.status().await
    }
}
