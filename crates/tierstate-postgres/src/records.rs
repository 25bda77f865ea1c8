//! SQL for documents, journals and time travel on PostgreSQL: reading (and row-locking) a
//! batch's snapshot, storing its plan, and the read queries. The rules are in
//! `tierstate_core::plan` and `tierstate_core::journal`; this file only moves rows.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use tierstate_core::journal::{Fetch, JournalHead, StoredEntry, genesis_hash};
use tierstate_core::plan::{Plan, Reads, Snapshot};
use tierstate_core::{DocAddr, Name, Result, StoredDoc, StreamAddr};

use crate::error::map;

/// Rows per multi-row statement: arrays of this many addresses stay far below the protocol's
/// limits while a big batch still costs a handful of round trips.
const CHUNK: usize = 10_000;

/// The deployment, collection and key columns of `addrs`, for `UNNEST`.
fn columns<'a>(
    addrs: impl IntoIterator<Item = &'a DocAddr>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for a in addrs {
        out.0.push(a.deployment_id.as_str());
        out.1.push(a.collection.as_str());
        out.2.push(a.key.as_str());
    }
    out
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Reads and locks (`FOR UPDATE`, in a fixed order) the heads a batch depends on. Journal
/// heads are created first if missing, so appenders to a new stream queue on its row too.
pub(crate) async fn snapshot(
    c: &mut PgConnection,
    reads: &Reads,
) -> std::result::Result<Result<Snapshot>, sqlx::Error> {
    let mut snap = Snapshot::default();
    if !reads.states.is_empty() {
        let ids: Vec<&str> = reads.states.iter().map(|i| i.as_str()).collect();
        let rows = sqlx::query(
            "SELECT deployment_id, version, created_at FROM ts_head WHERE deployment_id = ANY($1) \
             ORDER BY deployment_id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?;
        for r in rows {
            let id: String = r.try_get(0)?;
            if let Some(k) = reads.states.iter().find(|i| i.as_str() == id) {
                snap.states
                    .insert(k.clone(), (u64_of(r.try_get(1)?), r.try_get(2)?));
            }
        }
    }
    // Every document head in one statement per chunk, locked in one fixed order.
    for chunk in reads.documents.chunks(CHUNK) {
        let (ds, cs, ks) = columns(chunk);
        // One primary-key probe per address, in the array's (sorted) order, each row locked
        // as it is found: every batch locks in the same order, and no plan can turn the
        // probes into a scan of the table.
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT a.d, a.c, a.k, h.version, h.created_at \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS a(d, c, k, n) \
             CROSS JOIN LATERAL (SELECT version, created_at FROM ts_doc_head \
             WHERE deployment_id = a.d AND collection = a.c AND key = a.k LIMIT 1 FOR UPDATE) h \
             ORDER BY a.n",
        )
        .bind(ds)
        .bind(cs)
        .bind(ks)
        .fetch_all(&mut *c)
        .await?;
        let wanted: HashMap<(&str, &str, &str), &DocAddr> = chunk
            .iter()
            .map(|a| {
                (
                    (
                        a.deployment_id.as_str(),
                        a.collection.as_str(),
                        a.key.as_str(),
                    ),
                    a,
                )
            })
            .collect();
        for (d, col, k, v, created) in rows {
            if let Some(a) = wanted.get(&(d.as_str(), col.as_str(), k.as_str())) {
                snap.documents.insert((*a).clone(), (u64_of(v), created));
            }
        }
    }
    for s in &reads.streams {
        let g = genesis_hash(s).to_hex();
        sqlx::query(
            "INSERT INTO ts_journal_head (deployment_id, stream, last_seq, last_hash, last_commit_at, \
             base_seq, base_hash) VALUES ($1, $2, 0, $3, $4, 0, $3) ON CONFLICT DO NOTHING",
        )
        .bind(s.deployment_id.as_str())
        .bind(s.stream.as_str())
        .bind(&g)
        .bind(i64::MIN)
        .execute(&mut *c)
        .await?;
        match head(&mut *c, s, true).await? {
            Ok(Some(h)) => {
                snap.heads.insert(s.clone(), h);
            }
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
    // Every idempotency key in one statement per chunk.
    for chunk in reads.keys.chunks(CHUNK) {
        // One unique-index probe per key (a lateral `LIMIT 1`): as a plain join, a cached
        // generic plan hashed the whole journal once it had grown (13 s for 5,000 keys
        // against 100,000 entries).
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT j.*, a.d, a.s, a.k FROM UNNEST($1::text[], $2::text[], $3::text[]) AS a(d, s, k) \
             CROSS JOIN LATERAL (SELECT {ENTRY} FROM ts_journal WHERE deployment_id = a.d \
             AND stream = a.s AND idem_key = a.k LIMIT 1) j"
        )))
        .bind(
            chunk
                .iter()
                .map(|(s, _)| s.deployment_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            chunk
                .iter()
                .map(|(s, _)| s.stream.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *c)
        .await?;
        let wanted: HashMap<(&str, &str, &str), &(StreamAddr, Name)> = chunk
            .iter()
            .map(|p| {
                (
                    (
                        p.0.deployment_id.as_str(),
                        p.0.stream.as_str(),
                        p.1.as_str(),
                    ),
                    p,
                )
            })
            .collect();
        for r in &rows {
            let (d, st, k): (&str, &str, &str) = (r.try_get(8)?, r.try_get(9)?, r.try_get(10)?);
            if let Some(p) = wanted.get(&(d, st, k)) {
                snap.keyed.insert((*p).clone(), entry_of(&p.0, r)?);
            }
        }
    }
    Ok(Ok(snap))
}

/// A stream's head (`lock`: `FOR UPDATE`).
pub(crate) async fn head(
    c: &mut PgConnection,
    s: &StreamAddr,
    lock: bool,
) -> std::result::Result<Result<Option<JournalHead>>, sqlx::Error> {
    let sql = if lock {
        "SELECT last_seq, last_hash, last_commit_at, base_seq, base_hash FROM ts_journal_head \
         WHERE deployment_id = $1 AND stream = $2 FOR UPDATE"
    } else {
        "SELECT last_seq, last_hash, last_commit_at, base_seq, base_hash FROM ts_journal_head \
         WHERE deployment_id = $1 AND stream = $2"
    };
    let row: Option<(i64, String, i64, i64, String)> = sqlx::query_as(sql)
        .bind(s.deployment_id.as_str())
        .bind(s.stream.as_str())
        .fetch_optional(&mut *c)
        .await?;
    Ok(row
        .map(|(l, lh, lc, b, bh)| JournalHead::from_stored(s, l, &lh, lc, b, &bh))
        .transpose())
}

/// Removes the documents a plan removes, with their history (the rest of the plan is stored
/// by `statement::store`).
pub(crate) async fn remove(
    c: &mut PgConnection,
    plan: &Plan,
) -> std::result::Result<(), sqlx::Error> {
    for chunk in plan.removals.chunks(CHUNK) {
        let (ds, cs, ks) = columns(chunk);
        for table in ["ts_doc_version", "ts_doc_head"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} t USING UNNEST($1::text[], $2::text[], $3::text[]) AS a(d, c, k) \
                 WHERE t.deployment_id = a.d AND t.collection = a.c AND t.key = a.k"
            )))
            .bind(&ds)
            .bind(&cs)
            .bind(&ks)
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}

/// Writes a stream's head whole (truncation moves its anchor).
pub(crate) async fn put_head(
    c: &mut PgConnection,
    s: &StreamAddr,
    h: &JournalHead,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ts_journal_head (deployment_id, stream, last_seq, last_hash, last_commit_at, \
         base_seq, base_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (deployment_id, stream) DO UPDATE SET last_seq = excluded.last_seq, \
         last_hash = excluded.last_hash, last_commit_at = excluded.last_commit_at, \
         base_seq = excluded.base_seq, base_hash = excluded.base_hash",
    )
    .bind(s.deployment_id.as_str())
    .bind(s.stream.as_str())
    .bind(i64_of(h.last_seq))
    .bind(h.last_hash.to_hex())
    .bind(h.last_commit_us)
    .bind(i64_of(h.base_seq))
    .bind(h.base_hash.to_hex())
    .execute(&mut *c)
    .await?;
    Ok(())
}

const ENTRY: &str = "seq, event_at, commit_at, idem_key, checksum, prev_hash, hash, body";

fn entry_of(s: &StreamAddr, r: &PgRow) -> std::result::Result<StoredEntry, sqlx::Error> {
    Ok(StoredEntry {
        stream: s.clone(),
        seq: u64_of(r.try_get(0)?),
        event_us: r.try_get(1)?,
        commit_us: r.try_get(2)?,
        key: r.try_get(3)?,
        checksum: r.try_get(4)?,
        prev_hash: r.try_get(5)?,
        hash: r.try_get(6)?,
        body: r.try_get(7)?,
    })
}

/// Runs a resolved journal fetch.
pub(crate) async fn fetch(
    c: &mut PgConnection,
    s: &StreamAddr,
    f: &Fetch,
) -> std::result::Result<Vec<StoredEntry>, sqlx::Error> {
    let base = "FROM ts_journal WHERE deployment_id = $1 AND stream = $2";
    let q = match f {
        Fetch::Nothing => return Ok(Vec::new()),
        Fetch::Seq { lo, hi } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} {base} AND seq BETWEEN $3 AND $4 ORDER BY seq"
        )))
        .bind(s.deployment_id.as_str())
        .bind(s.stream.as_str())
        .bind(i64_of(*lo))
        .bind(i64_of(*hi)),
        Fetch::Window {
            from_us,
            to_us,
            after,
            limit,
        } => {
            let (ae, aseq) = Fetch::window_start(*from_us, *after);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY} {base} AND (event_at, seq) > ($3, $4) AND event_at < $5 \
                 ORDER BY event_at, seq LIMIT $6"
            )))
            .bind(s.deployment_id.as_str())
            .bind(s.stream.as_str())
            .bind(ae)
            .bind(aseq)
            .bind(*to_us)
            .bind(i64_of(*limit as u64))
        }
        Fetch::WindowDesc {
            from_us,
            before,
            limit,
        } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} {base} AND (event_at, seq) < ($3, $4) AND event_at >= $5 \
             ORDER BY event_at DESC, seq DESC LIMIT $6"
        )))
        .bind(s.deployment_id.as_str())
        .bind(s.stream.as_str())
        .bind(before.0)
        .bind(before.1)
        .bind(*from_us)
        .bind(i64_of(*limit as u64)),
        Fetch::AtOrBefore { at_us } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} {base} AND event_at <= $3 ORDER BY event_at DESC, seq DESC LIMIT 1"
        )))
        .bind(s.deployment_id.as_str())
        .bind(s.stream.as_str())
        .bind(*at_us),
        Fetch::Key(k) => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} {base} AND idem_key = $3"
        )))
        .bind(s.deployment_id.as_str())
        .bind(s.stream.as_str())
        .bind(k.as_str().to_owned()),
    };
    let rows = q.fetch_all(&mut *c).await?;
    rows.iter().map(|r| entry_of(s, r)).collect()
}

/// Stored versions of a document, newest first (optionally only the current one, or those
/// committed by `at_us`), and its oldest retained version.
pub(crate) async fn doc_versions(
    c: &mut PgConnection,
    a: &DocAddr,
    current_only: bool,
    at_us: Option<i64>,
    limit: usize,
) -> std::result::Result<(Vec<StoredDoc>, Option<u64>), sqlx::Error> {
    let cond = if current_only {
        " AND v.version = h.version"
    } else {
        ""
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT h.created_at, v.version, v.checksum, v.updated_at, v.body FROM ts_doc_head h \
         JOIN ts_doc_version v ON v.deployment_id = h.deployment_id AND v.collection = h.collection \
         AND v.key = h.key WHERE h.deployment_id = $1 AND h.collection = $2 AND h.key = $3{cond} \
         AND v.updated_at <= $4 ORDER BY v.version DESC LIMIT $5"
    )))
    .bind(a.deployment_id.as_str())
    .bind(a.collection.as_str())
    .bind(a.key.as_str())
    .bind(at_us.unwrap_or(i64::MAX))
    .bind(i64_of(limit as u64))
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(StoredDoc {
            address: a.clone(),
            version: u64_of(r.try_get(1)?),
            body: r.try_get(4)?,
            checksum: r.try_get(2)?,
            created_at_us: r.try_get(0)?,
            updated_at_us: r.try_get(3)?,
        });
    }
    let oldest: Option<i64> = if at_us.is_some() {
        sqlx::query_scalar(
            "SELECT min(version) FROM ts_doc_version WHERE deployment_id = $1 AND collection = $2 AND key = $3",
        )
        .bind(a.deployment_id.as_str())
        .bind(a.collection.as_str())
        .bind(a.key.as_str())
        .fetch_one(&mut *c)
        .await?
    } else {
        None
    };
    Ok((out, oldest.map(u64_of)))
}

/// One retained version of a document (`None`: never stored, or pruned).
pub(crate) async fn doc_version(
    c: &mut PgConnection,
    a: &DocAddr,
    version: u64,
) -> std::result::Result<Option<StoredDoc>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT h.created_at, v.version, v.checksum, v.updated_at, v.body FROM ts_doc_head h \
         JOIN ts_doc_version v ON v.deployment_id = h.deployment_id AND v.collection = h.collection \
         AND v.key = h.key WHERE h.deployment_id = $1 AND h.collection = $2 AND h.key = $3 \
         AND v.version = $4",
    )
    .bind(a.deployment_id.as_str())
    .bind(a.collection.as_str())
    .bind(a.key.as_str())
    .bind(i64_of(version))
    .fetch_optional(&mut *c)
    .await?;
    row.map(|r| {
        Ok(StoredDoc {
            address: a.clone(),
            version: u64_of(r.try_get(1)?),
            body: r.try_get(4)?,
            checksum: r.try_get(2)?,
            created_at_us: r.try_get(0)?,
            updated_at_us: r.try_get(3)?,
        })
    })
    .transpose()
}

/// Current documents of one collection inside `range`, in its key order. One statement per
/// shape of range, so each bound is an index seek (a `$3 IS NULL OR key > $3` filter can
/// become a walk from the collection's start under a generic plan).
pub(crate) async fn scan_docs(
    c: &mut PgConnection,
    id: &tierstate_core::DeploymentId,
    collection: &Name,
    range: &tierstate_core::KeyRange,
    limit: usize,
) -> std::result::Result<Vec<Result<StoredDoc>>, sqlx::Error> {
    if range.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    // Placeholders are numbered in bind order: only the bounds the range has are bound.
    let mut bounds = String::new();
    let mut n = 2;
    for (bound, op) in [(&range.after, ">"), (&range.before, "<")] {
        if bound.is_some() {
            n += 1;
            bounds.push_str(&format!(" AND key {op} ${n}"));
        }
    }
    let order = if range.descending { "DESC" } else { "ASC" };
    // The heads first (an index range, cut at the limit), then each one's version row by
    // its primary key (`LIMIT 1` keeps the lateral lookup from being flattened into a join).
    // A plain join lets the planner, after ANALYZE has seen a small collection, pick a nested
    // loop that rescans the whole collection per head (measured: 100 documents, 1.2 ms
    // instead of 0.3). A head whose version row is gone comes back with no version and is
    // reported as damage, not skipped.
    let sql = format!(
        "SELECT h.key, h.created_at, h.version, v.checksum, v.updated_at, v.body FROM \
         (SELECT key, version, created_at FROM ts_doc_head \
          WHERE deployment_id = $1 AND collection = $2{bounds} ORDER BY key {order} LIMIT ${}) h \
         LEFT JOIN LATERAL (SELECT checksum, updated_at, body FROM ts_doc_version \
          WHERE deployment_id = $1 AND collection = $2 AND key = h.key AND version = h.version \
          LIMIT 1) v \
         ON true ORDER BY h.key {order}",
        n + 1
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.as_str())
        .bind(collection.as_str());
    for k in [&range.after, &range.before].into_iter().flatten() {
        query = query.bind(k.as_str().to_owned());
    }
    let rows = query.bind(i64_of(limit as u64)).fetch_all(&mut *c).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let key: String = r.try_get(0)?;
        out.push(
            Name::key(&key)
                .map(|key| StoredDoc {
                    address: DocAddr {
                        deployment_id: id.clone(),
                        collection: collection.clone(),
                        key,
                    },
                    version: 0,
                    body: Vec::new(),
                    checksum: String::new(),
                    created_at_us: 0,
                    updated_at_us: 0,
                })
                .map_err(|e| map(sqlx::Error::Protocol(e.to_string()))),
        );
        if let Some(Ok(d)) = out.last_mut() {
            d.version = u64_of(r.try_get(2)?);
            d.created_at_us = r.try_get(1)?;
            let checksum: Option<String> = r.try_get(3)?;
            match checksum {
                Some(c) => {
                    d.checksum = c;
                    d.updated_at_us = r.try_get(4)?;
                    d.body = r.try_get(5)?;
                }
                None => {
                    let e = tierstate_core::Error::missing_version(&d.address, d.version);
                    *out.last_mut().expect("just pushed") = Err(e);
                }
            }
        }
    }
    Ok(out)
}
