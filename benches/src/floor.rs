//! tierstate's own tick, written straight to the engine with every value precomputed: the
//! cost of tierstate's storage layout alone, without its code (no JSON, no SHA-256, no plan).
//!
//! A tick's statements (SQLite) or table operations (redb) mirror
//! `tierstate_sqlite::records` and `tierstate_redb::records` for a batch of one state, one
//! document and journal entries under the default retention: read the three heads, write each
//! head and version row, append the entries (and their event-time index), write the journal
//! head, and every [`PRUNE_RUN`] versions delete the rows retention dropped. Comparing it with
//! the engine's plain transaction shows what the layout costs; comparing ours with it shows
//! what our code adds.
#![allow(clippy::missing_panics_doc)]

use std::path::Path;

use redb::TableDefinition;
use rusqlite::{TransactionBehavior, params};

/// Rows below the retention boundary are deleted when it reaches a multiple of this.
pub const PRUNE_RUN: u64 = 16;

type Head = (u64, i64, i64, u64);
type Version = (u32, i64, &'static [u8], &'static [u8]);
type DocVersionKey = (&'static str, &'static str, &'static str, u64);
type DocVersion = (i64, &'static [u8], &'static [u8]);
type DocHead = (u64, i64, u64);
type JHead = (u64, &'static [u8], i64, u64, &'static [u8]);
type Entry = (
    i64,
    i64,
    &'static [u8],
    &'static [u8],
    &'static [u8],
    &'static [u8],
    &'static [u8],
);

// The same key and value types as tierstate-redb's tables.
const HEAD: TableDefinition<&str, Head> = TableDefinition::new("ts_head_v3");
const VERSIONS: TableDefinition<(&str, u64), Version> = TableDefinition::new("ts_version");
const DOC_HEAD: TableDefinition<(&str, &str, &str), DocHead> =
    TableDefinition::new("ts_doc_head_v3");
const DOC_VERSIONS: TableDefinition<DocVersionKey, DocVersion> =
    TableDefinition::new("ts_doc_version");
const J_HEAD: TableDefinition<(&str, &str), JHead> = TableDefinition::new("ts_journal_head");
const JOURNAL: TableDefinition<(&str, &str, u64), Entry> = TableDefinition::new("ts_journal");
const J_EVENTS: TableDefinition<(&str, &str, i64, u64), ()> =
    TableDefinition::new("ts_journal_event");

/// One tick's precomputed values.
pub struct FloorTick<'a> {
    /// The state's new version (1, 2, … per tick).
    pub version: u64,
    /// Canonical JSON of the state and of the document.
    pub state: &'a [u8],
    /// The document's body.
    pub doc: &'a [u8],
    /// `(event time µs, body)` of each entry.
    pub entries: &'a [(i64, &'a [u8])],
}

/// A fixed 64-hex-digit checksum or chain hash.
const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// An engine holding tierstate's layout.
pub enum Floor {
    /// A SQLite file with tierstate's schema, WAL, `synchronous=FULL`.
    Sqlite(rusqlite::Connection),
    /// A redb file with tierstate's tables; every commit `Durability::Immediate`.
    Redb(redb::Database),
}

impl Floor {
    /// A fresh SQLite file at `path` with tierstate's schema and page size.
    pub fn sqlite(path: &Path) -> Self {
        let c = rusqlite::Connection::open(path).expect("open floor SQLite file");
        c.pragma_update(None, "page_size", tierstate_sqlite::DEFAULT_PAGE_SIZE)
            .expect("page_size");
        c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .expect("WAL");
        c.pragma_update(None, "synchronous", "FULL").expect("FULL");
        c.execute_batch(&tierstate_sqlite::schema_sql())
            .expect("tierstate schema");
        Self::Sqlite(c)
    }

    /// A fresh redb file at `path`.
    pub fn redb(path: &Path) -> Self {
        Self::Redb(redb::Database::create(path).expect("create floor redb file"))
    }

    /// Commits one tick durably.
    pub fn tick(&mut self, t: &FloorTick<'_>) {
        let v = t.version;
        // tierstate's default retention decides the boundary, as it does for our writes.
        let below = tierstate_core::Retention::DEFAULT.prune_below(v);
        let keep_from = below.unwrap_or(1);
        let reclaim = below.is_some_and(|b| b.is_multiple_of(PRUNE_RUN));
        let n = t.entries.len() as u64;
        let seq = |j: usize| (v - 1) * n + j as u64 + 1;
        match self {
            Self::Sqlite(c) => sqlite_tick(c, t, keep_from, reclaim, &seq),
            Self::Redb(db) => redb_tick(db, t, keep_from, reclaim, &seq),
        }
    }
}

fn sqlite_tick(
    c: &mut rusqlite::Connection,
    t: &FloorTick<'_>,
    keep_from: u64,
    reclaim: bool,
    seq: &dyn Fn(usize) -> u64,
) {
    let (v, kf) = (t.version as i64, keep_from as i64);
    let doc = ("tick", "book", "positions");
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    let q = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .expect(sql);
    };
    let read = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.query(p)?.next().map(|r| r.is_some()))
            .expect(sql);
    };
    read(
        "SELECT version, created_at FROM ts_head WHERE deployment_id = ?1",
        params!["tick"],
    );
    read(
        "SELECT version, created_at FROM ts_doc_head \
         WHERE deployment_id = ?1 AND collection = ?2 AND key = ?3",
        params![doc.0, doc.1, doc.2],
    );
    read(
        "SELECT last_seq, CAST(last_hash AS BLOB), last_commit_at, base_seq, \
         CAST(base_hash AS BLOB) FROM ts_journal_head WHERE deployment_id = ?1 AND stream = ?2",
        params!["tick", "fills"],
    );
    q(
        "INSERT INTO ts_head (deployment_id, version, created_at, keep_from) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (deployment_id) DO UPDATE SET \
         version = excluded.version, keep_from = max(keep_from, excluded.keep_from)",
        params!["tick", v, 1, kf],
    );
    q(
        "INSERT INTO ts_version (deployment_id, version, schema_version, checksum, updated_at, \
         body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params!["tick", v, 1, HEX, v, t.state],
    );
    q(
        "INSERT INTO ts_doc_head (deployment_id, collection, key, version, created_at, \
         keep_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (deployment_id, collection, key) \
         DO UPDATE SET version = excluded.version, keep_from = max(keep_from, excluded.keep_from)",
        params![doc.0, doc.1, doc.2, v, 1, kf],
    );
    q(
        "INSERT INTO ts_doc_version (deployment_id, collection, key, version, checksum, \
         updated_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![doc.0, doc.1, doc.2, v, HEX, v, t.doc],
    );
    for (j, (at, body)) in t.entries.iter().enumerate() {
        q(
            "INSERT INTO ts_journal (deployment_id, stream, seq, event_at, commit_at, idem_key, \
             checksum, prev_hash, hash, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                "tick",
                "fills",
                seq(j) as i64,
                at,
                v,
                None::<&str>,
                HEX,
                HEX,
                HEX,
                body
            ],
        );
    }
    q(
        "INSERT INTO ts_journal_head (deployment_id, stream, last_seq, last_hash, \
         last_commit_at, base_seq, base_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (deployment_id, stream) DO UPDATE SET last_seq = excluded.last_seq, \
         last_hash = excluded.last_hash, last_commit_at = excluded.last_commit_at, \
         base_seq = excluded.base_seq, base_hash = excluded.base_hash",
        params![
            "tick",
            "fills",
            seq(t.entries.len() - 1) as i64,
            HEX,
            v,
            0,
            HEX
        ],
    );
    if reclaim {
        q(
            "DELETE FROM ts_version WHERE deployment_id = ?1 AND version < ?2",
            params!["tick", kf],
        );
        q(
            "DELETE FROM ts_doc_version WHERE deployment_id = ?1 AND collection = ?2 \
             AND key = ?3 AND version < ?4",
            params![doc.0, doc.1, doc.2, kf],
        );
    }
    tx.commit().expect("commit");
}

fn redb_tick(
    db: &redb::Database,
    t: &FloorTick<'_>,
    keep_from: u64,
    reclaim: bool,
    seq: &dyn Fn(usize) -> u64,
) {
    use redb::ReadableTable;
    let (v, at) = (t.version, t.version as i64);
    let doc = ("tick", "book", "positions");
    let txn = crate::plain::durable_write(db);
    {
        let mut head = txn.open_table(HEAD).expect("head");
        let mut doc_head = txn.open_table(DOC_HEAD).expect("doc head");
        let mut j_head = txn.open_table(J_HEAD).expect("journal head");
        // The snapshot's reads, then the store's own read of the head's keep_from.
        head.get("tick").expect("read").map(|g| g.value());
        doc_head.get(doc).expect("read").map(|g| g.value());
        j_head
            .get(("tick", "fills"))
            .expect("read")
            .map(|g| g.value().0);
        let kept = head.get("tick").expect("read").map_or(1, |g| g.value().3);
        head.insert("tick", (v, 1, at, kept.max(keep_from)))
            .expect("head");
        let mut versions = txn.open_table(VERSIONS).expect("versions");
        versions
            .insert(("tick", v), (1, at, HEX.as_bytes(), t.state))
            .expect("version");
        if reclaim {
            for old in keep_from.saturating_sub(PRUNE_RUN).max(1)..keep_from {
                versions.remove(("tick", old)).expect("prune");
            }
        }
        let kept = doc_head.get(doc).expect("read").map_or(1, |g| g.value().2);
        doc_head
            .insert(doc, (v, 1, kept.max(keep_from)))
            .expect("doc head");
        let mut doc_versions = txn.open_table(DOC_VERSIONS).expect("doc versions");
        doc_versions
            .insert((doc.0, doc.1, doc.2, v), (at, HEX.as_bytes(), t.doc))
            .expect("doc version");
        if reclaim {
            for old in keep_from.saturating_sub(PRUNE_RUN).max(1)..keep_from {
                doc_versions
                    .remove((doc.0, doc.1, doc.2, old))
                    .expect("prune");
            }
        }
        let mut journal = txn.open_table(JOURNAL).expect("journal");
        let mut events = txn.open_table(J_EVENTS).expect("events");
        for (j, (event, body)) in t.entries.iter().enumerate() {
            let h = HEX.as_bytes();
            journal
                .insert(
                    ("tick", "fills", seq(j)),
                    (*event, at, &[][..], h, h, h, *body),
                )
                .expect("entry");
            events
                .insert(("tick", "fills", *event, seq(j)), ())
                .expect("event index");
        }
        let last = seq(t.entries.len() - 1);
        j_head
            .insert(
                ("tick", "fills"),
                (last, HEX.as_bytes(), at, 0, HEX.as_bytes()),
            )
            .expect("journal head");
    }
    txn.commit().expect("commit");
}

/// The rows a commit wrote, precomputed for [`tierstate_core::StateStore::restore`]: its state
/// and document versions (canonical JSON, compressed as stored, the checksum's hex, pruning
/// under `retention` as the commit did) and its new journal entries with their chain hashes
/// and each journal's new head. Restoring it into a store holding the same records before the
/// commit writes what the commit wrote with none of the work before it (no JSON encoding, no
/// SHA-256, no planning, no reads of heads): tierstate's layout through its own backend.
pub fn rows_of(
    done: &tierstate_core::Committed,
    retention: tierstate_core::Retention,
) -> tierstate_core::plan::Plan {
    use tierstate_core::journal::{JournalHead, StoredEntry};
    use tierstate_core::plan::{Plan, RowWrite};
    let pruning = |version: u64| {
        let below = retention.prune_below(version);
        (below, below.is_some_and(|b| retention.reclaims_at(b)))
    };
    let mut plan = Plan::empty();
    for s in &done.states {
        let (below, now) = pruning(s.version);
        plan.states
            .push(RowWrite::of_state(s, below, now).expect("a committed state re-encodes"));
    }
    for d in &done.documents {
        let (below, now) = pruning(d.version);
        plan.documents
            .push(RowWrite::of_document(d, below, now).expect("a committed document re-encodes"));
    }
    for a in done.entries.iter().filter(|a| a.fresh) {
        let e = &a.entry;
        plan.entries
            .push(StoredEntry::of_entry(e).expect("a committed entry re-encodes"));
        let mut head = JournalHead::empty(&e.stream);
        head.last_seq = e.seq;
        head.last_hash = e.hash;
        head.last_commit_us = e.commit_time.timestamp_micros();
        match plan.heads.iter_mut().find(|(s, _, _)| *s == e.stream) {
            Some((_, h, _)) => *h = head,
            None => plan.heads.push((e.stream.clone(), head, e.seq > 1)),
        }
    }
    plan
}
