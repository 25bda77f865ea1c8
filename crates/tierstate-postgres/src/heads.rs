//! The heads (state and document versions, journal heads) this process last saw committed, so
//! a batch over heads it knows can be planned without reading them first and stored in one
//! round trip. A remembered head is only a guess: the statement's guards refuse a stale one,
//! and the batch then takes the locking path, which reads the truth under row locks.

use quick_cache::sync::Cache;
use tierstate_core::journal::JournalHead;
use tierstate_core::plan::{Plan, Reads, Snapshot};
use tierstate_core::{DeploymentId, DocAddr, PreparedBatch, PutMode, StreamAddr};

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

    /// True if `batch` may be planned from remembered heads: each of its checks expects a
    /// version (the statement share-locks the head where it must stand; that a document is
    /// absent, no lock can hold). Removals are guarded by the version they delete.
    pub(crate) fn eligible(batch: &PreparedBatch) -> bool {
        batch.checks.iter().all(|(_, v)| v.is_some())
    }

    /// A snapshot of `reads` if every head in it is remembered or implied by the batch
    /// itself: a state or document no write of which expects a version (creates and
    /// overwrites) is guessed absent, and a stream whose first append expects it empty is
    /// guessed empty (the first write of a new order or position would otherwise always take
    /// the locking path). Idempotency keys are assumed unused. A wrong guess fails the
    /// statement (a guard, or a unique index), and the locking path then finds the truth.
    pub(crate) fn snapshot(&self, reads: &Reads, batch: &PreparedBatch) -> Option<Snapshot> {
        let mut snap = Snapshot::default();
        for id in &reads.states {
            match self.cache.get(&Key::State(id.clone())) {
                Some(Head::Row(v, at)) => {
                    snap.states.insert(id.clone(), (v, at));
                }
                Some(Head::Journal(_)) => return None,
                None if expects_no_version(
                    batch
                        .writes
                        .iter()
                        .filter(|w| w.deployment_id == *id)
                        .map(|w| w.mode),
                ) => {}
                None => return None,
            }
        }
        for a in &reads.documents {
            match self.cache.get(&Key::Doc(a.clone())) {
                Some(Head::Row(v, at)) => {
                    snap.documents.insert(a.clone(), (v, at));
                }
                Some(Head::Journal(_)) => return None,
                None if expects_no_version(
                    batch
                        .documents
                        .iter()
                        .filter(|d| d.write.address == *a)
                        .map(|d| d.write.mode),
                ) => {}
                None => return None,
            }
        }
        for s in &reads.streams {
            match self.cache.get(&Key::Stream(s.clone())) {
                Some(Head::Journal(h)) => {
                    snap.heads.insert(s.clone(), h);
                }
                Some(Head::Row(..)) => return None,
                None if batch
                    .appends
                    .iter()
                    .find(|p| p.append.stream == *s)
                    .is_some_and(|p| p.append.expect == Some(0)) =>
                {
                    snap.heads.insert(s.clone(), JournalHead::empty(s));
                }
                None => return None,
            }
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

/// True if there is at least one mode and none is `Update` (planned on a guessed-absent
/// head, an update could only fail; a create or an overwrite writes version 1, which the
/// statement inserts only if no head exists).
fn expects_no_version(mut modes: impl Iterator<Item = PutMode>) -> bool {
    let mut any = false;
    let none = modes.all(|m| {
        any = true;
        !matches!(m, PutMode::Update { .. })
    });
    any && none
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use tierstate_core::journal::Append;
    use tierstate_core::{DocWrite, StateWrite, WriteBatch};

    use super::*;

    fn obj() -> serde_json::Map<String, serde_json::Value> {
        json!({"n": 1}).as_object().unwrap().clone()
    }

    fn guess(heads: &Heads, b: WriteBatch) -> Option<Snapshot> {
        let b = b.prepare().unwrap();
        heads.snapshot(&b.reads(), &b)
    }

    #[test]
    fn unremembered_heads_are_guessed_only_where_the_batch_implies_them() {
        let heads = Heads::new();
        let id = DeploymentId::new("d").unwrap();
        let doc = DocAddr::new("d", "orders", "o1").unwrap();
        let st = StreamAddr::new("d", "o1").unwrap();
        let new_order = || {
            WriteBatch::new()
                .put(StateWrite::create(id.clone(), obj()))
                .document(DocWrite::new(doc.clone(), PutMode::Create, obj()))
                .append(Append::new(st.clone(), Utc::now(), obj()).expecting(0))
                .append(Append::new(st.clone(), Utc::now(), obj()))
        };
        let snap = guess(&heads, new_order()).expect("a new order is planned without reads");
        assert!(snap.states.is_empty() && snap.documents.is_empty());
        assert_eq!(snap.heads.get(&st), Some(&JournalHead::empty(&st)));

        // Anything that expects a version or entries it does not remember: the locking path.
        let update = WriteBatch::new().put(StateWrite::update(id.clone(), 3, obj()));
        assert!(guess(&heads, update).is_none());
        let update = WriteBatch::new().document(DocWrite::new(
            doc.clone(),
            PutMode::Update { expected: 2 },
            obj(),
        ));
        assert!(guess(&heads, update).is_none());
        // An overwrite is guessed a first version too (a new index entry, say).
        let overwrite =
            WriteBatch::new().document(DocWrite::new(doc.clone(), PutMode::Overwrite, obj()));
        assert!(guess(&heads, overwrite).is_some_and(|s| s.documents.is_empty()));
        let append = WriteBatch::new().append(Append::new(st.clone(), Utc::now(), obj()));
        assert!(guess(&heads, append).is_none());
        let later =
            WriteBatch::new().append(Append::new(st.clone(), Utc::now(), obj()).expecting(4));
        assert!(guess(&heads, later).is_none());

        // A remembered head wins over a guess: a create of a known state plans from it (and
        // then fails in the planner, and the locking path reports `AlreadyExists`).
        heads.cache.insert(Key::State(id.clone()), Head::Row(7, 0));
        let snap = guess(&heads, new_order()).unwrap();
        assert_eq!(snap.states.get(&id), Some(&(7, 0)));
    }
}
