//! The reader pool and the read queries. Each read is one statement, so it sees one
//! consistent snapshot; WAL lets it run while the writer commits.
//!
//! The pool is a few lines over a mutex-guarded stack instead of r2d2/deadpool: those pin
//! their own rusqlite versions, and reads here are short, synchronous and already on tokio's
//! blocking pool, so a waiting queue or health checks would add nothing.

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tierstate_core::{DeploymentId, Result, StoredRecord};

use crate::SqliteConfig;
use crate::error::{bad_row, map};
use crate::schema::{ReadMode, open_reader};

/// Reader connections, opened on demand and kept up to `config.readers`.
pub(crate) struct Readers {
    config: SqliteConfig,
    mode: ReadMode,
    idle: Mutex<Vec<Connection>>,
    /// Set by [`Readers::close`]: reads fail with `Closed` and connections are not kept.
    closed: std::sync::atomic::AtomicBool,
}

impl Readers {
    pub(crate) fn new(config: SqliteConfig, mode: ReadMode) -> Self {
        Self {
            config,
            mode,
            idle: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes every idle connection; later reads fail with `Closed`, and a read in flight
    /// closes its connection when it ends.
    pub(crate) fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.idle.lock().clear();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs `f` on a pooled reader connection (blocking; call from a blocking thread).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.is_closed() {
            return Err(crate::error::closed());
        }
        let pooled = self.idle.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.config, self.mode)?,
        };
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Runs `f` at once on an idle pooled connection, or hands it back if none is idle.
    pub(crate) fn with_idle<T, F: FnOnce(&Connection) -> T>(
        &self,
        f: F,
    ) -> std::result::Result<T, F> {
        let Some(conn) = self.idle.lock().pop() else {
            return Err(f);
        };
        let out = f(&conn);
        self.give_back(conn);
        Ok(out)
    }

    /// Returns a connection to the pool (closed instead if the pool is full).
    pub(crate) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.config.readers && !self.is_closed() {
            idle.push(conn);
        }
    }
}

/// tierstate's reserved ids, which `list` and `scan` leave out inside the query, so a page
/// still holds `limit` callers' ids.
const RESERVED: (&str, &str) = DeploymentId::RESERVED_RANGE;

const COLUMNS: &str = "h.deployment_id, v.version, v.schema_version, v.checksum, \
                       h.created_at, v.updated_at, v.body";

/// Raw columns of one stored version, in [`COLUMNS`] order.
type RawRow = (String, i64, i64, String, i64, i64, Vec<u8>);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    // The checksum is read as bytes: damaged text may not be UTF-8, and that must surface as an
    // integrity failure at verification, not as a decoding error here.
    let checksum = String::from_utf8_lossy(row.get_ref(3)?.as_bytes()?).into_owned();
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        checksum,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

/// Converts raw columns into a record for verification; impossible values are errors.
fn record(
    (id, version, schema_version, checksum, created, updated, body): RawRow,
) -> Result<StoredRecord> {
    Ok(StoredRecord {
        deployment_id: DeploymentId::from_stored(&id)
            .map_err(|e| bad_row(format!("deployment id {id:?}: {e}")))?,
        version: u64::try_from(version).map_err(|_| bad_row(format!("version {version}")))?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| bad_row(format!("schema_version {schema_version}")))?,
        body,
        checksum,
        created_at_us: created,
        updated_at_us: updated,
    })
}

pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<StoredRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ts_head h JOIN ts_version v \
         ON v.deployment_id = h.deployment_id AND v.version = h.version \
         WHERE h.deployment_id = ?1"
    );
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([id], raw).optional())
        .map_err(map)?;
    raw.map(record).transpose()
}

pub(crate) fn get_version(
    conn: &Connection,
    id: &str,
    version: u64,
) -> Result<Option<StoredRecord>> {
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM ts_head h JOIN ts_version v ON v.deployment_id = h.deployment_id \
         AND v.version >= h.keep_from WHERE h.deployment_id = ?1 AND v.version = ?2"
    );
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![id, version], raw).optional())
        .map_err(map)?;
    raw.map(record).transpose()
}

pub(crate) fn history(conn: &Connection, id: &str, limit: usize) -> Result<Vec<StoredRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ts_head h JOIN ts_version v ON v.deployment_id = h.deployment_id \
         AND v.version >= h.keep_from WHERE h.deployment_id = ?1 ORDER BY v.version DESC LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(map)?;
    let rows = stmt.query_map(params![id, limit], raw).map_err(map)?;
    rows.map(|r| r.map_err(map).and_then(record)).collect()
}

pub(crate) fn list(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<DeploymentId>> {
    ids(
        conn,
        "SELECT deployment_id FROM ts_head WHERE (?1 IS NULL OR deployment_id > ?1) \
         AND NOT (deployment_id >= ?3 AND deployment_id < ?4) \
         ORDER BY deployment_id LIMIT ?2",
        after,
        limit,
    )
}

/// Deployments holding any record (state, document or journal) after `after`, in id order.
pub(crate) fn deployments(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<DeploymentId>> {
    // Each arm is an index seek per distinct id (the heads' primary keys lead with it).
    ids(
        conn,
        "SELECT deployment_id FROM ( \
           SELECT deployment_id FROM ts_head WHERE (?1 IS NULL OR deployment_id > ?1) \
           UNION SELECT DISTINCT deployment_id FROM ts_doc_head \
             WHERE (?1 IS NULL OR deployment_id > ?1) \
           UNION SELECT DISTINCT deployment_id FROM ts_journal_head \
             WHERE (?1 IS NULL OR deployment_id > ?1)) \
         WHERE NOT (deployment_id >= ?3 AND deployment_id < ?4) \
         ORDER BY deployment_id LIMIT ?2",
        after,
        limit,
    )
}

/// Runs a query of deployment ids bound to (after, limit, the reserved range).
fn ids(
    conn: &Connection,
    sql: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<DeploymentId>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(sql).map_err(map)?;
    let rows = stmt
        .query_map(params![after, limit, RESERVED.0, RESERVED.1], |r| {
            r.get::<_, String>(0)
        })
        .map_err(map)?;
    rows.map(|r| {
        let id = r.map_err(map)?;
        DeploymentId::from_stored(&id).map_err(|e| bad_row(format!("deployment id {id:?}: {e}")))
    })
    .collect()
}

/// SQLite's own check of the file: `PRAGMA integrity_check` (every page, index and
/// constraint); the problems it lists, empty if none.
pub(crate) fn integrity_check(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check").map_err(map)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(map)?;
    let found: Vec<String> = rows.collect::<rusqlite::Result<_>>().map_err(map)?;
    Ok(if found.len() == 1 && found[0] == "ok" {
        Vec::new()
    } else {
        found
    })
}

/// Current records after `after`, in id order; each is verified by the caller.
pub(crate) fn scan(
    conn: &Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Result<StoredRecord>>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ts_head h JOIN ts_version v \
         ON v.deployment_id = h.deployment_id AND v.version = h.version \
         WHERE (?1 IS NULL OR h.deployment_id > ?1) \
         AND NOT (h.deployment_id >= ?3 AND h.deployment_id < ?4) \
         ORDER BY h.deployment_id LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(map)?;
    let rows = stmt
        .query_map(params![after, limit, RESERVED.0, RESERVED.1], raw)
        .map_err(map)?;
    let mut out = Vec::new();
    for row in rows {
        // A row that cannot even be read ends the scan; a readable but damaged one is
        // reported in place.
        out.push(record(row.map_err(map)?));
    }
    Ok(out)
}

/// The newest version of `id` committed at or before `at_us`.
pub(crate) fn as_of(conn: &Connection, id: &str, at_us: i64) -> Result<Option<StoredRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ts_head h JOIN ts_version v ON v.deployment_id = h.deployment_id \
         AND v.version >= h.keep_from WHERE h.deployment_id = ?1 AND v.updated_at <= ?2 ORDER BY v.version DESC LIMIT 1"
    );
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![id, at_us], raw).optional())
        .map_err(map)?;
    raw.map(record).transpose()
}
