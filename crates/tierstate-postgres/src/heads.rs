//! The heads (state and document versions, journal heads) this process last saw committed, so
//! a batch over heads it knows can be planned without reading them first and stored in one
//! round trip. A remembered head is only a guess: the statement's guards refuse a stale one,
//! and the batch then takes the locking path, which reads the truth under row locks.

use quick_cache::sync::Cache;
use tierstate_core::journal::JournalHead;
use tierstate_core::plan::{Plan, Reads, Snapshot};
use tierstate_core::{DeploymentId, DocAddr, PreparedBatch, StreamAddr};

/// Heads remembered at most (least recently used ones are dropped first).
const CAPACITY: usize = 65_536;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    State(DeploymentId),
    Doc(DocAddr),
    Stream(StreamAddr),
}

#[derive(Clone, Copy)]
enum Head {
    /// A state or document head: (version, created_at µs).
    Row(u64, i64),
    Journal(JournalHead),
}

/// Remembered heads, shared by every clone of a store.
pub(crate) struct Heads {
    cache: Cache<Key, Head>,
}

impl Heads {
    pub(crate) fn new() -> Self {
        Self {
            cache: Cache::new(CAPACITY),
        }
    }

    /// True if `batch` may be planned from remembered heads: nothing in it needs to see a head
    /// it does not move (a removal, a version check), which a guard on moved heads cannot
    /// cover.
    pub(crate) fn eligible(batch: &PreparedBatch) -> bool {
        batch.removals.is_empty() && batch.checks.is_empty()
    }

    /// A snapshot of `reads` if every head in it is remembered. Idempotency keys are assumed
    /// unused: a used one fails the statement on the unique index, and the locking path then
    /// finds the stored entry.
    pub(crate) fn snapshot(&self, reads: &Reads) -> Option<Snapshot> {
        let mut snap = Snapshot::default();
        for id in &reads.states {
            let Head::Row(v, at) = self.cache.get(&Key::State(id.clone()))? else {
                return None;
            };
            snap.states.insert(id.clone(), (v, at));
        }
        for a in &reads.documents {
            let Head::Row(v, at) = self.cache.get(&Key::Doc(a.clone()))? else {
                return None;
            };
            snap.documents.insert(a.clone(), (v, at));
        }
        for s in &reads.streams {
            let Head::Journal(h) = self.cache.get(&Key::Stream(s.clone()))? else {
                return None;
            };
            snap.heads.insert(s.clone(), h);
        }
        Some(snap)
    }

    /// Records what a locking transaction read under its row locks: the truth at that moment,
    /// including which heads do not exist.
    pub(crate) fn saw(&self, reads: &Reads, snap: &Snapshot) {
        for id in &reads.states {
            let seen = snap.states.get(id).map(|&(v, at)| Head::Row(v, at));
            self.set(Key::State(id.clone()), seen);
        }
        for a in &reads.documents {
            let seen = snap.documents.get(a).map(|&(v, at)| Head::Row(v, at));
            self.set(Key::Doc(a.clone()), seen);
        }
        for s in &reads.streams {
            self.set(
                Key::Stream(s.clone()),
                snap.heads.get(s).map(|h| Head::Journal(*h)),
            );
        }
    }

    /// Remembers `head` for `k`, or forgets `k` when it has none.
    fn set(&self, k: Key, head: Option<Head>) {
        match head {
            Some(h) => self.cache.insert(k, h),
            None => {
                self.cache.remove(&k);
            }
        }
    }

    /// Records the heads a committed plan moved. A head already remembered as newer (a later
    /// commit that reported first) is kept.
    pub(crate) fn committed(&self, plan: &Plan) {
        for w in &plan.states {
            self.advance(Key::State(w.address.clone()), w.version, w.created_us);
        }
        for w in &plan.documents {
            self.advance(Key::Doc(w.address.clone()), w.version, w.created_us);
        }
        for a in &plan.removals {
            self.cache.remove(&Key::Doc(a.clone()));
        }
        for (s, h, _) in &plan.heads {
            let k = Key::Stream(s.clone());
            let newer =
                matches!(self.cache.get(&k), Some(Head::Journal(c)) if c.last_seq > h.last_seq);
            if !newer {
                self.cache.insert(k, Head::Journal(*h));
            }
        }
    }

    /// Forgets every head of `reads` (a guard refused one of them).
    pub(crate) fn forget(&self, reads: &Reads) {
        for id in &reads.states {
            self.cache.remove(&Key::State(id.clone()));
        }
        for a in &reads.documents {
            self.cache.remove(&Key::Doc(a.clone()));
        }
        for s in &reads.streams {
            self.cache.remove(&Key::Stream(s.clone()));
        }
    }

    fn advance(&self, k: Key, version: u64, created_us: i64) {
        let newer = matches!(self.cache.get(&k), Some(Head::Row(v, _)) if v > version);
        if !newer {
            self.cache.insert(k, Head::Row(version, created_us));
        }
    }
}
