//! The storage engines' own plain durable writes of the rows tierstate writes: the baselines
//! that separate tierstate's cost from the engine's. No checksum, no JSON, no history, no CAS.
//!
//! Each engine is opened as tierstate opens it (SQLite: WAL, `synchronous=FULL`; redb:
//! `Durability::Immediate`; PostgreSQL: autocommit with the server's durable settings), on its
//! own file or schema in the same directory or server.
//!
//! Every function panics if the engine fails: a baseline that cannot be measured ends the run.
#![allow(clippy::missing_panics_doc)]

use std::path::Path;

use redb::{ReadableDatabase, TableDefinition};

/// redb table of upserted rows.
const ROWS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("rows");
/// redb table of appended rows.
const LOG: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("log");
/// redb table of kept versions, by (id, version).
const HIST: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
    TableDefinition::new("hist");
/// redb table of appended rows with an event time.
const ELOG: TableDefinition<'static, u64, (i64, &'static [u8])> = TableDefinition::new("elog");
/// redb index of `ELOG` by (event time, seq).
const ELOG_EVENT: TableDefinition<'static, (i64, u64), ()> = TableDefinition::new("elog_event");

/// What [`Plain::tick_history`] writes: the rows as new versions of their ids, keeping the
/// newest `keep`, and entries with event times.
pub struct HistoryTick<'a> {
    /// `(id, body)` of each row; each becomes version `version` of its id.
    pub rows: &'a [(&'a str, &'a [u8])],
    /// The version the rows get (1, 2, … per tick).
    pub version: u64,
    /// Versions kept per id (older ones are deleted in the same transaction).
    pub keep: u64,
    /// `(seq, event time µs, body)` of each entry.
    pub entries: &'a [(u64, i64, &'a [u8])],
}

/// One engine, opened for plain writes.
pub enum Plain {
    /// A rusqlite connection in WAL mode with `synchronous=FULL`.
    Sqlite(rusqlite::Connection),
    /// A redb file; every commit `Durability::Immediate`.
    Redb(redb::Database),
    /// A pool on the server, with the schema its two tables live in.
    Postgres(sqlx::PgPool),
}

impl Plain {
    /// A fresh SQLite file at `path` with a row table and a log table, in SQLite's own page
    /// size (4 KiB).
    pub fn sqlite(path: &Path) -> Self {
        Self::sqlite_paged(path, None)
    }

    /// [`Plain::sqlite`] with pages of `page_size` bytes (SQLite's own size if `None`): the
    /// plain write in a file laid out in tierstate's page size.
    pub fn sqlite_paged(path: &Path, page_size: Option<u32>) -> Self {
        let c = rusqlite::Connection::open(path).expect("open plain SQLite file");
        if let Some(size) = page_size {
            c.pragma_update(None, "page_size", size).expect("page_size");
        }
        let mode: String = c
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .expect("WAL");
        assert!(mode.eq_ignore_ascii_case("wal"));
        c.pragma_update(None, "synchronous", "FULL").expect("FULL");
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS rows (id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS hist (id TEXT NOT NULL, version INTEGER NOT NULL, \
                 body BLOB NOT NULL, PRIMARY KEY (id, version));
             CREATE TABLE IF NOT EXISTS elog (seq INTEGER PRIMARY KEY, event_at INTEGER NOT NULL, \
                 body BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS elog_event ON elog (event_at, seq);",
        )
        .expect("plain tables");
        Self::Sqlite(c)
    }

    /// A fresh redb file at `path` with a row table and a log table.
    pub fn redb(path: &Path) -> Self {
        let db = redb::Database::create(path).expect("create plain redb file");
        let txn = db.begin_write().expect("begin");
        txn.open_table(ROWS).expect("rows");
        txn.open_table(LOG).expect("log");
        txn.open_table(HIST).expect("hist");
        txn.open_table(ELOG).expect("elog");
        txn.open_table(ELOG_EVENT).expect("elog_event");
        txn.commit().expect("commit");
        Self::Redb(db)
    }

    /// A fresh schema `schema` on the server at `url` with a row table and a log table.
    pub async fn postgres(url: &str, schema: &str) -> Self {
        use sqlx::Executor;
        let name = schema.to_owned();
        let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("database URL");
        // No ping before each statement (sqlx's default): the bare statement is the baseline.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .after_connect(move |c, _| {
                let set = format!("SET search_path TO \"{name}\"");
                Box::pin(async move {
                    c.execute(sqlx::AssertSqlSafe(set)).await?;
                    Ok(())
                })
            })
            .connect_with(opts.clone())
            .await
            .expect("connect");
        let schema_sql = format!(
            "DROP SCHEMA IF EXISTS \"{s}\" CASCADE; CREATE SCHEMA \"{s}\"; \
             CREATE TABLE \"{s}\".rows (id text PRIMARY KEY, body bytea NOT NULL); \
             CREATE TABLE \"{s}\".log (seq bigint PRIMARY KEY, body bytea NOT NULL); \
             CREATE TABLE \"{s}\".hist (id text, version bigint, body bytea NOT NULL, \
             PRIMARY KEY (id, version)); \
             CREATE TABLE \"{s}\".elog (seq bigint PRIMARY KEY, event_at bigint NOT NULL, \
             body bytea NOT NULL); \
             CREATE INDEX ON \"{s}\".elog (event_at, seq);",
            s = schema
        );
        pool.execute(sqlx::AssertSqlSafe(schema_sql))
            .await
            .expect("plain schema");
        Self::Postgres(pool)
    }

    /// Upserts row `id` with `body`: one durable commit.
    pub async fn put(&mut self, id: &str, body: &[u8]) {
        match self {
            Self::Sqlite(c) => {
                c.prepare_cached(
                    "INSERT INTO rows (id, body) VALUES (?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                )
                .and_then(|mut s| s.execute(rusqlite::params![id, body]))
                .expect("upsert");
            }
            Self::Redb(db) => {
                let txn = durable_write(db);
                txn.open_table(ROWS)
                    .expect("rows")
                    .insert(id, body)
                    .expect("insert");
                txn.commit().expect("commit");
            }
            Self::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO rows (id, body) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                )
                .bind(id)
                .bind(body)
                .execute(&*pool)
                .await
                .expect("upsert");
            }
        }
    }

    /// PostgreSQL only: [`Plain::put`] plus one `pg_notify` on `channel` in the same
    /// statement, what tierstate's CAS announces each commit with.
    pub async fn put_notify(&mut self, id: &str, body: &[u8], channel: &str) {
        let Self::Postgres(pool) = self else {
            return self.put(id, body).await;
        };
        sqlx::query(
            "WITH u AS (INSERT INTO rows (id, body) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET body = excluded.body) \
             SELECT pg_notify($3, 'plain 0 ' || $1)",
        )
        .bind(id)
        .bind(body)
        .bind(channel)
        .execute(&*pool)
        .await
        .expect("upsert and notify");
    }

    /// Appends row `seq` with `body`: one durable commit.
    pub async fn append(&mut self, seq: u64, body: &[u8]) {
        self.tick(None, &[(seq, body)]).await;
    }

    /// One transaction: upserts each `(id, body)` of `rows` and appends each `(seq, body)` of
    /// `entries`, then one durable commit.
    pub async fn tick(&mut self, rows: Option<&[(&str, &[u8])]>, entries: &[(u64, &[u8])]) {
        let rows = rows.unwrap_or(&[]);
        match self {
            Self::Sqlite(c) => {
                let tx = c.transaction().expect("begin");
                for (id, body) in rows {
                    tx.prepare_cached(
                        "INSERT INTO rows (id, body) VALUES (?1, ?2) \
                         ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                    )
                    .and_then(|mut s| s.execute(rusqlite::params![id, body]))
                    .expect("upsert");
                }
                for (seq, body) in entries {
                    tx.prepare_cached("INSERT INTO log (seq, body) VALUES (?1, ?2)")
                        .and_then(|mut s| s.execute(rusqlite::params![*seq as i64, body]))
                        .expect("append");
                }
                tx.commit().expect("commit");
            }
            Self::Redb(db) => {
                let txn = durable_write(db);
                {
                    let mut t = txn.open_table(ROWS).expect("rows");
                    for (id, body) in rows {
                        t.insert(*id, *body).expect("insert");
                    }
                    let mut l = txn.open_table(LOG).expect("log");
                    for (seq, body) in entries {
                        l.insert(*seq, *body).expect("append");
                    }
                }
                txn.commit().expect("commit");
            }
            Self::Postgres(pool) => {
                // One statement, as a driver user would write it: the rows and the entries
                // as arrays, so the whole tick is one round trip and one commit.
                let (ids, bodies): (Vec<&str>, Vec<&[u8]>) = rows.iter().copied().unzip();
                let (seqs, logged): (Vec<i64>, Vec<&[u8]>) =
                    entries.iter().map(|(s, b)| (*s as i64, *b)).unzip();
                sqlx::query(
                    "WITH r AS (INSERT INTO rows (id, body) SELECT * FROM UNNEST($1::text[], \
                     $2::bytea[]) ON CONFLICT (id) DO UPDATE SET body = excluded.body) \
                     INSERT INTO log (seq, body) SELECT * FROM UNNEST($3::bigint[], $4::bytea[])",
                )
                .bind(ids)
                .bind(bodies)
                .bind(seqs)
                .bind(logged)
                .execute(&*pool)
                .await
                .expect("tick");
            }
        }
    }

    /// PostgreSQL only: [`Plain::tick`] in one statement that also sends one `pg_notify` on
    /// `channel` per note, as tierstate announces each moved head and journal.
    pub async fn tick_notify(
        &mut self,
        rows: &[(&str, &[u8])],
        entries: &[(u64, &[u8])],
        channel: &str,
        notes: &[&str],
    ) {
        let Self::Postgres(pool) = self else {
            return self.tick(Some(rows), entries).await;
        };
        let (ids, bodies): (Vec<&str>, Vec<&[u8]>) = rows.iter().copied().unzip();
        let (seqs, logged): (Vec<i64>, Vec<&[u8]>) =
            entries.iter().map(|(s, b)| (*s as i64, *b)).unzip();
        sqlx::query(
            "WITH r AS (INSERT INTO rows (id, body) SELECT * FROM UNNEST($1::text[], \
             $2::bytea[]) ON CONFLICT (id) DO UPDATE SET body = excluded.body), \
             l AS (INSERT INTO log (seq, body) SELECT * FROM UNNEST($3::bigint[], $4::bytea[]) \
             ON CONFLICT (seq) DO UPDATE SET body = excluded.body) \
             SELECT pg_notify($5, 'plain ' || p) FROM UNNEST($6::text[]) AS p",
        )
        .bind(ids)
        .bind(bodies)
        .bind(seqs)
        .bind(logged)
        .bind(channel)
        .bind(notes)
        .execute(&*pool)
        .await
        .expect("tick and notify");
    }

    /// One transaction that keeps history as a plain user of the engine would: each row
    /// inserted as a new version (the oldest beyond `keep` deleted), each entry appended with
    /// its event time and indexed by it; then one durable commit. On PostgreSQL the same
    /// statement sends one `pg_notify` on `channel` per note. What the contract's history and
    /// time windows cost the engine itself, without checksums, chains or CAS.
    pub async fn tick_history(&mut self, t: &HistoryTick<'_>, channel: &str, notes: &[&str]) {
        let old = t.version.checked_sub(t.keep);
        match self {
            Self::Sqlite(c) => {
                let tx = c.transaction().expect("begin");
                for (id, body) in t.rows {
                    tx.prepare_cached("INSERT INTO hist (id, version, body) VALUES (?1, ?2, ?3)")
                        .and_then(|mut s| s.execute(rusqlite::params![id, t.version as i64, body]))
                        .expect("version");
                    if let Some(old) = old {
                        tx.prepare_cached("DELETE FROM hist WHERE id = ?1 AND version <= ?2")
                            .and_then(|mut s| s.execute(rusqlite::params![id, old as i64]))
                            .expect("prune");
                    }
                }
                for (seq, at, body) in t.entries {
                    tx.prepare_cached("INSERT INTO elog (seq, event_at, body) VALUES (?1, ?2, ?3)")
                        .and_then(|mut s| s.execute(rusqlite::params![*seq as i64, at, body]))
                        .expect("append");
                }
                tx.commit().expect("commit");
            }
            Self::Redb(db) => {
                let txn = durable_write(db);
                {
                    let mut h = txn.open_table(HIST).expect("hist");
                    for (id, body) in t.rows {
                        h.insert((*id, t.version), *body).expect("version");
                        if let Some(old) = old {
                            h.remove((*id, old)).expect("prune");
                        }
                    }
                    let mut l = txn.open_table(ELOG).expect("elog");
                    let mut e = txn.open_table(ELOG_EVENT).expect("elog_event");
                    for (seq, at, body) in t.entries {
                        l.insert(*seq, (*at, *body)).expect("append");
                        e.insert((*at, *seq), ()).expect("index");
                    }
                }
                txn.commit().expect("commit");
            }
            Self::Postgres(pool) => {
                let (ids, bodies): (Vec<&str>, Vec<&[u8]>) = t.rows.iter().copied().unzip();
                let seqs: Vec<i64> = t.entries.iter().map(|e| e.0 as i64).collect();
                let ats: Vec<i64> = t.entries.iter().map(|e| e.1).collect();
                let logged: Vec<&[u8]> = t.entries.iter().map(|e| e.2).collect();
                sqlx::query(
                    "WITH h AS (INSERT INTO hist (id, version, body) \
                     SELECT i, $2, b FROM UNNEST($1::text[], $3::bytea[]) AS u(i, b)), \
                     p AS (DELETE FROM hist WHERE id = ANY($1) AND version <= $4), \
                     l AS (INSERT INTO elog (seq, event_at, body) \
                     SELECT * FROM UNNEST($5::bigint[], $6::bigint[], $7::bytea[])) \
                     SELECT pg_notify($8, 'plain ' || p) FROM UNNEST($9::text[]) AS p",
                )
                .bind(ids)
                .bind(t.version as i64)
                .bind(bodies)
                .bind(old.map_or(0, |o| o as i64))
                .bind(seqs)
                .bind(ats)
                .bind(logged)
                .bind(channel)
                .bind(notes)
                .execute(&*pool)
                .await
                .expect("tick with history");
            }
        }
    }

    /// Reads row `id` back (`None` if absent): the engine's plain point read.
    pub fn get(&self, id: &str) -> Option<Vec<u8>> {
        match self {
            Self::Sqlite(c) => {
                use rusqlite::OptionalExtension;
                c.prepare_cached("SELECT body FROM rows WHERE id = ?1")
                    .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                    .expect("read")
            }
            Self::Redb(db) => {
                let txn = db.begin_read().expect("begin");
                let t = txn.open_table(ROWS).expect("rows");
                t.get(id).expect("read").map(|v| v.value().to_vec())
            }
            Self::Postgres(_) => None,
        }
    }
}

/// A redb write transaction that commits with `Durability::Immediate` (one fsync), as every
/// plain durable write here does.
pub(crate) fn durable_write(db: &redb::Database) -> redb::WriteTransaction {
    let mut txn = db.begin_write().expect("begin");
    txn.set_durability(redb::Durability::Immediate)
        .expect("durability");
    txn
}
