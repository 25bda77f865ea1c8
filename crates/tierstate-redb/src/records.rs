//! Documents and journals on redb: a batch's snapshot and plan inside the writer's
//! transaction, and the read queries. The rules are in `tierstate_core::plan` and
//! `tierstate_core::journal`; this file only moves rows.

use std::ops::Bound;

use redb::{ReadableTable, Table};
use tierstate_core::journal::{Fetch, JournalHead, StoredEntry, truncated_head};
use tierstate_core::plan::{Plan, Reads, RowWrite, Snapshot};
use tierstate_core::{DocAddr, Name, Result, StoredDoc, StreamAddr, TruncateBefore};

use crate::error::map;
use crate::tables::{
    DOC_HEAD, DOC_VERSIONS, DocVersionValue, EntryValue, HEAD, J_EVENTS, J_HEAD, J_KEYS, JOURNAL,
    VERSIONS,
};
use crate::writer::Stop;

type DocKey = (&'static str, &'static str, &'static str);
type DocVersionKey = (&'static str, &'static str, &'static str, u64);
type StreamKey = (&'static str, &'static str);
type EntryKey = (&'static str, &'static str, u64);
type HeadValue = (u64, &'static [u8], i64, u64, &'static [u8]);
type DocVersionRow = (i64, &'static [u8], &'static [u8]);
type KeyKey = (&'static str, &'static str, &'static str);
type EventKey = (&'static str, &'static str, i64, u64);

/// The tables of a write transaction, each opened on first use (once per group): opening a
/// table and closing it at commit costs CPU even when nothing in it changed (six idle tables
/// doubled a plain redb insert's CPU time, 7 µs to 14.5 µs).
pub(crate) struct Tables<'t> {
    txn: &'t redb::WriteTransaction,
    head: Option<Table<'t, &'static str, crate::tables::StateHead>>,
    versions: Option<Table<'t, crate::tables::VersionKey, crate::tables::VersionValue>>,
    doc_head: Option<Table<'t, DocKey, crate::tables::DocHead>>,
    doc_versions: Option<Table<'t, DocVersionKey, DocVersionRow>>,
    j_head: Option<Table<'t, StreamKey, HeadValue>>,
    journal: Option<Table<'t, EntryKey, EntryValue>>,
    j_keys: Option<Table<'t, KeyKey, u64>>,
    j_events: Option<Table<'t, EventKey, ()>>,
}

/// The table in `slot`, opened from `txn` if this is its first use.
fn opened<'a, 't, K: redb::Key + 'static, V: redb::Value + 'static>(
    slot: &'a mut Option<Table<'t, K, V>>,
    txn: &'t redb::WriteTransaction,
    def: redb::TableDefinition<'static, K, V>,
) -> std::result::Result<&'a mut Table<'t, K, V>, Stop> {
    match slot {
        Some(t) => Ok(t),
        None => Ok(slot.insert(txn.open_table(def).map_err(stop)?)),
    }
}

/// The tables a journal's entries live in: entries, idempotency keys, event-time index.
pub(crate) type JournalTables<'a, 't> = (
    &'a mut Table<'t, EntryKey, EntryValue>,
    &'a mut Table<'t, KeyKey, u64>,
    &'a mut Table<'t, EventKey, ()>,
);

impl<'t> Tables<'t> {
    /// No table opened yet.
    pub(crate) fn new(txn: &'t redb::WriteTransaction) -> Self {
        Self {
            txn,
            head: None,
            versions: None,
            doc_head: None,
            doc_versions: None,
            j_head: None,
            journal: None,
            j_keys: None,
            j_events: None,
        }
    }

    pub(crate) fn head(
        &mut self,
    ) -> std::result::Result<&mut Table<'t, &'static str, crate::tables::StateHead>, Stop> {
        opened(&mut self.head, self.txn, HEAD)
    }

    pub(crate) fn versions(
        &mut self,
    ) -> std::result::Result<
        &mut Table<'t, crate::tables::VersionKey, crate::tables::VersionValue>,
        Stop,
    > {
        opened(&mut self.versions, self.txn, VERSIONS)
    }

    /// Heads and versions of states at once.
    pub(crate) fn states(
        &mut self,
    ) -> std::result::Result<
        (
            &mut crate::writer::Head<'t>,
            &mut crate::writer::Versions<'t>,
        ),
        Stop,
    > {
        let txn = self.txn;
        let head = opened(&mut self.head, txn, HEAD)?;
        let versions = opened(&mut self.versions, txn, VERSIONS)?;
        Ok((head, versions))
    }

    pub(crate) fn doc_head(
        &mut self,
    ) -> std::result::Result<&mut Table<'t, DocKey, crate::tables::DocHead>, Stop> {
        opened(&mut self.doc_head, self.txn, DOC_HEAD)
    }

    pub(crate) fn doc_versions(
        &mut self,
    ) -> std::result::Result<&mut Table<'t, DocVersionKey, DocVersionRow>, Stop> {
        opened(&mut self.doc_versions, self.txn, DOC_VERSIONS)
    }

    pub(crate) fn j_head(
        &mut self,
    ) -> std::result::Result<&mut Table<'t, StreamKey, HeadValue>, Stop> {
        opened(&mut self.j_head, self.txn, J_HEAD)
    }

    pub(crate) fn journal(
        &mut self,
    ) -> std::result::Result<&mut Table<'t, EntryKey, EntryValue>, Stop> {
        opened(&mut self.journal, self.txn, JOURNAL)
    }

    /// The event-time index alone (an append without a key leaves the keys table unopened).
    pub(crate) fn events(&mut self) -> std::result::Result<&mut Table<'t, EventKey, ()>, Stop> {
        opened(&mut self.j_events, self.txn, J_EVENTS)
    }

    /// The idempotency keys alone.
    pub(crate) fn keys(&mut self) -> std::result::Result<&mut Table<'t, KeyKey, u64>, Stop> {
        opened(&mut self.j_keys, self.txn, J_KEYS)
    }

    /// Entries, keys and event-time index at once.
    pub(crate) fn journal_tables(&mut self) -> std::result::Result<JournalTables<'_, 't>, Stop> {
        let txn = self.txn;
        let journal = opened(&mut self.journal, txn, JOURNAL)?;
        let keys = opened(&mut self.j_keys, txn, J_KEYS)?;
        let events = opened(&mut self.j_events, txn, J_EVENTS)?;
        Ok((journal, keys, events))
    }
}

/// A storage failure inside the write transaction: the whole group aborts.
pub(crate) fn stop(e: impl Into<redb::Error>) -> Stop {
    Stop(map(e.into()))
}

/// Reads what a batch depends on. `Err(Stop)` is a storage failure; `Ok(Err)` a damaged head.
pub(crate) fn snapshot(
    t: &mut Tables<'_>,
    reads: &Reads,
) -> std::result::Result<Result<Snapshot>, Stop> {
    let mut snap = Snapshot::default();
    for id in &reads.states {
        if let Some(g) = t.head()?.get(id.as_str()).map_err(stop)? {
            let (v, created, _, _) = g.value();
            snap.states.insert(id.clone(), (v, created));
        }
    }
    for a in &reads.documents {
        if let Some(g) = t.doc_head()?.get(doc_key(a)).map_err(stop)? {
            let (v, created, _) = g.value();
            snap.documents.insert(a.clone(), (v, created));
        }
    }
    for s in &reads.streams {
        match head_in(t.j_head()?, s).map_err(stop)? {
            Ok(Some(h)) => {
                snap.heads.insert(s.clone(), h);
            }
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
    for (s, k) in &reads.keys {
        let (journal, keys, events) = t.journal_tables()?;
        let rows = match fetch(journal, keys, events, s, &Fetch::Key(k.clone())).map_err(stop)? {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(row) = rows.into_iter().next() {
            snap.keyed.insert((s.clone(), k.clone()), row);
        }
    }
    Ok(Ok(snap))
}

fn doc_key(a: &DocAddr) -> (&str, &str, &str) {
    (
        a.deployment_id.as_str(),
        a.collection.as_str(),
        a.key.as_str(),
    )
}

fn stream_key(s: &StreamAddr) -> (&str, &str) {
    (s.deployment_id.as_str(), s.stream.as_str())
}

/// The boundary below which this commit removes rows: only when the core says so
/// ([`tierstate_core::Retention::reclaims_at`]; reads already skip everything below the head's
/// `keep_from`).
fn reclaim_below<A>(w: &RowWrite<A>) -> Option<u64> {
    w.prune_below.filter(|_| w.reclaim_now)
}

/// Stores everything a plan decided; any failure aborts the transaction.
pub(crate) fn store(t: &mut Tables<'_>, plan: &Plan) -> std::result::Result<(), Stop> {
    for w in &plan.states {
        let id = w.address.as_str();
        let kept = t.head()?.get(id).map_err(stop)?.map_or(1, |g| g.value().3);
        let keep_from = kept.max(w.prune_below.unwrap_or(1));
        t.head()?
            .insert(id, (w.version, w.created_us, w.updated_us, keep_from))
            .map_err(stop)?;
        t.versions()?
            .insert(
                (id, w.version),
                (
                    w.schema_version,
                    w.updated_us,
                    w.checksum.as_bytes(),
                    w.body.as_slice(),
                ),
            )
            .map_err(stop)?;
        if let Some(below) = reclaim_below(w) {
            let old: Vec<u64> = t
                .versions()?
                .range((id, 0)..(id, below))
                .map_err(stop)?
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<std::result::Result<_, _>>()
                .map_err(stop)?;
            for v in old {
                t.versions()?.remove((id, v)).map_err(stop)?;
            }
        }
    }
    for w in &plan.documents {
        let (d, c, k) = doc_key(&w.address);
        let kept = t
            .doc_head()?
            .get((d, c, k))
            .map_err(stop)?
            .map_or(1, |g| g.value().2);
        let keep_from = kept.max(w.prune_below.unwrap_or(1));
        t.doc_head()?
            .insert((d, c, k), (w.version, w.created_us, keep_from))
            .map_err(stop)?;
        t.doc_versions()?
            .insert(
                (d, c, k, w.version),
                (w.updated_us, w.checksum.as_bytes(), w.body.as_slice()),
            )
            .map_err(stop)?;
        if let Some(below) = reclaim_below(w) {
            remove_doc_versions(t, &w.address, below)?;
        }
    }
    for a in &plan.removals {
        t.doc_head()?.remove(doc_key(a)).map_err(stop)?;
        remove_doc_versions(t, a, u64::MAX)?;
    }
    for e in &plan.entries {
        let (d, s) = stream_key(&e.stream);
        let key = e.key.as_deref().unwrap_or("");
        t.journal()?
            .insert(
                (d, s, e.seq),
                (
                    e.event_us,
                    e.commit_us,
                    key.as_bytes(),
                    e.checksum.as_bytes(),
                    e.prev_hash.as_bytes(),
                    e.hash.as_bytes(),
                    e.body.as_slice(),
                ),
            )
            .map_err(stop)?;
        if let Some(k) = &e.key {
            // The planner found no entry with this key; the table's key makes it unique anyway.
            if t.keys()?
                .insert((d, s, k.as_str()), e.seq)
                .map_err(stop)?
                .is_some()
            {
                return Err(Stop(tierstate_core::Error::Backend {
                    backend: crate::error::BACKEND,
                    kind: tierstate_core::BackendErrorKind::Other,
                    message: format!("idempotency key {k:?} of {} was stored twice", e.stream),
                    source: None,
                }));
            }
        }
        t.events()?
            .insert((d, s, e.event_us, e.seq), ())
            .map_err(stop)?;
    }
    for (s, h, _) in &plan.heads {
        put_head(t.j_head()?, s, h)?;
    }
    Ok(())
}

fn remove_doc_versions(
    t: &mut Tables<'_>,
    a: &DocAddr,
    below: u64,
) -> std::result::Result<(), Stop> {
    let (d, c, k) = doc_key(a);
    let old: Vec<u64> = t
        .doc_versions()?
        .range((d, c, k, 0)..(d, c, k, below))
        .map_err(stop)?
        .map(|r| r.map(|(key, _)| key.value().3))
        .collect::<std::result::Result<_, _>>()
        .map_err(stop)?;
    for v in old {
        t.doc_versions()?.remove((d, c, k, v)).map_err(stop)?;
    }
    if below == u64::MAX {
        t.doc_versions()?
            .remove((d, c, k, u64::MAX))
            .map_err(stop)?;
    }
    Ok(())
}

fn put_head(
    table: &mut Table<'_, StreamKey, HeadValue>,
    s: &StreamAddr,
    h: &JournalHead,
) -> std::result::Result<(), Stop> {
    let (last, base) = (h.last_hash.to_hex(), h.base_hash.to_hex());
    table
        .insert(
            stream_key(s),
            (
                h.last_seq,
                last.as_bytes(),
                h.last_commit_us,
                h.base_seq,
                base.as_bytes(),
            ),
        )
        .map_err(stop)?;
    Ok(())
}

/// A stream's head from any table handle.
pub(crate) fn head_in(
    table: &impl ReadableTable<StreamKey, HeadValue>,
    s: &StreamAddr,
) -> std::result::Result<Result<Option<JournalHead>>, redb::StorageError> {
    let Some(g) = table.get(stream_key(s))? else {
        return Ok(Ok(None));
    };
    let (last, lh, lc, base, bh) = g.value();
    let (Ok(last), Ok(base)) = (i64::try_from(last), i64::try_from(base)) else {
        return Ok(JournalHead::from_stored(s, -1, "", lc, -1, "").map(Some));
    };
    Ok(JournalHead::from_stored(
        s,
        last,
        &String::from_utf8_lossy(lh),
        lc,
        base,
        &String::from_utf8_lossy(bh),
    )
    .map(Some))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An entry's value as read, borrowing the page it is on.
type EntryRef<'a> = (i64, i64, &'a [u8], &'a [u8], &'a [u8], &'a [u8], &'a [u8]);

fn entry(s: &StreamAddr, seq: u64, v: EntryRef<'_>) -> StoredEntry {
    let (event_us, commit_us, key, checksum, prev, hash, body) = v;
    StoredEntry {
        stream: s.clone(),
        seq,
        event_us,
        commit_us,
        key: (!key.is_empty()).then(|| lossy(key)),
        body: body.to_vec(),
        checksum: lossy(checksum),
        prev_hash: lossy(prev),
        hash: lossy(hash),
    }
}

/// Runs a resolved journal fetch over any table handles (read or write transaction).
///
/// The key and event-time indexes are tables of their own here, so an index entry whose row
/// is gone is seen, and refused as `Integrity` naming that entry (a deleted row must not read
/// as "no such key": the next keyed append would then write the same intent twice).
pub(crate) fn fetch(
    journal: &impl ReadableTable<EntryKey, EntryValue>,
    keys: &impl ReadableTable<(&'static str, &'static str, &'static str), u64>,
    events: &impl ReadableTable<(&'static str, &'static str, i64, u64), ()>,
    s: &StreamAddr,
    f: &Fetch,
) -> std::result::Result<Result<Vec<StoredEntry>>, redb::StorageError> {
    let (d, st) = stream_key(s);
    let get = |seq: u64| -> std::result::Result<Result<StoredEntry>, redb::StorageError> {
        Ok(match journal.get((d, st, seq))? {
            Some(g) => Ok(entry(s, seq, g.value())),
            None => Err(tierstate_core::journal::integrity(
                s,
                seq,
                tierstate_core::Tier::Warm,
                "the entry an index names".into(),
                "no row".into(),
            )),
        })
    };
    Ok(match f {
        Fetch::Nothing => Ok(Vec::new()),
        Fetch::Seq { lo, hi } => Ok(journal
            .range((d, st, *lo)..=(d, st, *hi))?
            .map(|r| r.map(|(k, v)| entry(s, k.value().2, v.value())))
            .collect::<std::result::Result<_, _>>()?),
        Fetch::Window {
            from_us,
            to_us,
            after,
            limit,
        } => {
            let (ae, aseq) = Fetch::window_start(*from_us, *after);
            if ae >= *to_us {
                return Ok(Ok(Vec::new()));
            }
            let start = Bound::Excluded((d, st, ae, u64::try_from(aseq).unwrap_or(0)));
            let mut out = Vec::new();
            for r in events
                .range::<(&str, &str, i64, u64)>((start, Bound::Excluded((d, st, *to_us, 0))))?
            {
                if out.len() >= *limit {
                    break;
                }
                let (k, _) = r?;
                let (_, _, _, seq) = k.value();
                match get(seq)? {
                    Ok(e) => out.push(e),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(out)
        }
        Fetch::WindowDesc {
            from_us,
            before,
            limit,
        } => {
            if before.0 < *from_us {
                return Ok(Ok(Vec::new()));
            }
            let end = Bound::Excluded((d, st, before.0, u64::try_from(before.1).unwrap_or(0)));
            let mut out = Vec::new();
            for r in events
                .range::<(&str, &str, i64, u64)>((Bound::Included((d, st, *from_us, 0)), end))?
                .rev()
            {
                if out.len() >= *limit {
                    break;
                }
                let (k, _) = r?;
                match get(k.value().3)? {
                    Ok(e) => out.push(e),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(out)
        }
        Fetch::AtOrBefore { at_us } => {
            let last = events
                .range::<(&str, &str, i64, u64)>((d, st, i64::MIN, 0)..=(d, st, *at_us, u64::MAX))?
                .next_back()
                .transpose()?;
            match last {
                Some((k, _)) => get(k.value().3)?.map(|e| vec![e]),
                None => Ok(Vec::new()),
            }
        }
        Fetch::Key(k) => match keys.get((d, st, k.as_str()))? {
            Some(seq) => get(seq.value())?.map(|e| vec![e]),
            None => Ok(Vec::new()),
        },
    })
}

/// Removes entries before the first kept one and moves the anchor, in the writer's
/// transaction.
pub(crate) fn truncate(
    t: &mut Tables<'_>,
    s: &StreamAddr,
    before: TruncateBefore,
) -> std::result::Result<Result<u64>, Stop> {
    let head = match head_in(t.j_head()?, s).map_err(stop)? {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(Ok(0)),
        Err(e) => return Ok(Err(e)),
    };
    let (d, st) = stream_key(s);
    let first_kept = match before {
        TruncateBefore::Seq(n) => n,
        TruncateBefore::EventTime(time) => {
            let at = time.timestamp_micros();
            let mut first = head.last_seq + 1;
            for r in t
                .journal()?
                .range((d, st, head.base_seq + 1)..=(d, st, head.last_seq))
                .map_err(stop)?
            {
                let (k, v) = r.map_err(stop)?;
                if v.value().0 >= at {
                    first = k.value().2;
                    break;
                }
            }
            first
        }
    };
    let anchor_seq = first_kept.saturating_sub(1).min(head.last_seq);
    let anchor = t
        .journal()?
        .get((d, st, anchor_seq))
        .map_err(stop)?
        .map(|g| lossy(g.value().5));
    let new_head = match truncated_head(s, head, first_kept, anchor.as_deref()) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    if new_head == head {
        return Ok(Ok(0));
    }
    let doomed: Vec<(u64, i64, Vec<u8>)> = t
        .journal()?
        .range((d, st, 0)..=(d, st, new_head.base_seq))
        .map_err(stop)?
        .map(|r| {
            r.map(|(k, v)| {
                let v = v.value();
                (k.value().2, v.0, v.2.to_vec())
            })
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(stop)?;
    for (seq, event, key) in doomed {
        t.journal()?.remove((d, st, seq)).map_err(stop)?;
        t.events()?.remove((d, st, event, seq)).map_err(stop)?;
        if !key.is_empty() {
            t.keys()?
                .remove((d, st, String::from_utf8_lossy(&key).as_ref()))
                .map_err(stop)?;
        }
    }
    put_head(t.j_head()?, s, &new_head)?;
    Ok(Ok(new_head.base_seq - head.base_seq))
}

/// Stored versions of a document, newest first, optionally only those committed by `at_us`,
/// and the oldest retained version.
pub(crate) fn doc_versions(
    txn: &redb::ReadTransaction,
    a: &DocAddr,
    current_only: bool,
    at_us: Option<i64>,
    limit: usize,
) -> Result<(Vec<StoredDoc>, Option<u64>)> {
    let heads = txn.open_table(DOC_HEAD).map_err(map)?;
    let Some((current, created, keep_from)) =
        heads.get(doc_key(a)).map_err(map)?.map(|g| g.value())
    else {
        return Ok((Vec::new(), None));
    };
    let versions = txn.open_table(DOC_VERSIONS).map_err(map)?;
    let (d, c, k) = doc_key(a);
    let top = if current_only { current } else { u64::MAX };
    let mut out = Vec::new();
    // Rows below `keep_from` were pruned: they may still be on disk, but are never read.
    let mut range = versions
        .range((d, c, k, keep_from)..=(d, c, k, top))
        .map_err(map)?;
    let oldest = match versions
        .range((d, c, k, keep_from)..=(d, c, k, u64::MAX))
        .map_err(map)?
        .next()
    {
        Some(r) => Some(r.map_err(map)?.0.value().3),
        None => None,
    };
    while out.len() < limit {
        let Some(r) = range.next_back() else { break };
        let (key, v) = r.map_err(map)?;
        if current_only && key.value().3 != current {
            return Err(tierstate_core::Error::missing_version(a, current));
        }
        let (updated, checksum, body) = v.value();
        if at_us.is_some_and(|t| updated > t) {
            continue;
        }
        out.push(StoredDoc {
            address: a.clone(),
            version: key.value().3,
            body: body.to_vec(),
            checksum: lossy(checksum),
            created_at_us: created,
            updated_at_us: updated,
        });
        if current_only {
            break;
        }
    }
    Ok((out, oldest))
}

/// One retained version of a document (`None`: never stored, or pruned); a version the head
/// says is retained but has no row is damage.
pub(crate) fn doc_version(
    txn: &redb::ReadTransaction,
    a: &DocAddr,
    version: u64,
) -> Result<Option<StoredDoc>> {
    let heads = txn.open_table(DOC_HEAD).map_err(map)?;
    let Some((current, created, keep_from)) =
        heads.get(doc_key(a)).map_err(map)?.map(|g| g.value())
    else {
        return Ok(None);
    };
    if version < keep_from || version > current {
        return Ok(None);
    }
    let versions = txn.open_table(DOC_VERSIONS).map_err(map)?;
    let (d, c, k) = doc_key(a);
    let Some(g) = versions.get((d, c, k, version)).map_err(map)? else {
        return Err(tierstate_core::Error::missing_version(a, version));
    };
    let (updated, checksum, body) = g.value();
    Ok(Some(StoredDoc {
        address: a.clone(),
        version,
        body: body.to_vec(),
        checksum: lossy(checksum),
        created_at_us: created,
        updated_at_us: updated,
    }))
}

/// Deployments holding any record (state, document or journal) after `after`, in id order:
/// one seek per table and id, however many records each holds.
pub(crate) fn deployments(
    txn: &redb::ReadTransaction,
    after: Option<&tierstate_core::DeploymentId>,
    limit: usize,
) -> Result<Vec<tierstate_core::DeploymentId>> {
    use std::ops::Bound;
    fn open<T>(r: std::result::Result<T, redb::TableError>) -> Result<Option<T>> {
        match r {
            Ok(t) => Ok(Some(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(map(e)),
        }
    }
    let heads = open(txn.open_table(crate::tables::HEAD))?;
    let docs = open(txn.open_table(DOC_HEAD))?;
    let journals = open(txn.open_table(J_HEAD))?;
    let mut cur: Option<String> = after.map(|a| a.as_str().to_owned());
    let mut out = Vec::new();
    while out.len() < limit {
        // The smallest id above `cur` in each table: every key of `cur` sorts before
        // `cur + "\0"`.
        let floor = cur.as_ref().map(|c| format!("{c}\0"));
        let mut next: Option<String> = None;
        let mut consider = |id: &str| {
            if next.as_deref().is_none_or(|n| id < n) {
                next = Some(id.to_owned());
            }
        };
        if let Some(t) = &heads {
            let lo = match &cur {
                Some(c) => Bound::Excluded(c.as_str()),
                None => Bound::Unbounded,
            };
            if let Some(r) = t.range::<&str>((lo, Bound::Unbounded)).map_err(map)?.next() {
                consider(r.map_err(map)?.0.value());
            }
        }
        if let Some(t) = &docs {
            let f = floor.as_deref().unwrap_or("");
            if let Some(r) = t.range((f, "", "")..).map_err(map)?.next() {
                consider(r.map_err(map)?.0.value().0);
            }
        }
        if let Some(t) = &journals {
            let f = floor.as_deref().unwrap_or("");
            if let Some(r) = t.range((f, "")..).map_err(map)?.next() {
                consider(r.map_err(map)?.0.value().0);
            }
        }
        let Some(id) = next else { break };
        if !id.starts_with(tierstate_core::DeploymentId::RESERVED_PREFIX) {
            out.push(tierstate_core::DeploymentId::from_stored(&id).map_err(|e| {
                tierstate_core::Error::Backend {
                    backend: crate::error::BACKEND,
                    kind: tierstate_core::BackendErrorKind::Other,
                    message: format!("unexpected stored deployment id {id:?}: {e}"),
                    source: None,
                }
            })?);
        }
        cur = Some(id);
    }
    Ok(out)
}

/// redb's part of `verify`: reads every table of the file end to end (every page, key and
/// value decoded), naming each table that cannot be read.
pub(crate) fn check_tables(
    txn: &redb::ReadTransaction,
    file: &std::path::Path,
) -> Result<Vec<String>> {
    fn walk<K: redb::Key + 'static, V: redb::Value + 'static>(
        txn: &redb::ReadTransaction,
        def: redb::TableDefinition<K, V>,
    ) -> std::result::Result<(), String> {
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        for r in t.iter().map_err(|e| e.to_string())? {
            let (k, v) = r.map_err(|e| e.to_string())?;
            let _ = (k.value(), v.value());
        }
        Ok(())
    }
    let mut problems = Vec::new();
    // Each table under its own guard: a panic in one (damage redb's decoders do not expect)
    // is that table's problem, and the others are still walked.
    let mut check = |name: &str, walk: &dyn Fn() -> std::result::Result<(), String>| {
        let r = crate::error::guarded(file, || Ok(walk()));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("table {name}: {e}")),
            Err(e) => problems.push(format!("table {name}: {e}")),
        }
    };
    use crate::tables as t;
    check("tierstate_meta", &|| walk(txn, t::META));
    check("ts_head_v3", &|| walk(txn, t::HEAD));
    check("ts_version", &|| walk(txn, t::VERSIONS));
    check("ts_doc_head_v3", &|| walk(txn, t::DOC_HEAD));
    check("ts_doc_version", &|| walk(txn, t::DOC_VERSIONS));
    check("ts_journal_head", &|| walk(txn, t::J_HEAD));
    check("ts_journal", &|| walk(txn, t::JOURNAL));
    check("ts_journal_key", &|| walk(txn, t::J_KEYS));
    check("ts_journal_event", &|| walk(txn, t::J_EVENTS));
    Ok(problems)
}

/// Current documents of one collection inside `range`, in its key order.
pub(crate) fn scan_docs(
    txn: &redb::ReadTransaction,
    id: &tierstate_core::DeploymentId,
    collection: &Name,
    range: &tierstate_core::KeyRange,
    limit: usize,
) -> Result<Vec<Result<StoredDoc>>> {
    if range.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let heads = txn.open_table(DOC_HEAD).map_err(map)?;
    let versions = txn.open_table(DOC_VERSIONS).map_err(map)?;
    let (d, c) = (id.as_str(), collection.as_str());
    // Keys are non-empty UTF-8 strings; every one of this collection sorts inside
    // [(d, c, ""), (d, c + "\0", "")).
    let end_c = format!("{c}\0");
    let lo = match &range.after {
        Some(k) => Bound::Excluded((d, c, k.as_str())),
        None => Bound::Included((d, c, "")),
    };
    let hi = match &range.before {
        Some(k) => Bound::Excluded((d, c, k.as_str())),
        None => Bound::Excluded((d, end_c.as_str(), "")),
    };
    let rows = heads.range::<(&str, &str, &str)>((lo, hi)).map_err(map)?;
    let rows: Box<dyn Iterator<Item = _>> = if range.descending {
        Box::new(rows.rev())
    } else {
        Box::new(rows)
    };
    let mut out = Vec::new();
    // Ascending, the head versions are read by walking the version table beside the heads
    // (both are in key order), not by one descent per document.
    let mut walk: Option<Walk<'_>> = None;
    for r in rows.take(limit) {
        let (k, v) = r.map_err(map)?;
        let (_, _, key) = k.value();
        let (version, created, _) = v.value();
        let key = match Name::key(key) {
            Ok(key) => key,
            Err(e) => {
                out.push(Err(e));
                continue;
            }
        };
        let address = DocAddr {
            deployment_id: id.clone(),
            collection: collection.clone(),
            key,
        };
        let want = (d, c, address.key.as_str(), version);
        let row = match walk.as_mut().and_then(|w| w.take(want)) {
            Some(row) => Some(row),
            None if range.descending => versions.get(want).map_err(map)?,
            None => {
                // A seek, and the walk goes on from there.
                let mut it = versions.range(want..).map_err(map)?.peekable();
                let here = match it.peek() {
                    Some(Ok((k, _))) => k.value() == want,
                    Some(Err(_)) => true, // taken below, to report it
                    None => false,
                };
                let row = if here {
                    it.next().transpose().map_err(map)?.map(|(_, v)| v)
                } else {
                    None
                };
                walk = Some(Walk(it));
                row
            }
        };
        let Some(row) = row else {
            out.push(Err(tierstate_core::Error::missing_version(
                &address, version,
            )));
            continue;
        };
        let (updated, checksum, body) = row.value();
        out.push(Ok(StoredDoc {
            address,
            version,
            body: body.to_vec(),
            checksum: lossy(checksum),
            created_at_us: created,
            updated_at_us: updated,
        }));
    }
    Ok(out)
}

/// Rows a walk over the version table passes before it seeks instead: old versions kept of
/// one key, or of documents since deleted.
const WALK_AHEAD: usize = 8;

/// A walk over the document version table in key order.
struct Walk<'t>(std::iter::Peekable<redb::Range<'t, DocVersionKey, DocVersionValue>>);

impl<'t> Walk<'t> {
    /// The row at `want`, if the walk reaches it within [`WALK_AHEAD`] rows (`None`: seek;
    /// a read error is left for the seek to report).
    fn take(
        &mut self,
        want: (&str, &str, &str, u64),
    ) -> Option<redb::AccessGuard<'t, DocVersionValue>> {
        for _ in 0..=WALK_AHEAD {
            let Some(Ok((k, _))) = self.0.peek() else {
                return None;
            };
            match k.value().cmp(&want) {
                std::cmp::Ordering::Less => {
                    self.0.next();
                }
                std::cmp::Ordering::Equal => return self.0.next()?.ok().map(|(_, v)| v),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}
