//! The in-memory reference store: the semantics of [`StateStore`] with no I/O.
//!
//! It keeps canonical bytes and checksums exactly like a durable backend, so the conformance
//! suite (including corruption detection) runs against it too. Nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::journal::{
    EntryDamage, Fetch, JournalHead, JournalInfo, JournalPage, JournalQuery, StoredEntry,
    TruncateBefore, flip, truncated_head,
};
use crate::plan::{Snapshot, plan};
use crate::{
    Committed, DeploymentId, DocAddr, Document, KeyRange, Name, Result, Signal, StateData,
    StateStore, StoredDoc, StoredRecord, StreamAddr, Tier, WriteBatch, commit_time,
};

/// A [`StateStore`] held in process memory; for tests and as the reference implementation.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    data: Mutex<Data>,
    signal: Signal,
    /// Journals whose appends fail ([`crate::Fault::FailAppends`]).
    failing: Mutex<std::collections::HashSet<StreamAddr>>,
}

#[derive(Debug, Default)]
struct Data {
    /// Per deployment, its retained versions in ascending order.
    rows: BTreeMap<DeploymentId, Vec<StoredRecord>>,
    /// Per document, its retained versions in ascending order.
    docs: BTreeMap<DocAddr, Vec<StoredDoc>>,
    /// Per journal, its head and retained entries.
    journals: BTreeMap<StreamAddr, (JournalHead, BTreeMap<u64, StoredEntry>)>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a plan's rows; true if it appended to a journal.
    fn store(data: &mut Data, plan: crate::plan::Plan) -> (bool, Committed) {
        for w in plan.states {
            let versions = data.rows.entry(w.address.clone()).or_default();
            versions.push(StoredRecord {
                deployment_id: w.address,
                version: w.version,
                schema_version: w.schema_version,
                body: w.body,
                checksum: w.checksum,
                created_at_us: w.created_us,
                updated_at_us: w.updated_us,
            });
            if let Some(below) = w.prune_below {
                versions.retain(|r| r.version >= below);
            }
        }
        for w in plan.documents {
            let versions = data.docs.entry(w.address.clone()).or_default();
            versions.push(StoredDoc {
                address: w.address,
                version: w.version,
                body: w.body,
                checksum: w.checksum,
                created_at_us: w.created_us,
                updated_at_us: w.updated_us,
            });
            if let Some(below) = w.prune_below {
                versions.retain(|r| r.version >= below);
            }
        }
        for a in plan.removals {
            data.docs.remove(&a);
        }
        let appended = !plan.entries.is_empty();
        for e in plan.entries {
            let slot = data
                .journals
                .entry(e.stream.clone())
                .or_insert_with(|| (JournalHead::empty(&e.stream), BTreeMap::new()));
            slot.1.insert(e.seq, e);
        }
        for (s, h, _) in plan.heads {
            if let Some(slot) = data.journals.get_mut(&s) {
                slot.0 = h;
            }
        }
        (appended, plan.committed)
    }

    fn snapshot(data: &Data, batch: &crate::PreparedBatch) -> Snapshot {
        let reads = batch.reads();
        let mut snap = Snapshot::default();
        for id in reads.states {
            if let Some(last) = data.rows.get(&id).and_then(|v| v.last()) {
                snap.states.insert(id, (last.version, last.created_at_us));
            }
        }
        for a in reads.documents {
            if let Some(last) = data.docs.get(&a).and_then(|v| v.last()) {
                snap.documents.insert(a, (last.version, last.created_at_us));
            }
        }
        for s in reads.streams {
            if let Some((h, _)) = data.journals.get(&s) {
                snap.heads.insert(s, *h);
            }
        }
        for (s, k) in reads.keys {
            let hit = data.journals.get(&s).and_then(|(_, e)| {
                e.values()
                    .find(|e| e.key.as_deref() == Some(k.as_str()))
                    .cloned()
            });
            if let Some(row) = hit {
                snap.keyed.insert((s, k), row);
            }
        }
        snap
    }
}

/// The newest row at or before `at_us` and the oldest retained version.
fn pick_as_of<T: Clone>(
    rows: Option<&Vec<T>>,
    at_us: i64,
    meta: impl Fn(&T) -> (u64, i64),
) -> (Option<T>, Option<u64>) {
    let Some(rows) = rows else {
        return (None, None);
    };
    let found = rows.iter().rev().find(|r| meta(r).1 <= at_us).cloned();
    (found, rows.first().map(|r| meta(r).0))
}

impl InMemoryStore {
    /// Flips bits of one byte of a stored version's body (`offset` wraps over it).
    fn damage_state(
        &self,
        id: &DeploymentId,
        version: Option<u64>,
        offset: usize,
        mask: u8,
    ) -> bool {
        let mut data = self.data.lock();
        let Some(versions) = data.rows.get_mut(id) else {
            return false;
        };
        let row = match version {
            Some(v) => versions.iter_mut().find(|r| r.version == v),
            None => versions.last_mut(),
        };
        match row {
            Some(r) if !r.body.is_empty() => {
                let at = offset % r.body.len();
                r.body[at] ^= mask.max(1);
                true
            }
            _ => false,
        }
    }

    fn damage_document(&self, address: &DocAddr) -> bool {
        let mut data = self.data.lock();
        match data.docs.get_mut(address).and_then(|v| v.last_mut()) {
            Some(d) => {
                flip(&mut d.body);
                true
            }
            None => false,
        }
    }

    fn damage_entry(&self, stream: &StreamAddr, seq: u64, damage: EntryDamage) -> bool {
        let mut data = self.data.lock();
        let Some((_, entries)) = data.journals.get_mut(stream) else {
            return false;
        };
        if damage == EntryDamage::Delete {
            return entries.remove(&seq).is_some();
        }
        let Some(e) = entries.get_mut(&seq) else {
            return false;
        };
        let mut hash = std::mem::take(&mut e.hash).into_bytes();
        let mut sum = std::mem::take(&mut e.checksum).into_bytes();
        damage.apply(&mut e.body, &mut sum, &mut hash);
        e.hash = String::from_utf8_lossy(&hash).into_owned();
        e.checksum = String::from_utf8_lossy(&sum).into_owned();
        true
    }
}

#[async_trait]
impl crate::FaultSeam for InMemoryStore {
    async fn inject(&self, fault: crate::Fault) -> Result<bool> {
        use crate::Fault;
        Ok(match fault {
            Fault::StateBytes {
                id,
                version,
                offset,
                mask,
            } => self.damage_state(&id, version, offset, mask),
            Fault::DocumentBody(a) => self.damage_document(&a),
            // A document's head and its body are one row here: nothing to lose apart.
            Fault::DocumentRowGone(_) => false,
            Fault::Entry {
                stream,
                seq,
                damage,
            } => self.damage_entry(&stream, seq, damage),
            Fault::FailAppends { stream, on } => {
                let mut f = self.failing.lock();
                if on {
                    f.insert(stream)
                } else {
                    f.remove(&stream)
                }
            }
        })
    }
}

#[async_trait]
impl StateStore for InMemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>> {
        let row = self
            .data
            .lock()
            .rows
            .get(id)
            .and_then(|v| v.last().cloned());
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        let row = self
            .data
            .lock()
            .rows
            .get(id)
            .and_then(|v| v.iter().find(|r| r.version == version).cloned());
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        let rows: Vec<StoredRecord> = self
            .data
            .lock()
            .rows
            .get(id)
            .map(|v| v.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default();
        rows.into_iter().map(|r| r.verify(Tier::Warm)).collect()
    }

    async fn restore(&self, plan: crate::plan::Plan) -> Result<()> {
        let mut data = self.data.lock();
        let (appended, _) = Self::store(&mut data, plan);
        drop(data);
        if appended {
            self.signal.bump();
        }
        Ok(())
    }

    async fn write(&self, batch: WriteBatch) -> Result<Committed> {
        let batch = batch.prepare()?;
        let mut data = self.data.lock();
        let snap = Self::snapshot(&data, &batch);
        // The plan decides every member first, so a failing member leaves nothing written.
        let plan = plan(batch, &snap, commit_time())?;
        if let Some(e) = plan
            .entries
            .iter()
            .find(|e| self.failing.lock().contains(&e.stream))
        {
            return Err(crate::fault::injected(&e.stream));
        }
        let (appended, committed) = Self::store(&mut data, plan);
        drop(data);
        if appended {
            self.signal.bump();
        }
        Ok(committed)
    }

    async fn get_as_of(&self, id: &DeploymentId, at: DateTime<Utc>) -> Result<Option<StateData>> {
        let (found, oldest) =
            pick_as_of(self.data.lock().rows.get(id), at.timestamp_micros(), |r| {
                (r.version, r.updated_at_us)
            });
        crate::plan::state_as_of(id, at, found, oldest)
    }

    async fn get_document(&self, address: &DocAddr) -> Result<Option<Document>> {
        let row = self
            .data
            .lock()
            .docs
            .get(address)
            .and_then(|v| v.last().cloned());
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn document_history(&self, address: &DocAddr, limit: usize) -> Result<Vec<Document>> {
        let rows: Vec<StoredDoc> = self
            .data
            .lock()
            .docs
            .get(address)
            .map(|v| v.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default();
        rows.into_iter().map(|r| r.verify(Tier::Warm)).collect()
    }

    async fn document_version(&self, address: &DocAddr, version: u64) -> Result<Option<Document>> {
        let row = self
            .data
            .lock()
            .docs
            .get(address)
            .and_then(|v| v.iter().find(|r| r.version == version).cloned());
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn deployments(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>> {
        let data = self.data.lock();
        let mut all: std::collections::BTreeSet<&DeploymentId> = data.rows.keys().collect();
        all.extend(data.docs.keys().map(|a| &a.deployment_id));
        all.extend(data.journals.keys().map(|s| &s.deployment_id));
        Ok(all
            .into_iter()
            .filter(|id| !id.is_reserved() && after.is_none_or(|a| *id > a))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn document_as_of(
        &self,
        address: &DocAddr,
        at: DateTime<Utc>,
    ) -> Result<Option<Document>> {
        let (found, oldest) = pick_as_of(
            self.data.lock().docs.get(address),
            at.timestamp_micros(),
            |r| (r.version, r.updated_at_us),
        );
        crate::plan::document_as_of(address, at, found, oldest)
    }

    async fn scan_stored_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Result<StoredDoc>>> {
        let at = |key: Name| DocAddr {
            deployment_id: id.clone(),
            collection: collection.clone(),
            key,
        };
        // Every key of the collection sorts inside [(id, c, ""), (id, c + "\0", "")).
        let lo = match &range.after {
            Some(k) => Bound::Excluded(at(k.clone())),
            None => Bound::Included(at(Name::unchecked(""))),
        };
        let hi = match &range.before {
            Some(k) => Bound::Excluded(at(k.clone())),
            None => Bound::Excluded(DocAddr {
                deployment_id: id.clone(),
                collection: Name::unchecked(&format!("{collection}\0")),
                key: Name::unchecked(""),
            }),
        };
        let picked: Vec<StoredDoc> = if range.is_empty() {
            Vec::new()
        } else {
            let data = self.data.lock();
            let rows = data.docs.range((lo, hi));
            let last = |(_, v): (_, &Vec<StoredDoc>)| v.last().cloned();
            if range.descending {
                rows.rev().take(limit).filter_map(last).collect()
            } else {
                rows.take(limit).filter_map(last).collect()
            }
        };
        Ok(picked.into_iter().map(Ok).collect())
    }

    async fn collections(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        // Seek past each collection: every key of `c` sorts before (id, c + "\0", "").
        let past = |c: &Name| DocAddr {
            deployment_id: id.clone(),
            collection: Name::unchecked(&format!("{c}\0")),
            key: Name::unchecked(""),
        };
        let mut lo = match after {
            Some(c) => past(c),
            None => DocAddr {
                deployment_id: id.clone(),
                collection: Name::unchecked(""),
                key: Name::unchecked(""),
            },
        };
        let data = self.data.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((a, _)) = data.docs.range(lo..).next() else {
                break;
            };
            if a.deployment_id != *id {
                break;
            }
            out.push(a.collection.clone());
            lo = past(&a.collection);
        }
        Ok(out)
    }

    async fn streams(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        let at = |s: &str| StreamAddr {
            deployment_id: id.clone(),
            stream: Name::unchecked(s),
        };
        let lo = match after {
            Some(s) => Bound::Excluded(at(s.as_str())),
            None => Bound::Included(at("")),
        };
        let data = self.data.lock();
        Ok(data
            .journals
            .range((lo, Bound::Unbounded))
            .take_while(|(a, _)| a.deployment_id == *id)
            .take(limit)
            .map(|(a, _)| a.stream.clone())
            .collect())
    }

    async fn journal_info(&self, stream: &StreamAddr) -> Result<Option<JournalInfo>> {
        Ok(self
            .data
            .lock()
            .journals
            .get(stream)
            .map(|(h, _)| JournalInfo::from(*h)))
    }

    async fn read_journal(&self, stream: &StreamAddr, query: JournalQuery) -> Result<JournalPage> {
        let data = self.data.lock();
        let slot = data.journals.get(stream);
        let resolved = query.resolve(slot.map(|s| s.0), stream)?;
        let empty = BTreeMap::new();
        let entries = slot.map_or(&empty, |s| &s.1);
        let rows: Vec<StoredEntry> = match &resolved.fetch {
            Fetch::Nothing => Vec::new(),
            Fetch::Seq { lo, hi } => entries.range(lo..=hi).map(|(_, e)| e.clone()).collect(),
            Fetch::Window {
                from_us,
                to_us,
                after,
                limit,
            } => {
                let mut hits: Vec<&StoredEntry> = entries
                    .values()
                    .filter(|e| e.event_us >= *from_us && e.event_us < *to_us)
                    .filter(|e| after.is_none_or(|a| (e.event_us, e.seq) > a))
                    .collect();
                hits.sort_by_key(|e| (e.event_us, e.seq));
                hits.into_iter().take(*limit).cloned().collect()
            }
            Fetch::WindowDesc {
                from_us,
                before,
                limit,
            } => {
                let before = (before.0, u64::try_from(before.1).unwrap_or(0));
                let mut hits: Vec<&StoredEntry> = entries
                    .values()
                    .filter(|e| e.event_us >= *from_us && (e.event_us, e.seq) < before)
                    .collect();
                hits.sort_by_key(|e| std::cmp::Reverse((e.event_us, e.seq)));
                hits.into_iter().take(*limit).cloned().collect()
            }
            Fetch::AtOrBefore { at_us } => entries
                .values()
                .filter(|e| e.event_us <= *at_us)
                .max_by_key(|e| (e.event_us, e.seq))
                .cloned()
                .into_iter()
                .collect(),
            Fetch::Key(k) => entries
                .values()
                .find(|e| e.key.as_deref() == Some(k.as_str()))
                .cloned()
                .into_iter()
                .collect(),
        };
        let linked: Vec<StoredEntry> = resolved
            .links(&rows)
            .into_iter()
            .filter_map(|p| entries.get(&p).cloned())
            .collect();
        drop(data);
        resolved.finish(stream, rows, linked, Tier::Warm)
    }

    async fn truncate_journal(&self, stream: &StreamAddr, before: TruncateBefore) -> Result<u64> {
        let mut data = self.data.lock();
        let Some((head, entries)) = data.journals.get_mut(stream) else {
            return Ok(0);
        };
        let first_kept = match before {
            TruncateBefore::Seq(s) => s,
            TruncateBefore::EventTime(t) => {
                let t = t.timestamp_micros();
                entries
                    .values()
                    .find(|e| e.event_us >= t)
                    .map_or(head.last_seq + 1, |e| e.seq)
            }
        };
        let anchor_seq = first_kept.saturating_sub(1);
        let anchor = entries.get(&anchor_seq).map(|e| e.hash.clone());
        let new_head = truncated_head(stream, *head, first_kept, anchor.as_deref())?;
        let removed = new_head.base_seq - head.base_seq;
        entries.retain(|s, _| *s > new_head.base_seq);
        *head = new_head;
        drop(data);
        self.signal.bump();
        Ok(removed)
    }

    fn journal_signal(&self) -> watch::Receiver<u64> {
        self.signal.subscribe()
    }

    async fn delete(&self, id: &DeploymentId) -> Result<bool> {
        Ok(self.data.lock().rows.remove(id).is_some())
    }

    async fn list(&self, after: Option<&DeploymentId>, limit: usize) -> Result<Vec<DeploymentId>> {
        let data = self.data.lock();
        Ok(range_after(&data.rows, after)
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>> {
        let picked: Vec<StoredRecord> = {
            let data = self.data.lock();
            range_after(&data.rows, after)
                .take(limit)
                .filter_map(|(_, v)| v.last().cloned())
                .collect()
        };
        Ok(picked.into_iter().map(|r| r.verify(Tier::Warm)).collect())
    }
}

fn range_after<'a>(
    rows: &'a BTreeMap<DeploymentId, Vec<StoredRecord>>,
    after: Option<&DeploymentId>,
) -> impl Iterator<Item = (&'a DeploymentId, &'a Vec<StoredRecord>)> {
    let lower = match after {
        Some(a) => Bound::Excluded(a.clone()),
        None => Bound::Unbounded,
    };
    rows.range((lower, Bound::Unbounded))
        .filter(|(id, _)| !id.is_reserved())
}
