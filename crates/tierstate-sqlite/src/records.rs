//! SQL for documents, journals and time travel: reading a batch's snapshot and storing its
//! plan inside the writer's transaction, and the read queries. The rules are in
//! `tierstate_core::plan` and `tierstate_core::journal`; this file only moves rows.

use rusqlite::{Connection, OptionalExtension, Row, params};
use tierstate_core::journal::{Fetch, JournalHead, StoredEntry};
use tierstate_core::plan::{Plan, Reads, Snapshot};
use tierstate_core::{DocAddr, KeyRange, Name, Result, StoredDoc, StoredRecord, StreamAddr};

use crate::error::{bad_row, map};

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| bad_row(format!("{what} {v}")))
}

/// A document's key columns, in the order every statement here binds them (`?1..?3`).
fn doc_key(a: &DocAddr) -> [&str; 3] {
    [
        a.deployment_id.as_str(),
        a.collection.as_str(),
        a.key.as_str(),
    ]
}

/// Reads the heads and keyed entries a batch depends on (inside the write transaction).
pub(crate) fn snapshot(conn: &Connection, reads: &Reads) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    for id in &reads.states {
        let head: Option<(i64, i64)> = conn
            .prepare_cached("SELECT version, created_at FROM ts_head WHERE deployment_id = ?1")
            .and_then(|mut s| {
                s.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(map)?;
        if let Some((v, c)) = head {
            snap.states.insert(id.clone(), (u64_of(v, "version")?, c));
        }
    }
    for a in &reads.documents {
        let head: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT version, created_at FROM ts_doc_head \
                 WHERE deployment_id = ?1 AND collection = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(doc_key(a), |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(map)?;
        if let Some((v, c)) = head {
            snap.documents.insert(a.clone(), (u64_of(v, "version")?, c));
        }
    }
    for s in &reads.streams {
        if let Some(h) = journal_head(conn, s)? {
            snap.heads.insert(s.clone(), h);
        }
    }
    for (s, k) in &reads.keys {
        let rows = fetch(conn, s, &Fetch::Key(k.clone()))?;
        if let Some(row) = rows.into_iter().next() {
            snap.keyed.insert((s.clone(), k.clone()), row);
        }
    }
    Ok(snap)
}

/// A commit of one writer alone deletes the rows below a head's `keep_from` only when the
/// core says so ([`tierstate_core::Retention::reclaims_at`]: at the end of a run of versions, as
/// a tick's versions of one record sit together and deleting them one per commit dirtied the
/// oldest leaf every time; or every commit for a record that keeps fewer versions than a run).
/// A commit of several writers deletes them at once: their oldest rows were written together
/// and share pages. Reads never see the rows either way (they filter on `keep_from`).
/// The head's new `keep_from` for a write with this retention boundary (the head keeps the
/// larger of the two: a retention that keeps more never brings pruned versions back).
fn keep_from(prune_below: Option<u64>) -> i64 {
    i64_of(prune_below.unwrap_or(1))
}

/// Rows below a head's `keep_from` to delete: reads no longer see them, so the writer deletes
/// them after the group's savepoints are released (inside one, SQLite would first copy every
/// page the delete touches into the statement journal), and a lone commit only when the core
/// says so.
#[derive(Debug)]
pub(crate) enum Reclaim {
    /// A deployment's state versions below the boundary, and whether a lone commit deletes
    /// them now.
    State(String, u64, bool),
    /// A document's versions below the boundary, and whether a lone commit deletes them now.
    Document(DocAddr, u64, bool),
}

impl Reclaim {
    /// True if a commit of one writer alone deletes these rows now.
    pub(crate) fn due_alone(&self) -> bool {
        let (Reclaim::State(_, _, now) | Reclaim::Document(_, _, now)) = self;
        *now
    }

    /// Deletes the rows, in the open transaction.
    pub(crate) fn run(&self, conn: &Connection) -> Result<()> {
        match self {
            Reclaim::State(id, below, _) => conn
                .prepare_cached("DELETE FROM ts_version WHERE deployment_id = ?1 AND version < ?2")
                .and_then(|mut s| s.execute(params![id, i64_of(*below)])),
            Reclaim::Document(a, below, _) => conn
                .prepare_cached(
                    "DELETE FROM ts_doc_version WHERE deployment_id = ?1 AND collection = ?2 \
                     AND key = ?3 AND version < ?4",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        a.deployment_id.as_str(),
                        a.collection.as_str(),
                        a.key.as_str(),
                        i64_of(*below)
                    ])
                }),
        }
        .map(drop)
        .map_err(map)
    }
}

/// Stores everything a plan decided, and adds to `reclaim` the pruned rows it leaves for
/// the writer to delete before the transaction commits.
pub(crate) fn store(conn: &Connection, plan: &Plan, reclaim: &mut Vec<Reclaim>) -> Result<()> {
    for w in &plan.states {
        let (id, v) = (w.address.as_str(), i64_of(w.version));
        conn.prepare_cached(
            "INSERT INTO ts_head (deployment_id, version, created_at, keep_from) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (deployment_id) DO UPDATE SET \
             version = excluded.version, keep_from = max(keep_from, excluded.keep_from)",
        )
        .and_then(|mut s| s.execute(params![id, v, w.created_us, keep_from(w.prune_below)]))
        .map_err(map)?;
        conn.prepare_cached(
            "INSERT INTO ts_version (deployment_id, version, schema_version, checksum, updated_at, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| s.execute(params![id, v, w.schema_version, w.checksum, w.updated_us, w.body]))
        .map_err(map)?;
        if let Some(below) = w.prune_below {
            reclaim.push(Reclaim::State(id.to_owned(), below, w.reclaim_now));
        }
    }
    for w in &plan.documents {
        let a = &w.address;
        let (d, c, k, v) = (
            a.deployment_id.as_str(),
            a.collection.as_str(),
            a.key.as_str(),
            i64_of(w.version),
        );
        conn.prepare_cached(
            "INSERT INTO ts_doc_head (deployment_id, collection, key, version, created_at, keep_from) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (deployment_id, collection, key) DO UPDATE \
             SET version = excluded.version, keep_from = max(keep_from, excluded.keep_from)",
        )
        .and_then(|mut s| s.execute(params![d, c, k, v, w.created_us, keep_from(w.prune_below)]))
        .map_err(map)?;
        conn.prepare_cached(
            "INSERT INTO ts_doc_version (deployment_id, collection, key, version, checksum, updated_at, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| s.execute(params![d, c, k, v, w.checksum, w.updated_us, w.body]))
        .map_err(map)?;
        if let Some(below) = w.prune_below {
            reclaim.push(Reclaim::Document(a.clone(), below, w.reclaim_now));
        }
    }
    for a in &plan.removals {
        let p = doc_key(a);
        for table in ["ts_doc_version", "ts_doc_head"] {
            conn.prepare_cached(&format!(
                "DELETE FROM {table} WHERE deployment_id = ?1 AND collection = ?2 AND key = ?3"
            ))
            .and_then(|mut s| s.execute(p))
            .map_err(map)?;
        }
    }
    for e in &plan.entries {
        conn.prepare_cached(
            "INSERT INTO ts_journal (deployment_id, stream, seq, event_at, commit_at, idem_key, \
             checksum, prev_hash, hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .and_then(|mut s| {
            s.execute(params![
                e.stream.deployment_id.as_str(),
                e.stream.stream.as_str(),
                i64_of(e.seq),
                e.event_us,
                e.commit_us,
                e.key,
                e.checksum,
                e.prev_hash,
                e.hash,
                e.body
            ])
        })
        .map_err(map)?;
    }
    for (s, h, _) in &plan.heads {
        put_head(conn, s, h)?;
    }
    Ok(())
}

fn put_head(conn: &Connection, s: &StreamAddr, h: &JournalHead) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO ts_journal_head (deployment_id, stream, last_seq, last_hash, last_commit_at, \
         base_seq, base_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (deployment_id, stream) DO UPDATE SET last_seq = excluded.last_seq, \
         last_hash = excluded.last_hash, last_commit_at = excluded.last_commit_at, \
         base_seq = excluded.base_seq, base_hash = excluded.base_hash",
    )
    .and_then(|mut st| {
        st.execute(params![
            s.deployment_id.as_str(),
            s.stream.as_str(),
            i64_of(h.last_seq),
            h.last_hash.to_hex(),
            h.last_commit_us,
            i64_of(h.base_seq),
            h.base_hash.to_hex()
        ])
    })
    .map_err(map)?;
    Ok(())
}

/// A stream's head, or `None` if nothing was ever appended.
pub(crate) fn journal_head(conn: &Connection, s: &StreamAddr) -> Result<Option<JournalHead>> {
    // (last seq, last hash, last commit, anchor seq, anchor hash)
    type HeadRow = (i64, Vec<u8>, i64, i64, Vec<u8>);
    let row: Option<HeadRow> = conn
        .prepare_cached(
            "SELECT last_seq, CAST(last_hash AS BLOB), last_commit_at, base_seq, CAST(base_hash AS BLOB) \
             FROM ts_journal_head WHERE deployment_id = ?1 AND stream = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![s.deployment_id.as_str(), s.stream.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(map)?;
    row.map(|(l, lh, lc, b, bh)| {
        JournalHead::from_stored(
            s,
            l,
            &String::from_utf8_lossy(&lh),
            lc,
            b,
            &String::from_utf8_lossy(&bh),
        )
    })
    .transpose()
}

const ENTRY: &str = "seq, event_at, commit_at, idem_key, CAST(checksum AS BLOB), \
                     CAST(prev_hash AS BLOB), CAST(hash AS BLOB), body";

fn text(row: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    // Hashes are read as bytes: damaged text may not be UTF-8, which must surface as an
    // integrity failure at verification.
    Ok(String::from_utf8_lossy(&row.get::<_, Vec<u8>>(i)?).into_owned())
}

fn entry_of(s: &StreamAddr) -> impl Fn(&Row<'_>) -> rusqlite::Result<(i64, StoredEntry)> + '_ {
    move |r| {
        let seq: i64 = r.get(0)?;
        Ok((
            seq,
            StoredEntry {
                stream: s.clone(),
                seq: 0,
                event_us: r.get(1)?,
                commit_us: r.get(2)?,
                key: r.get(3)?,
                checksum: text(r, 4)?,
                prev_hash: text(r, 5)?,
                hash: text(r, 6)?,
                body: r.get(7)?,
            },
        ))
    }
}

/// Runs a resolved journal fetch.
pub(crate) fn fetch(conn: &Connection, s: &StreamAddr, f: &Fetch) -> Result<Vec<StoredEntry>> {
    let (d, st) = (s.deployment_id.as_str(), s.stream.as_str());
    let base = "FROM ts_journal WHERE deployment_id = ?1 AND stream = ?2";
    let (sql, p): (String, Vec<rusqlite::types::Value>) = match f {
        Fetch::Nothing => return Ok(Vec::new()),
        Fetch::Seq { lo, hi } => (
            format!("SELECT {ENTRY} {base} AND seq BETWEEN ?3 AND ?4 ORDER BY seq"),
            vec![i64_of(*lo).into(), i64_of(*hi).into()],
        ),
        Fetch::Window {
            from_us,
            to_us,
            after,
            limit,
        } => {
            let (ae, aseq) = Fetch::window_start(*from_us, *after);
            (
                format!(
                    "SELECT {ENTRY} {base} AND (event_at, seq) > (?3, ?4) AND event_at < ?5 \
                     ORDER BY event_at, seq LIMIT ?6"
                ),
                vec![
                    ae.into(),
                    aseq.into(),
                    (*to_us).into(),
                    i64_of(*limit as u64).into(),
                ],
            )
        }
        Fetch::WindowDesc {
            from_us,
            before,
            limit,
        } => (
            format!(
                "SELECT {ENTRY} {base} AND (event_at, seq) < (?3, ?4) AND event_at >= ?5 \
                 ORDER BY event_at DESC, seq DESC LIMIT ?6"
            ),
            vec![
                before.0.into(),
                before.1.into(),
                (*from_us).into(),
                i64_of(*limit as u64).into(),
            ],
        ),
        Fetch::AtOrBefore { at_us } => (
            format!(
                "SELECT {ENTRY} {base} AND event_at <= ?3 ORDER BY event_at DESC, seq DESC LIMIT 1"
            ),
            vec![(*at_us).into()],
        ),
        Fetch::Key(k) => (
            format!("SELECT {ENTRY} {base} AND idem_key = ?3"),
            vec![k.as_str().to_owned().into()],
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(map)?;
    let mut all: Vec<rusqlite::types::Value> = vec![d.to_owned().into(), st.to_owned().into()];
    all.extend(p);
    let rows = stmt
        .query_map(rusqlite::params_from_iter(all), entry_of(s))
        .map_err(map)?;
    rows.map(|r| {
        let (seq, mut e) = r.map_err(map)?;
        e.seq = u64_of(seq, "seq")?;
        Ok(e)
    })
    .collect()
}

/// Removes entries before `first_kept` and moves the anchor, in the writer's transaction.
pub(crate) fn truncate(
    conn: &Connection,
    s: &StreamAddr,
    before: tierstate_core::TruncateBefore,
) -> Result<u64> {
    let Some(head) = journal_head(conn, s)? else {
        return Ok(0);
    };
    let (d, st) = (s.deployment_id.as_str(), s.stream.as_str());
    let first_kept = match before {
        tierstate_core::TruncateBefore::Seq(n) => n,
        tierstate_core::TruncateBefore::EventTime(t) => {
            let found: Option<i64> = conn
                .query_row(
                    "SELECT min(seq) FROM ts_journal WHERE deployment_id = ?1 AND stream = ?2 AND event_at >= ?3",
                    params![d, st, t.timestamp_micros()],
                    |r| r.get(0),
                )
                .map_err(map)?;
            match found {
                Some(n) => u64_of(n, "seq")?,
                None => head.last_seq + 1,
            }
        }
    };
    let anchor_seq = first_kept.saturating_sub(1).min(head.last_seq);
    let anchor = fetch(
        conn,
        s,
        &Fetch::Seq {
            lo: anchor_seq,
            hi: anchor_seq,
        },
    )?;
    let new_head = tierstate_core::journal::truncated_head(
        s,
        head,
        first_kept,
        anchor.first().map(|e| e.hash.as_str()),
    )?;
    if new_head == head {
        return Ok(0);
    }
    conn.prepare_cached(
        "DELETE FROM ts_journal WHERE deployment_id = ?1 AND stream = ?2 AND seq <= ?3",
    )
    .and_then(|mut x| x.execute(params![d, st, i64_of(new_head.base_seq)]))
    .map_err(map)?;
    put_head(conn, s, &new_head)?;
    Ok(new_head.base_seq - head.base_seq)
}

const DOC: &str = "h.created_at, v.version, CAST(v.checksum AS BLOB), v.updated_at, v.body";

fn doc_of(a: DocAddr) -> impl Fn(&Row<'_>) -> rusqlite::Result<(i64, StoredDoc)> {
    move |r| {
        Ok((
            r.get(1)?,
            StoredDoc {
                address: a.clone(),
                version: 0,
                created_at_us: r.get(0)?,
                checksum: text(r, 2)?,
                updated_at_us: r.get(3)?,
                body: r.get(4)?,
            },
        ))
    }
}

fn docs(rows: impl Iterator<Item = rusqlite::Result<(i64, StoredDoc)>>) -> Result<Vec<StoredDoc>> {
    rows.map(|r| {
        let (v, mut d) = r.map_err(map)?;
        d.version = u64_of(v, "version")?;
        Ok(d)
    })
    .collect()
}

const DOC_JOIN: &str = "FROM ts_doc_head h JOIN ts_doc_version v ON v.deployment_id = h.deployment_id \
     AND v.collection = h.collection AND v.key = h.key AND v.version >= h.keep_from \
     WHERE h.deployment_id = ?1 AND h.collection = ?2 AND h.key = ?3";

/// Versions of one document, newest first, optionally only those committed by `at_us`.
pub(crate) fn doc_versions(
    conn: &Connection,
    a: &DocAddr,
    current_only: bool,
    at_us: Option<i64>,
    limit: usize,
) -> Result<Vec<StoredDoc>> {
    if current_only && at_us.is_none() {
        return current_doc(conn, a).map(|d| d.into_iter().collect());
    }
    let cond = if current_only {
        " AND v.version = h.version"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {DOC} {DOC_JOIN}{cond} AND v.updated_at <= ?4 ORDER BY v.version DESC LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(map)?;
    let rows = stmt
        .query_map(
            params![
                a.deployment_id.as_str(),
                a.collection.as_str(),
                a.key.as_str(),
                at_us.unwrap_or(i64::MAX),
                i64_of(limit as u64)
            ],
            doc_of(a.clone()),
        )
        .map_err(map)?;
    docs(rows)
}

/// One retained version of a document (`None`: never stored, or pruned).
pub(crate) fn doc_version(
    conn: &Connection,
    a: &DocAddr,
    version: u64,
) -> Result<Option<StoredDoc>> {
    let sql = format!("SELECT {DOC} {DOC_JOIN} AND v.version = ?4");
    let mut stmt = conn.prepare_cached(&sql).map_err(map)?;
    let rows = stmt
        .query_map(
            params![
                a.deployment_id.as_str(),
                a.collection.as_str(),
                a.key.as_str(),
                i64_of(version)
            ],
            doc_of(a.clone()),
        )
        .map_err(map)?;
    Ok(docs(rows)?.into_iter().next())
}

/// The current version of a document, head and row read by one statement (one snapshot): no
/// head is "absent"; a head naming a row that is gone is damage.
fn current_doc(conn: &Connection, a: &DocAddr) -> Result<Option<StoredDoc>> {
    type Raw = (i64, i64, Option<Vec<u8>>, Option<i64>, Option<Vec<u8>>);
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT h.created_at, h.version, CAST(v.checksum AS BLOB), v.updated_at, v.body \
             FROM ts_doc_head h LEFT JOIN ts_doc_version v ON v.deployment_id = h.deployment_id \
             AND v.collection = h.collection AND v.key = h.key AND v.version = h.version \
             WHERE h.deployment_id = ?1 AND h.collection = ?2 AND h.key = ?3",
        )
        .and_then(|mut st| {
            st.query_row(doc_key(a), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(map)?;
    let Some((created, version, checksum, updated, body)) = raw else {
        return Ok(None);
    };
    let version = u64_of(version, "version")?;
    match (checksum, updated, body) {
        (Some(checksum), Some(updated), Some(body)) => Ok(Some(StoredDoc {
            address: a.clone(),
            version,
            created_at_us: created,
            checksum: String::from_utf8_lossy(&checksum).into_owned(),
            updated_at_us: updated,
            body,
        })),
        _ => Err(tierstate_core::Error::missing_version(a, version)),
    }
}

/// The oldest retained version of a document.
pub(crate) fn doc_oldest(conn: &Connection, a: &DocAddr) -> Result<Option<u64>> {
    let v: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT max(h.keep_from, (SELECT min(v.version) FROM ts_doc_version v \
             WHERE v.deployment_id = ?1 AND v.collection = ?2 AND v.key = ?3)) \
             FROM ts_doc_head h WHERE h.deployment_id = ?1 AND h.collection = ?2 AND h.key = ?3",
        )
        .and_then(|mut s| {
            s.query_row(doc_key(a), |r| r.get::<_, Option<i64>>(0))
                .optional()
        })
        .map_err(map)?;
    v.flatten().map(|v| u64_of(v, "version")).transpose()
}

/// The document scan for each shape of [`KeyRange`]: one statement per shape, so each bound
/// is an index seek (a `?3 IS NULL OR key > ?3` filter would walk the collection from its
/// start).
fn scan_sql(range: &KeyRange) -> String {
    let after = if range.after.is_some() {
        " AND h.key > ?3"
    } else {
        ""
    };
    let before = if range.before.is_some() {
        " AND h.key < ?4"
    } else {
        ""
    };
    let order = if range.descending { "DESC" } else { "ASC" };
    format!(
        "SELECT h.key, h.created_at, h.version, CAST(v.checksum AS BLOB), v.updated_at, v.body \
         FROM ts_doc_head h LEFT JOIN ts_doc_version v ON v.deployment_id = h.deployment_id \
         AND v.collection = h.collection AND v.key = h.key AND v.version = h.version \
         WHERE h.deployment_id = ?1 AND h.collection = ?2{after}{before} \
         ORDER BY h.key {order} LIMIT ?5"
    )
}

/// Current documents of a collection inside `range`, in its key order.
pub(crate) fn scan_docs(
    conn: &Connection,
    id: &str,
    collection: &Name,
    range: &KeyRange,
    limit: usize,
) -> Result<Vec<Result<StoredDoc>>> {
    if range.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let sql = scan_sql(range);
    let sql = sql.as_str();
    let mut stmt = conn.prepare_cached(sql).map_err(map)?;
    let rows = stmt
        .query_map(
            params![
                id,
                collection.as_str(),
                range.after.as_ref().map(Name::as_str),
                range.before.as_ref().map(Name::as_str),
                i64_of(limit as u64)
            ],
            |r| {
                // No version row (a head naming a row that is gone): the row's columns are
                // NULL, reported in place as damage below.
                let row = match r.get::<_, Option<Vec<u8>>>(5)? {
                    Some(body) => Some((text(r, 3)?, r.get::<_, i64>(4)?, body)),
                    None => None,
                };
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    row,
                ))
            },
        )
        .map_err(map)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, created, version, row) = row.map_err(map)?;
        out.push((|| {
            let address = DocAddr {
                deployment_id: tierstate_core::DeploymentId::from_stored(id)
                    .map_err(|e| bad_row(e.to_string()))?,
                collection: collection.clone(),
                key: Name::key(&key).map_err(|e| bad_row(format!("key {key:?}: {e}")))?,
            };
            let version = u64_of(version, "version")?;
            let Some((checksum, updated, body)) = row else {
                return Err(tierstate_core::Error::missing_version(&address, version));
            };
            Ok(StoredDoc {
                address,
                version,
                body,
                checksum,
                created_at_us: created,
                updated_at_us: updated,
            })
        })());
    }
    Ok(out)
}

/// The newest state version committed by `at_us`, and the oldest retained version.
pub(crate) fn state_as_of(
    conn: &Connection,
    id: &str,
    at_us: i64,
) -> Result<(Option<StoredRecord>, Option<u64>)> {
    let found = crate::reader::as_of(conn, id, at_us)?;
    let oldest: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT max(h.keep_from, (SELECT min(v.version) FROM ts_version v \
             WHERE v.deployment_id = ?1)) FROM ts_head h WHERE h.deployment_id = ?1",
        )
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(map)?;
    let oldest = oldest.flatten().map(|v| u64_of(v, "version")).transpose()?;
    Ok((found, oldest))
}

/// Up to `limit` collections of `id` with a current document, after `after`: one index seek
/// per name (the next collection past the previous one).
pub(crate) fn collections(
    conn: &Connection,
    id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Name>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT collection FROM ts_doc_head WHERE deployment_id = ?1 \
             AND (?2 IS NULL OR collection > ?2) ORDER BY collection LIMIT 1",
        )
        .map_err(map)?;
    let mut out: Vec<Name> = Vec::new();
    let mut last = after.map(str::to_owned);
    while out.len() < limit {
        let next: Option<String> = stmt
            .query_row(params![id, last.as_deref()], |r| r.get(0))
            .optional()
            .map_err(map)?;
        let Some(c) = next else { break };
        out.push(Name::collection(&c).map_err(|e| bad_row(format!("collection {c:?}: {e}")))?);
        last = Some(c);
    }
    Ok(out)
}

/// Up to `limit` journals of `id`, after `after`.
pub(crate) fn streams(
    conn: &Connection,
    id: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Name>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT stream FROM ts_journal_head WHERE deployment_id = ?1 \
             AND (?2 IS NULL OR stream > ?2) ORDER BY stream LIMIT ?3",
        )
        .map_err(map)?;
    let rows = stmt
        .query_map(params![id, after, i64_of(limit as u64)], |r| {
            r.get::<_, String>(0)
        })
        .map_err(map)?;
    let mut out = Vec::new();
    for s in rows {
        let s = s.map_err(map)?;
        out.push(Name::stream(&s).map_err(|e| bad_row(format!("stream {s:?}: {e}")))?);
    }
    Ok(out)
}
