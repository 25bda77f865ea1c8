//! One statement that stores a whole plan: every head moves only where it still stands where
//! the plan assumed, every version, entry and prune is written, and the NOTIFY is queued. If a
//! single head had moved, the statement raises and nothing of it stays.
//!
//! The locking transaction runs it after reading its snapshot under row locks (the guards then
//! only catch a create that raced it); the optimistic path (`optimistic.rs`) runs it alone in
//! autocommit against heads it remembers, so a batch commits in one round trip.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::DateTime;

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, PgConnection};
use tierstate_core::plan::Plan;
use tierstate_core::{DocAddr, StreamAddr};

use crate::notify::NOTIFY_CHANNEL;

/// One row of the statement's answer: the guard's result, then a moved head's kind (`s` or
/// `d`), address and `created_at`.
type MovedRow = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// The text of the error the statement raises when a head had moved (SQLSTATE 22P02: a cast
/// of this text to an integer, the one way a plain statement can raise without a function).
const MOVED: &str = "tierstate: a head moved since the batch was planned";

/// True if `e` is the statement's own guard: a head had moved, nothing was written.
pub(crate) fn head_moved(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("22P02") && db.message().contains(MOVED))
}

/// Where the statement expects a stream's head: the sequence number and hash the plan chained
/// its first entry to.
pub(crate) fn expected_heads(plan: &Plan) -> Vec<(&StreamAddr, i64, &str)> {
    let mut firsts: HashMap<&StreamAddr, (i64, &str)> = HashMap::new();
    for e in &plan.entries {
        firsts
            .entry(&e.stream)
            .or_insert((i64_of(e.seq.saturating_sub(1)), e.prev_hash.as_str()));
    }
    plan.heads
        .iter()
        .filter_map(|(s, _, _)| firsts.get(s).map(|(seq, hash)| (s, *seq, *hash)))
        .collect()
}

/// The NOTIFY payloads of a plan: `"<version> <id>"` per state, `"j <stream>"` per journal.
pub(crate) fn payloads(plan: &Plan) -> Vec<String> {
    let mut p: Vec<String> = plan
        .states
        .iter()
        .map(|w| format!("{} {}", w.version, w.address))
        .collect();
    p.extend(plan.heads.iter().map(|(s, _, _)| format!("j {s}")));
    p
}

/// A document head the statement guards: the version it must stand at, and whether the
/// statement removes the document (with its history) or only checks it (under a share lock).
pub(crate) struct DocGuard<'a> {
    /// The document.
    pub(crate) address: &'a DocAddr,
    /// The version its head must have.
    pub(crate) version: u64,
    /// Remove it (a planned removal) rather than only check it (a batch guard).
    pub(crate) remove: bool,
}

/// Stores `plan` in one statement, and sets each moved head's `created_at` in the plan (and
/// what it reports) to the stored one: a head planned from a remembered version may have been
/// re-created since. The plan's document removals are stored apart by the locking path; the
/// optimistic path passes them, and the batch's checks, as `guards`.
///
/// # Errors
/// The statement's error: [`head_moved`] if a head no longer stood where the plan assumed, a
/// unique violation if a row it inserts exists (another writer won), or the connection's.
pub(crate) async fn store(
    c: &mut PgConnection,
    plan: &mut Plan,
    guards: &[DocGuard<'_>],
) -> Result<(), sqlx::Error> {
    if plan.states.is_empty()
        && plan.documents.is_empty()
        && plan.entries.is_empty()
        && guards.is_empty()
    {
        // Only replays (or removals, stored apart): nothing to write or announce.
        return Ok(());
    }
    let mut b = Binds::default();
    let mut ctes: Vec<String> = Vec::new();
    // Heads are counted in the final SELECT in this order (states, documents, journals, each
    // sorted), the order the locking path takes row locks in.
    let mut counted: Vec<&str> = Vec::new();
    let mut expected_moves = 0usize;

    let mut states: Vec<_> = plan.states.iter().collect();
    states.sort_by(|a, b| a.address.cmp(&b.address));
    if !states.is_empty() {
        let s = &states;
        let cols = [
            b.col("text[]", s, |w| w.address.as_str()),
            b.col("bigint[]", s, |w| i64_of(w.version)),
            b.col("bigint[]", s, |w| w.created_us),
            b.col("int[]", s, |w| {
                i32::try_from(w.schema_version).unwrap_or(i32::MAX)
            }),
            b.col("text[]", s, |w| w.checksum.as_str()),
            b.col("bigint[]", s, |w| w.updated_us),
            b.col("bytea[]", s, |w| w.body.as_slice()),
            b.col("bigint[]", s, |w| w.prune_below.map(i64_of)),
        ];
        ctes.push(format!(
            "sa AS (SELECT * FROM {} \
             AS a(id, version, created_at, schema_version, checksum, updated_at, body, prune_below, n))",
            rows_of(s.len(), &cols, true)
        ));
        // An existing head moves only from the version the plan assumed; version 1 is only
        // ever inserted (so a head deleted meanwhile is not silently re-created).
        ctes.push(
            "su AS (UPDATE ts_head t SET version = sa.version FROM sa \
             WHERE t.deployment_id = sa.id AND sa.version > 1 AND t.version = sa.version - 1 \
             RETURNING t.deployment_id, t.created_at)"
                .into(),
        );
        // The insert of first versions is left out when there is none (a tick's usual case):
        // every node of this statement is set up on each execution.
        if states.iter().any(|w| w.version == 1) {
            ctes.push(
                "si AS (INSERT INTO ts_head (deployment_id, version, created_at) \
                 SELECT id, version, created_at FROM sa WHERE version = 1 ORDER BY n \
                 ON CONFLICT DO NOTHING RETURNING deployment_id, created_at)"
                    .into(),
            );
            ctes.push("sh AS (SELECT * FROM su UNION ALL SELECT * FROM si)".into());
        } else {
            ctes.push("sh AS (SELECT * FROM su)".into());
        }
        ctes.push(
            "sv AS (INSERT INTO ts_version (deployment_id, version, schema_version, checksum, \
             updated_at, body) SELECT id, version, schema_version, checksum, updated_at, body FROM sa)"
                .into(),
        );
        if states.iter().any(|w| w.prune_below.is_some()) {
            ctes.push(
                "sp AS (DELETE FROM ts_version d USING sa WHERE d.deployment_id = sa.id \
                 AND d.version < sa.prune_below)"
                    .into(),
            );
        }
        counted.push("sh");
        expected_moves += states.len();
    }

    let mut docs: Vec<_> = plan.documents.iter().collect();
    docs.sort_by(|a, b| a.address.cmp(&b.address));
    if !docs.is_empty() {
        let d = &docs;
        let cols = [
            b.col("text[]", d, |w| w.address.deployment_id.as_str()),
            b.col("text[]", d, |w| w.address.collection.as_str()),
            b.col("text[]", d, |w| w.address.key.as_str()),
            b.col("bigint[]", d, |w| i64_of(w.version)),
            b.col("bigint[]", d, |w| w.created_us),
            b.col("text[]", d, |w| w.checksum.as_str()),
            b.col("bigint[]", d, |w| w.updated_us),
            b.col("bytea[]", d, |w| w.body.as_slice()),
            b.col("bigint[]", d, |w| w.prune_below.map(i64_of)),
        ];
        ctes.push(format!(
            "da AS (SELECT * FROM {} \
             AS a(d, c, k, version, created_at, checksum, updated_at, body, prune_below, n))",
            rows_of(d.len(), &cols, true)
        ));
        ctes.push(
            "du AS (UPDATE ts_doc_head t SET version = da.version FROM da \
             WHERE t.deployment_id = da.d AND t.collection = da.c AND t.key = da.k \
             AND da.version > 1 AND t.version = da.version - 1 \
             RETURNING t.deployment_id, t.collection, t.key, t.created_at)"
                .into(),
        );
        if docs.iter().any(|w| w.version == 1) {
            ctes.push(
                "di AS (INSERT INTO ts_doc_head (deployment_id, collection, key, version, created_at) \
                 SELECT d, c, k, version, created_at FROM da WHERE version = 1 ORDER BY n \
                 ON CONFLICT DO NOTHING RETURNING deployment_id, collection, key, created_at)"
                    .into(),
            );
            ctes.push("dh AS (SELECT * FROM du UNION ALL SELECT * FROM di)".into());
        } else {
            ctes.push("dh AS (SELECT * FROM du)".into());
        }
        ctes.push(
            "dv AS (INSERT INTO ts_doc_version (deployment_id, collection, key, version, checksum, \
             updated_at, body) SELECT d, c, k, version, checksum, updated_at, body FROM da)"
                .into(),
        );
        if docs.iter().any(|w| w.prune_below.is_some()) {
            ctes.push(
                "dp AS (DELETE FROM ts_doc_version v USING da WHERE v.deployment_id = da.d \
                 AND v.collection = da.c AND v.key = da.k AND v.version < da.prune_below)"
                    .into(),
            );
        }
        counted.push("dh");
        expected_moves += docs.len();
    }

    if !plan.entries.is_empty() {
        let e = &plan.entries;
        let cols = [
            b.col("text[]", e, |e| e.stream.deployment_id.as_str()),
            b.col("text[]", e, |e| e.stream.stream.as_str()),
            b.col("bigint[]", e, |e| i64_of(e.seq)),
            b.col("bigint[]", e, |e| e.event_us),
            b.col("bigint[]", e, |e| e.commit_us),
            b.col("text[]", e, |e| e.key.as_deref()),
            b.col("text[]", e, |e| e.checksum.as_str()),
            b.col("text[]", e, |e| e.prev_hash.as_str()),
            b.col("text[]", e, |e| e.hash.as_str()),
            b.col("bytea[]", e, |e| e.body.as_slice()),
        ];
        ctes.push(format!(
            "je AS (INSERT INTO ts_journal (deployment_id, stream, seq, event_at, commit_at, \
             idem_key, checksum, prev_hash, hash, body) SELECT * FROM {} AS j)",
            rows_of(e.len(), &cols, false)
        ));
    }

    let mut heads: Vec<_> = plan.heads.iter().collect();
    heads.sort_by(|a, b| a.0.cmp(&b.0));
    let expected = expected_heads(plan);
    if !heads.is_empty() {
        let prev = |s: &StreamAddr| expected.iter().find(|(x, _, _)| *x == s);
        let h = &heads;
        let cols = [
            b.col("text[]", h, |h| h.0.deployment_id.as_str()),
            b.col("text[]", h, |h| h.0.stream.as_str()),
            b.col("bigint[]", h, |h| prev(&h.0).map_or(-1, |p| p.1)),
            b.col("text[]", h, |h| prev(&h.0).map_or("", |p| p.2)),
            b.col("bigint[]", h, |h| i64_of(h.1.last_seq)),
            b.col("text[]", h, |h| h.1.last_hash.to_hex()),
            b.col("bigint[]", h, |h| h.1.last_commit_us),
        ];
        ctes.push(format!(
            "ha AS (SELECT * FROM {} AS a(d, s, prev_seq, prev_hash, last_seq, last_hash, \
             last_commit_at))",
            rows_of(h.len(), &cols, false)
        ));
        // Only the `last_*` columns: a truncation's anchor (`base_*`) is not the append's to set.
        ctes.push(
            "jh AS (UPDATE ts_journal_head t SET last_seq = ha.last_seq, last_hash = ha.last_hash, \
             last_commit_at = ha.last_commit_at FROM ha WHERE ha.prev_seq > 0 \
             AND t.deployment_id = ha.d AND t.stream = ha.s AND t.last_seq = ha.prev_seq \
             AND t.last_hash = ha.prev_hash RETURNING 1)"
                .into(),
        );
        counted.push("jh");
        // A first append: the head row may not exist yet (the optimistic path guessed the
        // stream empty without reading it), so it is inserted, or moved only if still empty.
        if expected.iter().any(|(_, seq, _)| *seq == 0) {
            ctes.push(
                "jf AS (INSERT INTO ts_journal_head AS t (deployment_id, stream, last_seq, \
                 last_hash, last_commit_at, base_seq, base_hash) \
                 SELECT d, s, last_seq, last_hash, last_commit_at, 0, prev_hash FROM ha \
                 WHERE prev_seq = 0 ORDER BY d, s \
                 ON CONFLICT (deployment_id, stream) DO UPDATE SET last_seq = excluded.last_seq, \
                 last_hash = excluded.last_hash, last_commit_at = excluded.last_commit_at \
                 WHERE t.last_seq = 0 AND t.last_hash = excluded.base_hash RETURNING 1)"
                    .into(),
            );
            counted.push("jf");
        }
        expected_moves += heads.len();
    }

    if !guards.is_empty() {
        let g = guards;
        let cols = [
            b.col("text[]", g, |g| g.address.deployment_id.as_str()),
            b.col("text[]", g, |g| g.address.collection.as_str()),
            b.col("text[]", g, |g| g.address.key.as_str()),
            b.col("bigint[]", g, |g| i64_of(g.version)),
            b.col("bool[]", g, |g| g.remove),
        ];
        ctes.push(format!(
            "ga AS (SELECT * FROM {} AS a(d, c, k, v, rm))",
            rows_of(g.len(), &cols, false)
        ));
        // A checked head is share-locked where it stands, so no writer moves it before this
        // commits; a removed one is deleted only where it stands.
        ctes.push(
            "gc AS (SELECT 1 FROM ts_doc_head t, ga WHERE NOT ga.rm AND t.deployment_id = ga.d \
             AND t.collection = ga.c AND t.key = ga.k AND t.version = ga.v FOR SHARE OF t)"
                .into(),
        );
        ctes.push(
            "gr AS (DELETE FROM ts_doc_head t USING ga WHERE ga.rm AND t.deployment_id = ga.d \
             AND t.collection = ga.c AND t.key = ga.k AND t.version = ga.v RETURNING 1)"
                .into(),
        );
        if guards.iter().any(|g| g.remove) {
            ctes.push(
                "gv AS (DELETE FROM ts_doc_version v USING ga WHERE ga.rm \
                 AND v.deployment_id = ga.d AND v.collection = ga.c AND v.key = ga.k)"
                    .into(),
            );
        }
        counted.push("gc");
        counted.push("gr");
        expected_moves += guards.len();
    }

    let notes = payloads(plan);
    if !notes.is_empty() {
        let ch = b.one("text", NOTIFY_CHANNEL);
        let p = b.col("text[]", &notes, String::as_str);
        // Prefixed with the schema: managers on other schemas of the same database hear the
        // channel too, and must not evict their own entries of the same id.
        ctes.push(format!(
            "nt AS (SELECT pg_notify({ch}, current_schema() || ' ' || p) FROM {} AS n(p))",
            rows_of(notes.len(), &[p], false)
        ));
        // Counted so the CTE is evaluated at all (an unreferenced SELECT is not).
        counted.push("nt");
        expected_moves += plan.states.len() + plan.heads.len();
    }

    let want = b.one("bigint", i64::try_from(expected_moves).unwrap_or(i64::MAX));
    let total = if counted.is_empty() {
        "0".to_owned()
    } else {
        counted
            .iter()
            .map(|c| format!("(SELECT count(*) FROM {c})"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    // `OFFSET 0` keeps `m` a subquery of its own: pulled up, each count's sub-select was set
    // up twice, once for each use of `m`.
    ctes.push(format!(
        "g AS (SELECT CASE WHEN m = {want} THEN 0 ELSE \
         ('{MOVED}: ' || m || ' of ' || {want} || ' rows')::int END AS ok \
         FROM (SELECT {total} AS m OFFSET 0) t)"
    ));
    let mut sql = format!("WITH {}", ctes.join(", "));
    let mut rows: Vec<String> = Vec::new();
    if counted.contains(&"sh") {
        rows.push("SELECT 's', deployment_id, '', '', created_at FROM sh".into());
    }
    if counted.contains(&"dh") {
        rows.push("SELECT 'd', deployment_id, collection, key, created_at FROM dh".into());
    }
    if rows.is_empty() {
        sql.push_str(
            " SELECT g.ok, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint FROM g",
        );
    } else {
        let _ = write!(
            sql,
            " SELECT g.ok, r.* FROM g LEFT JOIN ({}) AS r(kind, d, c, k, created_at) ON true",
            rows.join(" UNION ALL ")
        );
    }

    let found: Vec<MovedRow> = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), b.args)
        .fetch_all(&mut *c)
        .await?;
    let mut states: HashMap<String, i64> = HashMap::new();
    let mut docs: HashMap<(String, String, String), i64> = HashMap::new();
    for (_, kind, d, col, k, created) in found {
        match (kind.as_deref(), d, col, k, created) {
            (Some("s"), Some(d), _, _, Some(at)) => {
                states.insert(d, at);
            }
            (Some("d"), Some(d), Some(col), Some(k), Some(at)) => {
                docs.insert((d, col, k), at);
            }
            _ => {}
        }
    }
    let time = |at: i64, or| DateTime::from_timestamp_micros(at).unwrap_or(or);
    // Planned rows and reported records are in the same (batch) order.
    for (w, r) in plan.states.iter_mut().zip(plan.committed.states.iter_mut()) {
        if let Some(&at) = states.get(w.address.as_str()) {
            w.created_us = at;
            r.created_at = time(at, r.created_at);
        }
    }
    for (w, r) in plan
        .documents
        .iter_mut()
        .zip(plan.committed.documents.iter_mut())
    {
        let a = &w.address;
        let k = (
            a.deployment_id.to_string(),
            a.collection.to_string(),
            a.key.to_string(),
        );
        if let Some(&at) = docs.get(&k) {
            w.created_us = at;
            r.created_at = time(at, r.created_at);
        }
    }
    Ok(())
}

/// Bound values with their placeholders, made together so the two cannot drift apart.
#[derive(Default)]
struct Binds {
    args: PgArguments,
    n: usize,
}

impl Binds {
    /// Binds `v`; returns its placeholder, cast to `sql_type`. (Encoding into a growable
    /// buffer cannot fail for these types.)
    fn one<'q, T>(&mut self, sql_type: &str, v: T) -> String
    where
        T: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        let _ = self.args.add(v);
        self.n += 1;
        format!("${}::{sql_type}", self.n)
    }

    /// Binds one column of `rows`: an array (for `UNNEST`), or for a single row its value
    /// (for `VALUES`; see [`rows_of`]). `sql_type` is the array type.
    fn col<'q, 'r, R, T>(&mut self, sql_type: &str, rows: &'r [R], f: impl Fn(&'r R) -> T) -> String
    where
        T: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        Vec<T>: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        match rows {
            [one] => self.one(sql_type.trim_end_matches("[]"), f(one)),
            _ => self.one(sql_type, rows.iter().map(f).collect::<Vec<_>>()),
        }
    }
}

/// The `FROM` item of `n` rows whose columns [`Binds::col`] bound: `UNNEST` of the arrays, or
/// for one row a `VALUES` row of plain parameters, whose plan costs no array unpacking and
/// whose joins are estimated at one row. `ordinal` appends the row number (`WITH ORDINALITY`).
fn rows_of(n: usize, cols: &[String], ordinal: bool) -> String {
    match (n, ordinal) {
        (1, true) => format!("(VALUES ({}, 1::bigint))", cols.join(", ")),
        (1, false) => format!("(VALUES ({}))", cols.join(", ")),
        (_, true) => format!("UNNEST({}) WITH ORDINALITY", cols.join(", ")),
        (_, false) => format!("UNNEST({})", cols.join(", ")),
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
