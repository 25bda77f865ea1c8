//! The HOT tier: a bounded in-process cache of verified state records.
//!
//! Values are `Arc<StateData>`, shared and never deep-copied. An entry is only ever replaced by
//! a newer version. Eviction is S3-FIFO by [`quick_cache`] (chosen by benchmark: its get costs
//! about 1.5× a `RwLock<HashMap>` get, where `moka`'s costs about 10×). TTL, when set, runs on
//! the monotonic clock.
//!
//! Races with invalidation are closed by an epoch: a caller takes a [`FillTicket`] *before* it
//! reads or writes the WARM tier and inserts with it; any invalidation in between makes that
//! insert a no-op, so a deleted or conflicted deployment is never re-cached from a stale read.
#![deny(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::{Cache, EntryAction, EntryResult};
use tierstate_core::{DeploymentId, StateData};

/// Settings of the HOT tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotConfig {
    /// Most entries held; the least valuable are evicted beyond it.
    pub capacity: usize,
    /// Entries older than this (monotonic clock) are treated as absent. `None`: no expiry.
    pub ttl: Option<Duration>,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: None,
        }
    }
}

#[derive(Clone)]
struct Entry {
    data: Arc<StateData>,
    inserted: Instant,
}

/// Proof of the invalidation epoch a caller saw before touching the WARM tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket(u64);

/// What [`HotCache::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The record is now cached.
    Stored,
    /// The cache already holds this version or a newer one; nothing changed.
    KeptNewer,
    /// An invalidation happened after the ticket was taken; nothing cached.
    Invalidated,
}

/// The HOT tier. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct HotCache {
    cache: Cache<DeploymentId, Entry>,
    ttl: Option<Duration>,
    epoch: AtomicU64,
    capacity: usize,
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache")
            .field("len", &self.cache.len())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl HotCache {
    /// A cache with the given settings (capacity is raised to at least 1).
    ///
    /// The underlying cache splits its capacity across shards and starts evicting in a full
    /// shard before the total is reached, so it is sized with 1/4 headroom: `capacity` entries
    /// always fit, and the bound is at most about 1.25 × `capacity`.
    pub fn new(config: HotConfig) -> Self {
        let capacity = config.capacity.max(1);
        let sized = capacity + capacity / 4 + 32;
        Self {
            cache: Cache::new(sized),
            ttl: config.ttl,
            epoch: AtomicU64::new(0),
            capacity,
        }
    }

    /// The cached record, if present and not expired.
    #[inline]
    pub fn get(&self, id: &DeploymentId) -> Option<Arc<StateData>> {
        let entry = self.cache.get(id)?;
        if let Some(ttl) = self.ttl
            && entry.inserted.elapsed() >= ttl
        {
            self.remove_if_expired(id, ttl);
            return None;
        }
        Some(entry.data)
    }

    fn remove_if_expired(&self, id: &DeploymentId, ttl: Duration) {
        if let EntryResult::Vacant(guard) = self.cache.entry(id, None, |_, e| {
            if e.inserted.elapsed() >= ttl {
                EntryAction::Remove
            } else {
                EntryAction::Retain(())
            }
        }) {
            drop(guard);
        }
    }

    /// Takes a ticket for a later [`HotCache::insert`]; call it before the WARM read or write.
    #[inline]
    pub fn ticket(&self) -> FillTicket {
        FillTicket(self.epoch.load(Ordering::Acquire))
    }

    /// Caches `data` unless a newer version is cached or an invalidation happened since
    /// `ticket` was taken.
    pub fn insert(&self, data: Arc<StateData>, ticket: FillTicket) -> InsertOutcome {
        let epoch = &self.epoch;
        let now = Instant::now();
        let ttl = self.ttl;
        let fresh = Entry {
            data: Arc::clone(&data),
            inserted: now,
        };
        let result = self.cache.entry(&data.deployment_id, None, |_, current| {
            if epoch.load(Ordering::Acquire) != ticket.0 {
                return EntryAction::Retain(InsertOutcome::Invalidated);
            }
            let expired = ttl.is_some_and(|t| current.inserted.elapsed() >= t);
            if current.data.version >= data.version && !expired {
                return EntryAction::Retain(InsertOutcome::KeptNewer);
            }
            *current = fresh.clone();
            EntryAction::Retain(InsertOutcome::Stored)
        });
        match result {
            EntryResult::Retained(outcome) => outcome,
            EntryResult::Vacant(guard) => {
                // The shard lock is released here, so re-check the epoch: an invalidation that
                // slipped in must win. The guard makes concurrent inserts of this key wait.
                if epoch.load(Ordering::Acquire) != ticket.0 {
                    return InsertOutcome::Invalidated;
                }
                let _ = guard.insert(fresh);
                if epoch.load(Ordering::Acquire) != ticket.0 {
                    // Lost a race with invalidate(): undo, so the invalidation holds.
                    self.cache.remove(&data.deployment_id);
                    return InsertOutcome::Invalidated;
                }
                InsertOutcome::Stored
            }
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => {
                InsertOutcome::Invalidated
            }
        }
    }

    /// Evicts one deployment (after a delete, a conflict or an integrity failure).
    pub fn invalidate(&self, id: &DeploymentId) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.remove(id);
    }

    /// Evicts one deployment if the cached version is older than `version` (a newer version was
    /// committed elsewhere).
    pub fn invalidate_older_than(&self, id: &DeploymentId, version: u64) {
        if self.cache.get(id).is_some_and(|e| e.data.version < version) {
            self.invalidate(id);
        }
    }

    /// Evicts everything.
    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
    }

    /// Number of cached entries (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.len() == 0
    }

    /// The configured capacity in entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
