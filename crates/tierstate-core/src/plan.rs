//! Planning a batch: the one place that decides what a commit writes.
//!
//! A backend opens its write transaction, reads the heads a batch touches ([`Reads`]) into a
//! [`Snapshot`], and calls [`plan`]: the compare-and-swap rule, journal sequencing, idempotency
//! keys and hash chaining are applied here, identically for every backend, and the backend
//! then stores the planned rows. A failing member fails the plan before anything is written.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::journal::{Appended, JournalHead, StoredEntry, chain_hash};
use crate::{
    Checksum, DeploymentId, DocAddr, Document, Error, Name, PreparedBatch, Result, StateData,
    StoredDoc, StoredRecord, StreamAddr, Target, Tier, cas, epoch_micros,
};

/// Everything a batch's plan depends on, each list sorted and without repeats (the order
/// backends take row locks in, so two batches never wait on each other in a cycle).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reads {
    /// States whose head (version, created_at) is needed.
    pub states: Vec<DeploymentId>,
    /// Documents whose head is needed.
    pub documents: Vec<DocAddr>,
    /// Journals whose head is needed.
    pub streams: Vec<StreamAddr>,
    /// Idempotency keys to look up.
    pub keys: Vec<(StreamAddr, Name)>,
}

impl PreparedBatch {
    /// What must be read to plan this batch.
    pub fn reads(&self) -> Reads {
        let states: BTreeSet<_> = self
            .writes
            .iter()
            .map(|w| w.deployment_id.clone())
            .collect();
        let documents: BTreeSet<_> = self
            .documents
            .iter()
            .map(|d| d.write.address.clone())
            .chain(self.removals.iter().map(|(a, _)| a.clone()))
            .chain(self.checks.iter().map(|(a, _)| a.clone()))
            .collect();
        let streams: BTreeSet<_> = self
            .appends
            .iter()
            .map(|a| a.append.stream.clone())
            .collect();
        let keys: BTreeSet<_> = self
            .appends
            .iter()
            .filter_map(|a| Some((a.append.stream.clone(), a.append.key.clone()?)))
            .collect();
        Reads {
            states: states.into_iter().collect(),
            documents: documents.into_iter().collect(),
            streams: streams.into_iter().collect(),
            keys: keys.into_iter().collect(),
        }
    }
}

/// What a backend read inside its write transaction: present entries only (absent = none).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// State heads: (version, created_at µs).
    pub states: HashMap<DeploymentId, (u64, i64)>,
    /// Document heads: (version, created_at µs).
    pub documents: HashMap<DocAddr, (u64, i64)>,
    /// Journal heads.
    pub heads: HashMap<StreamAddr, JournalHead>,
    /// Stored entries holding the looked-up idempotency keys.
    pub keyed: HashMap<(StreamAddr, Name), StoredEntry>,
}

/// One versioned row to store (a state or a document version) and its new head.
#[derive(Debug, Clone)]
pub struct RowWrite<A> {
    /// The deployment or document.
    pub address: A,
    /// The version it becomes.
    pub version: u64,
    /// Commit time of version 1 (µs): the head's `created_at`.
    pub created_us: i64,
    /// This commit's time (µs).
    pub updated_us: i64,
    /// Payload schema version (1 for documents).
    pub schema_version: u32,
    /// Hex SHA-256 of `body`.
    pub checksum: String,
    /// Canonical JSON.
    pub body: Vec<u8>,
    /// Versions strictly below this one are pruned (retention).
    pub prune_below: Option<u64>,
    /// True if this commit deletes the pruned rows now rather than at the end of a run
    /// ([`crate::Retention::reclaims_at`]); reads skip them either way.
    pub reclaim_now: bool,
    /// True if no head exists yet (insert rather than update).
    pub is_new: bool,
}

impl RowWrite<DeploymentId> {
    /// The row a store keeps for a state version read back verified: its canonical JSON
    /// (compressed as stored) and checksum, its times, pruning below `prune_below`.
    ///
    /// # Errors
    /// `Integrity` naming the version if the re-encoded value does not match its checksum.
    pub fn of_state(s: &StateData, prune_below: Option<u64>, reclaim_now: bool) -> Result<Self> {
        let id = &s.deployment_id;
        Ok(Self {
            address: id.clone(),
            version: s.version,
            created_us: epoch_micros(s.created_at),
            updated_us: epoch_micros(s.updated_at),
            schema_version: s.schema_version,
            checksum: s.checksum.to_hex(),
            body: stored_body(&s.state, &s.checksum, id, Target::State, s.version)?,
            prune_below,
            reclaim_now,
            is_new: s.version == 1,
        })
    }
}

impl RowWrite<DocAddr> {
    /// The row a store keeps for a document version read back verified; see
    /// [`RowWrite::of_state`].
    ///
    /// # Errors
    /// As [`RowWrite::of_state`].
    pub fn of_document(d: &Document, prune_below: Option<u64>, reclaim_now: bool) -> Result<Self> {
        let a = &d.address;
        Ok(Self {
            address: a.clone(),
            version: d.version,
            created_us: epoch_micros(d.created_at),
            updated_us: epoch_micros(d.updated_at),
            schema_version: 1,
            checksum: d.checksum.to_hex(),
            body: stored_body(
                &d.value,
                &d.checksum,
                &a.deployment_id,
                Target::document(a),
                d.version,
            )?,
            prune_below,
            reclaim_now,
            is_new: d.version == 1,
        })
    }
}

impl StoredEntry {
    /// The row a store keeps for a journal entry read back verified.
    ///
    /// # Errors
    /// `Integrity` naming the entry if the re-encoded value does not match its checksum.
    pub fn of_entry(e: &crate::JournalEntry) -> Result<Self> {
        let body = crate::canonical_json(&e.value)?;
        if Checksum::of(&body) != e.checksum {
            return Err(reencoded(
                &e.stream.deployment_id,
                Target::journal(&e.stream),
                e.seq,
            ));
        }
        Ok(Self {
            stream: e.stream.clone(),
            seq: e.seq,
            event_us: epoch_micros(e.event_time),
            commit_us: epoch_micros(e.commit_time),
            key: e.key.as_ref().map(|k| k.as_str().to_owned()),
            body,
            checksum: e.checksum.to_hex(),
            prev_hash: e.prev_hash.to_hex(),
            hash: e.hash.to_hex(),
        })
    }
}

/// The bytes a store keeps for a state or document body (canonical JSON, compressed above
/// the threshold), checked against the checksum it was read with.
fn stored_body(
    value: &serde_json::Map<String, serde_json::Value>,
    checksum: &Checksum,
    id: &DeploymentId,
    target: Target,
    version: u64,
) -> Result<Vec<u8>> {
    let body = crate::canonical_json(value)?;
    if Checksum::of(&body) != *checksum {
        return Err(reencoded(id, target, version));
    }
    Ok(crate::compress::pack(body))
}

fn reencoded(id: &DeploymentId, target: Target, version: u64) -> Error {
    Error::Integrity {
        deployment_id: id.clone(),
        target,
        version,
        tier: Tier::Warm,
        expected: "the stored checksum".into(),
        actual: "a different checksum after re-encoding the verified value".into(),
    }
}

/// Everything a batch writes, decided.
#[derive(Debug, Clone)]
pub struct Plan {
    /// State versions to store.
    pub states: Vec<RowWrite<DeploymentId>>,
    /// Document versions to store.
    pub documents: Vec<RowWrite<DocAddr>>,
    /// Documents to remove with their history (only ones that exist).
    pub removals: Vec<DocAddr>,
    /// Journal entries to insert, in sequence order per stream.
    pub entries: Vec<StoredEntry>,
    /// The new head of every journal appended to, and whether it existed before.
    pub heads: Vec<(StreamAddr, JournalHead, bool)>,
    /// What the caller hears once the transaction commits.
    pub committed: Committed,
}

impl Plan {
    /// A plan that writes nothing (what a restore fills in).
    pub fn empty() -> Self {
        Self {
            states: Vec::new(),
            documents: Vec::new(),
            removals: Vec::new(),
            entries: Vec::new(),
            heads: Vec::new(),
            committed: Committed::default(),
        }
    }
}

/// What a committed batch produced, each list in batch order of its kind.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Committed {
    /// The committed states.
    pub states: Vec<StateData>,
    /// The committed documents.
    pub documents: Vec<Document>,
    /// For each document removal: whether the document existed.
    pub removed: Vec<bool>,
    /// For each append: the entry, and whether it was written now.
    pub entries: Vec<Appended>,
}

/// Applies the rules to `batch` over what `snap` holds, as of commit time `now`.
///
/// # Errors
/// The first member's `AlreadyExists`, `Conflict` or `KeyReused`, or `Integrity` if a stored
/// entry with a looked-up key is damaged. Nothing is written on error.
pub fn plan(batch: PreparedBatch, snap: &Snapshot, now: DateTime<Utc>) -> Result<Plan> {
    let now_us = epoch_micros(now);
    let retention = batch.retention;
    let mut out = Plan {
        states: Vec::with_capacity(batch.writes.len()),
        documents: Vec::with_capacity(batch.documents.len()),
        removals: Vec::new(),
        entries: Vec::with_capacity(batch.appends.len()),
        heads: Vec::new(),
        committed: Committed::default(),
    };
    for w in batch.writes {
        let head = snap.states.get(&w.deployment_id).copied();
        let version = cas::next_version(&w.deployment_id, w.mode, head.map(|h| h.0))?;
        let created_us = head.map_or(now_us, |h| h.1);
        let created_at = DateTime::from_timestamp_micros(created_us).unwrap_or(now);
        let (address, schema_version, checksum) = (
            w.deployment_id.clone(),
            w.schema_version,
            w.checksum.to_hex(),
        );
        let (record, body) = w.into_committed(version, created_at, now);
        out.committed.states.push(record);
        out.states.push(RowWrite {
            address,
            version,
            created_us,
            updated_us: now_us,
            schema_version,
            checksum,
            body,
            prune_below: retention.prune_below(version),
            reclaim_now: retention
                .prune_below(version)
                .is_some_and(|b| retention.reclaims_at(b)),
            is_new: head.is_none(),
        });
    }
    for d in batch.documents {
        let addr = d.write.address;
        let head = snap.documents.get(&addr).copied();
        let target = Target::document(&addr);
        let version = cas::next_version_of(
            &addr.deployment_id,
            &target,
            d.write.mode,
            head.map(|h| h.0),
        )?;
        let created_us = head.map_or(now_us, |h| h.1);
        let kept = d.write.retention.unwrap_or(retention);
        let prune_below = kept.prune_below(version);
        out.committed.documents.push(Document {
            address: addr.clone(),
            version,
            value: d.write.value,
            checksum: d.checksum,
            created_at: DateTime::from_timestamp_micros(created_us).unwrap_or(now),
            updated_at: now,
            loaded_from: Tier::Warm,
        });
        out.documents.push(RowWrite {
            address: addr,
            version,
            created_us,
            updated_us: now_us,
            schema_version: 1,
            checksum: d.checksum.to_hex(),
            body: d.body,
            prune_below,
            reclaim_now: prune_below.is_some_and(|b| kept.reclaims_at(b)),
            is_new: head.is_none(),
        });
    }
    for (addr, version) in &batch.checks {
        let stored = snap.documents.get(addr).map(|h| h.0);
        match (version, stored) {
            (None, Some(actual)) => {
                return Err(Error::AlreadyExists {
                    deployment_id: addr.deployment_id.clone(),
                    target: Target::document(addr),
                    actual,
                });
            }
            (Some(expected), _) if stored != Some(*expected) => {
                return Err(Error::Conflict {
                    deployment_id: addr.deployment_id.clone(),
                    target: Target::document(addr),
                    expected: *expected,
                    actual: stored,
                });
            }
            _ => {}
        }
    }
    for (addr, expected) in batch.removals {
        let stored = snap.documents.get(&addr).map(|h| h.0);
        if let Some(expected) = expected
            && stored != Some(expected)
        {
            return Err(Error::Conflict {
                deployment_id: addr.deployment_id.clone(),
                target: Target::document(&addr),
                expected,
                actual: stored,
            });
        }
        out.committed.removed.push(stored.is_some());
        if stored.is_some() {
            out.removals.push(addr);
        }
    }
    let mut heads: HashMap<StreamAddr, (JournalHead, bool)> = HashMap::new();
    let mut fresh_keys: HashMap<(StreamAddr, Name), usize> = HashMap::new();
    for a in batch.appends {
        let stream = a.append.stream.clone();
        let (head, _) =
            heads
                .entry(stream.clone())
                .or_insert_with(|| match snap.heads.get(&stream) {
                    Some(h) => (*h, true),
                    None => (JournalHead::empty(&stream), false),
                });
        if let Some(key) = &a.append.key {
            let slot = (stream.clone(), key.clone());
            let existing = match fresh_keys.get(&slot) {
                Some(&i) => Some(out.committed.entries[i].entry.clone()),
                None => match snap.keyed.get(&slot) {
                    Some(row) => Some(row.clone().verify(Tier::Warm)?),
                    None => None,
                },
            };
            if let Some(entry) = existing {
                if a.append.require_new {
                    return Err(Error::AlreadyExists {
                        deployment_id: stream.deployment_id.clone(),
                        target: Target::journal(&stream),
                        actual: entry.seq,
                    });
                }
                if entry.checksum != a.checksum {
                    return Err(Error::KeyReused {
                        deployment_id: stream.deployment_id.clone(),
                        stream: stream.stream.clone(),
                        key: key.clone(),
                        seq: entry.seq,
                        stored: entry.checksum,
                        given: a.checksum,
                    });
                }
                out.committed.entries.push(Appended {
                    entry,
                    fresh: false,
                });
                continue;
            }
        }
        if let Some(expected) = a.append.expect
            && expected != head.last_seq
        {
            return Err(Error::Conflict {
                deployment_id: stream.deployment_id.clone(),
                target: Target::journal(&stream),
                expected,
                actual: Some(head.last_seq),
            });
        }
        let seq = head
            .last_seq
            .checked_add(1)
            .filter(|s| *s < i64::MAX as u64)
            .ok_or_else(|| {
                Error::invalid(
                    "seq",
                    format!("journal {stream} has reached the largest sequence number"),
                )
            })?;
        let commit_us = now_us.max(head.last_commit_us);
        let event_us = a.append.event_time.timestamp_micros();
        let key = a.append.key.as_ref().map(|k| k.as_str().to_owned());
        let prev = head.last_hash;
        let hash = chain_hash(&prev, seq, event_us, commit_us, key.as_deref(), &a.checksum);
        let row = StoredEntry {
            stream: stream.clone(),
            seq,
            event_us,
            commit_us,
            key,
            body: a.body,
            checksum: a.checksum.to_hex(),
            prev_hash: prev.to_hex(),
            hash: hash.to_hex(),
        };
        head.last_seq = seq;
        head.last_hash = hash;
        head.last_commit_us = commit_us;
        let entry = crate::journal::JournalEntry {
            stream: stream.clone(),
            seq,
            event_time: DateTime::from_timestamp_micros(event_us).unwrap_or(a.append.event_time),
            commit_time: DateTime::from_timestamp_micros(commit_us).unwrap_or(now),
            key: a.append.key.clone(),
            value: a.append.value,
            checksum: a.checksum,
            prev_hash: prev,
            hash,
            loaded_from: Tier::Warm,
        };
        if let Some(k) = a.append.key {
            fresh_keys.insert((stream, k), out.committed.entries.len());
        }
        out.entries.push(row);
        out.committed.entries.push(Appended { entry, fresh: true });
    }
    let mut heads: Vec<_> = heads
        .into_iter()
        .map(|(s, (h, existed))| (s, h, existed))
        .collect();
    heads.sort_by(|a, b| a.0.cmp(&b.0));
    // Heads of streams whose every append was a replay are unchanged: not rewritten.
    heads.retain(|(s, h, _)| snap.heads.get(s) != Some(h));
    out.heads = heads;
    Ok(out)
}

/// What a read of a state as of `at` returns, given the newest retained version committed at
/// or before it (`found`, verified here) and the oldest retained version number (`None`: the
/// deployment does not exist).
///
/// # Errors
/// `Integrity` if `found` is damaged; `NotRetained` if versions older than every retained one
/// existed (pruned) and none retained is old enough.
pub fn state_as_of(
    id: &DeploymentId,
    at: DateTime<Utc>,
    found: Option<StoredRecord>,
    oldest: Option<u64>,
) -> Result<Option<StateData>> {
    let found = found.map(|r| r.verify(Tier::Warm)).transpose()?;
    as_of(id, Target::State, at, found, oldest)
}

/// [`state_as_of`] for a document.
///
/// # Errors
/// As [`state_as_of`].
pub fn document_as_of(
    address: &DocAddr,
    at: DateTime<Utc>,
    found: Option<StoredDoc>,
    oldest: Option<u64>,
) -> Result<Option<Document>> {
    let found = found.map(|r| r.verify(Tier::Warm)).transpose()?;
    as_of(
        &address.deployment_id,
        Target::document(address),
        at,
        found,
        oldest,
    )
}

fn as_of<T>(
    deployment_id: &DeploymentId,
    target: Target,
    at: DateTime<Utc>,
    found: Option<T>,
    oldest: Option<u64>,
) -> Result<Option<T>> {
    match (found, oldest) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(oldest)) if oldest > 1 => Err(Error::NotRetained {
            deployment_id: deployment_id.clone(),
            target,
            at,
        }),
        _ => Ok(None),
    }
}
