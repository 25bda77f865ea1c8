//! The HOT tier: a bounded in-process cache of verified state records.
//!
//! Values are `Arc<StateData>`, shared and never deep-copied. Eviction is S3-FIFO by
//! [`quick_cache`] (chosen by benchmark: its get costs about a `RwLock<HashMap>` get, where
//! `moka`'s costs about 10×), sized so it never holds more than [`HotConfig::capacity`]
//! entries. TTL, when set, runs on the monotonic clock.
//!
//! # What a HOT hit promises
//! Within one process, a hit is never older than a version an operation of this process has
//! already returned, nor older than WARM while a write of this process is in flight. The cache
//! keeps that promise with a small book of the operations in flight per deployment:
//!
//! * Every WARM read or write first takes a [`Ticket`]; the ticket records the deployment's
//!   epoch and generation at that moment and ends (on success, error or drop) the operation.
//! * A write in flight removes the cached copy and refuses fills until it finishes, so nobody
//!   is served the old version while WARM may already hold the new one — also when the caller
//!   stopped waiting for the write (see the manager, which finishes writes it was not awaited
//!   for).
//! * Every version handed out raises the deployment's *floor*; a fill or write result below
//!   the floor is refused, so reads never go backwards.
//! * An invalidation (outcome unknown, damaged record) bumps the epoch and refuses fills read
//!   before it; a delete or [`HotCache::invalidate_all`] bumps the generation and resets the
//!   floor. When a deployment has no operation in flight its book entry is dropped: every later
//!   operation then reads WARM after every earlier one returned, so none can go backwards.
//! * A bulk read (warm-up) whose ids are not known in advance takes a [`BulkTicket`]; while it
//!   lives the cache notes which deployments change, and refuses only their bulk results.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> tierstate_core::Result<()> {
//! use tierstate_core::{DeploymentId, InMemoryStore, StateStore, StateWrite};
//! use tierstate_hot::{HotCache, HotConfig, InsertOutcome, WriteOutcome};
//!
//! let warm = InMemoryStore::new();
//! let id = DeploymentId::new("grid-btc")?;
//! let body = |n: i64| serde_json::json!({ "cash": n }).as_object().cloned().unwrap();
//! let v1 = warm.put(StateWrite::create(id.clone(), body(100)), Default::default()).await?;
//! let hot = HotCache::new(HotConfig::default());
//!
//! // A read that started before a write cannot cache what it read once the write is running.
//! let read = hot.begin_read(&id);
//! let write = hot.begin_write(&id);
//! assert_eq!(hot.fill(read, &v1), InsertOutcome::Invalidated);
//! let v2 = warm.put(StateWrite::update(id.clone(), 1, body(90)), Default::default()).await?;
//! hot.finish_write(write, WriteOutcome::Written(&v2));
//! assert_eq!(hot.get(&id).unwrap().version, 2);
//!
//! // Once version 2 was handed out, version 1 is never cached again.
//! assert_eq!(hot.fill(hot.begin_read(&id), &v1), InsertOutcome::KeptNewer);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quick_cache::sync::Cache;
use tierstate_core::{DeploymentId, StateData};

/// Settings of the HOT tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotConfig {
    /// Most entries held. The cache is split into shards that evict independently, so it may
    /// start evicting before it is full; it never holds more.
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

/// Bookkeeping of one deployment while operations on it are in flight.
#[derive(Default)]
struct Meta {
    /// Operations (reads and writes) holding a ticket.
    ops: u32,
    /// Writes holding a ticket.
    writes: u32,
    /// The newest version handed out while this entry lived; nothing older is cached.
    floor: u64,
    /// Bumped when the cached copy may be stale in an unknown way.
    epoch: u64,
    /// Bumped when the deployment was deleted (versions restart).
    generation: u64,
    /// The copy a write hid when it began, put back if the write certainly wrote nothing.
    hidden: Option<Entry>,
}

/// What [`HotCache::fill`] and [`HotCache::finish_write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The record is now cached.
    Stored,
    /// The cache already holds this version or a newer one; nothing changed.
    KeptNewer,
    /// The record is older than a version already handed out; nothing cached.
    BelowFloor,
    /// A write is in flight, or an invalidation happened after the ticket was taken; nothing
    /// cached.
    Invalidated,
}

/// One operation in flight on one deployment. Take it before touching WARM; hand it back with
/// [`HotCache::fill`] or [`HotCache::finish_write`]. Dropping it ends the operation without
/// caching anything (a dropped write ticket also invalidates: its outcome is unknown).
#[must_use = "a ticket ends its operation when handed back or dropped"]
pub struct Ticket<'a> {
    cache: &'a HotCache,
    id: DeploymentId,
    global: u64,
    epoch: u64,
    generation: u64,
    write: bool,
    done: bool,
}

impl std::fmt::Debug for Ticket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.id)
            .field("write", &self.write)
            .finish()
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            // An abandoned write may still commit: whatever is cached can no longer be trusted.
            let how = if self.write {
                End::Unknown
            } else {
                End::Nothing
            };
            self.cache.end(self, how);
        }
    }
}

/// The HOT tier. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct HotCache {
    cache: Cache<DeploymentId, Entry>,
    /// Deployments with operations in flight. Lock order: `book`, then the cache's shards.
    book: Mutex<HashMap<DeploymentId, Meta>>,
    /// Bumped by `invalidate_all`.
    global: AtomicU64,
    /// While bulk reads run: the deployments that changed since the oldest began (writes,
    /// remote commits, invalidations, deletes), whose bulk results are refused. Lock order:
    /// `book`, then this.
    touched: Mutex<Touched>,
    ttl: Option<Duration>,
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
    pub fn new(config: HotConfig) -> Self {
        let capacity = config.capacity.max(1);
        let cache = Cache::new(capacity);
        // quick_cache rounds each shard's capacity up; round the total down to a multiple of
        // the shard count instead, so the sum of the shards never exceeds `capacity`.
        let shards = cache.num_shards() as u64;
        let exact = (capacity as u64 / shards).max(1) * shards;
        if cache.capacity() != exact {
            cache.set_capacity(exact);
        }
        Self {
            cache,
            book: Mutex::new(HashMap::new()),
            global: AtomicU64::new(0),
            touched: Mutex::new(Touched::default()),
            ttl: config.ttl,
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
            self.cache
                .remove_if(id, |e: &Entry| e.inserted.elapsed() >= ttl);
            return None;
        }
        Some(entry.data)
    }

    fn begin(&self, id: &DeploymentId, write: bool) -> Ticket<'_> {
        let global = self.global.load(Ordering::Acquire);
        let mut book = self.book.lock();
        let meta = book.entry(id.clone()).or_default();
        meta.ops += 1;
        if write {
            self.mark(id);
            meta.writes += 1;
            // WARM may hold the new version before this write returns: serve nobody the old.
            if let Some((_, e)) = self.cache.remove(id) {
                meta.hidden = Some(e);
            }
        }
        Ticket {
            cache: self,
            id: id.clone(),
            global,
            epoch: meta.epoch,
            generation: meta.generation,
            write,
            done: false,
        }
    }

    /// Starts a WARM read of `id`; hand the ticket back to [`HotCache::fill`].
    pub fn begin_read(&self, id: &DeploymentId) -> Ticket<'_> {
        self.begin(id, false)
    }

    /// Starts a WARM write of `id`: the cached copy is dropped and no fill is accepted until
    /// the write finishes. Hand the ticket back to [`HotCache::finish_write`].
    pub fn begin_write(&self, id: &DeploymentId) -> Ticket<'_> {
        self.begin(id, true)
    }

    /// Offers what a WARM read returned. Raises the floor to its version and caches it unless
    /// a write is in flight, something was invalidated since the ticket, or it is older than
    /// what is cached or was handed out.
    pub fn fill(&self, mut ticket: Ticket<'_>, data: &StateData) -> InsertOutcome {
        ticket.done = true;
        self.end(&ticket, End::Read(data))
    }

    /// Ends a write. `Written(data)` is its committed record (cached like a fill, but allowed
    /// while it is the only write in flight); `Deleted` a committed delete (as
    /// [`HotCache::forget`]); `NotApplied` a failure that certainly wrote nothing; `Unknown` a
    /// failure whose outcome is unknown (the entry is invalidated).
    pub fn finish_write(&self, mut ticket: Ticket<'_>, outcome: WriteOutcome<'_>) -> InsertOutcome {
        ticket.done = true;
        let how = match outcome {
            WriteOutcome::Written(data) => End::Write(data),
            WriteOutcome::Deleted => End::Deleted,
            WriteOutcome::NotApplied => End::Nothing,
            WriteOutcome::Unknown => End::Unknown,
        };
        self.end(&ticket, how)
    }

    /// The one place an operation ends.
    fn end(&self, t: &Ticket<'_>, how: End<'_>) -> InsertOutcome {
        let mut book = self.book.lock();
        let Some(meta) = book.get_mut(&t.id) else {
            // Only `invalidate_all` empties the book while tickets are out: nothing to do.
            return InsertOutcome::Invalidated;
        };
        let writes_before = meta.writes;
        meta.ops = meta.ops.saturating_sub(1);
        if t.write {
            meta.writes = meta.writes.saturating_sub(1);
        }
        let current =
            self.global.load(Ordering::Acquire) == t.global && meta.generation == t.generation;
        let offered = match how {
            End::Unknown | End::Deleted => {
                meta.hidden = None;
                let event = match how {
                    End::Deleted => Event::Deleted,
                    _ => Event::Invalidated,
                };
                self.apply(Some(&mut *meta), &t.id, event);
                None
            }
            End::Nothing => {
                // A write that wrote nothing: the copy it hid is still current if it is the
                // only write, nothing was invalidated, and nothing newer was seen.
                if let Some(e) = meta.hidden.take()
                    && t.write
                    && writes_before == 1
                    && current
                    && meta.epoch == t.epoch
                    && e.data.version >= meta.floor
                {
                    self.cache.insert(t.id.clone(), e);
                }
                None
            }
            End::Read(data) => Some((data, writes_before == 0)),
            // The write's own result may be cached while it is the only write in flight.
            End::Write(data) => Some((data, writes_before == 1)),
        };
        let outcome = match offered {
            None => InsertOutcome::Invalidated,
            Some(_) if !current => InsertOutcome::Invalidated,
            Some((data, alone)) => {
                meta.floor = meta.floor.max(data.version);
                if !alone || meta.epoch != t.epoch {
                    InsertOutcome::Invalidated
                } else if data.version < meta.floor {
                    InsertOutcome::BelowFloor
                } else {
                    self.store(data)
                }
            }
        };
        if meta.ops == 0 {
            book.remove(&t.id);
        }
        outcome
    }

    /// Caches `data` unless a newer version is cached. Called with the book locked.
    fn store(&self, data: &StateData) -> InsertOutcome {
        if self.keeps_newer(data) {
            return InsertOutcome::KeptNewer;
        }
        self.insert(data.clone())
    }

    /// [`HotCache::store`] for a record the caller gives away (no copy of its state).
    fn store_owned(&self, data: StateData) -> InsertOutcome {
        if self.keeps_newer(&data) {
            return InsertOutcome::KeptNewer;
        }
        self.insert(data)
    }

    /// True if a fresh entry at `data`'s version or newer is cached.
    fn keeps_newer(&self, data: &StateData) -> bool {
        self.cache.peek(&data.deployment_id).is_some_and(|cur| {
            cur.data.version >= data.version && self.ttl.is_none_or(|t| cur.inserted.elapsed() < t)
        })
    }

    /// Caches `data` as served from HOT. Called with the book locked.
    fn insert(&self, data: StateData) -> InsertOutcome {
        self.cache.insert(
            data.deployment_id.clone(),
            Entry {
                data: Arc::new(data.served_from(tierstate_core::Tier::Hot)),
                inserted: Instant::now(),
            },
        );
        InsertOutcome::Stored
    }

    /// What `event` means for one deployment's book entry (if it has one) and cached copy.
    /// Called with the book locked.
    fn apply(&self, meta: Option<&mut Meta>, id: &DeploymentId, event: Event) {
        self.mark(id);
        match event {
            Event::Committed(version) => {
                if let Some(meta) = meta {
                    meta.floor = meta.floor.max(version);
                }
                self.cache
                    .remove_if(id, |e: &Entry| e.data.version < version);
            }
            Event::Invalidated => {
                if let Some(meta) = meta {
                    meta.epoch += 1;
                }
                self.cache.remove(id);
            }
            Event::Deleted => {
                if let Some(meta) = meta {
                    meta.generation += 1;
                    meta.epoch += 1;
                    meta.floor = 0;
                }
                self.cache.remove(id);
            }
        }
    }

    fn apply_locked(&self, id: &DeploymentId, event: Event) {
        let mut book = self.book.lock();
        self.apply(book.get_mut(id), id, event);
    }

    /// `version` of `id` is known to be committed (a conflict reported it, another process
    /// announced it): drops an older cached copy and refuses older fills still in flight.
    pub fn observe(&self, id: &DeploymentId, version: u64) {
        self.apply_locked(id, Event::Committed(version));
    }

    /// Drops the cached copy of `id` and refuses fills read before now (after a failure whose
    /// outcome is unknown, or a damaged record).
    pub fn invalidate(&self, id: &DeploymentId) {
        self.apply_locked(id, Event::Invalidated);
    }

    /// `id` was deleted (its versions restart at 1): drops it, resets its floor, and refuses
    /// everything read or written before now.
    pub fn forget(&self, id: &DeploymentId) {
        self.apply_locked(id, Event::Deleted);
    }

    /// Evicts everything and refuses every fill and write result in flight.
    pub fn invalidate_all(&self) {
        let mut book = self.book.lock();
        self.global.fetch_add(1, Ordering::AcqRel);
        for meta in book.values_mut() {
            meta.floor = 0;
        }
        self.cache.clear();
        drop(book);
    }

    /// Notes that `id` changed, for the bulk reads running now.
    fn mark(&self, id: &DeploymentId) {
        let mut t = self.touched.lock();
        if t.readers > 0 {
            t.ids.insert(id.clone());
        }
    }

    /// Starts a bulk read (a warm-up page) whose ids are not known in advance; hand each record
    /// to [`HotCache::fill_bulk`] while the ticket lives.
    pub fn begin_bulk(&self) -> BulkTicket<'_> {
        self.touched.lock().readers += 1;
        BulkTicket {
            cache: self,
            global: self.global.load(Ordering::Acquire),
        }
    }

    /// Offers one record of a bulk read. Refused if its deployment changed after the ticket was
    /// taken (a write, an invalidation, a delete, a remote commit) or has an operation in
    /// flight, and after [`HotCache::invalidate_all`]; other deployments' changes do not matter.
    /// Takes the record by value: a warm-up owns what it read, so nothing is copied.
    pub fn fill_bulk(&self, ticket: &BulkTicket<'_>, data: StateData) -> InsertOutcome {
        let book = self.book.lock();
        if self.global.load(Ordering::Acquire) != ticket.global
            || book.contains_key(&data.deployment_id)
            || self.touched.lock().ids.contains(&data.deployment_id)
        {
            return InsertOutcome::Invalidated;
        }
        self.store_owned(data)
    }

    /// Number of cached entries (expired ones included until touched); never above
    /// [`HotCache::capacity`].
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// The configured capacity in entries: the most the cache ever holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Deployments with operations in flight (what the book holds).
    pub fn in_flight(&self) -> usize {
        self.book.lock().len()
    }
}

/// A bulk read in progress; see [`HotCache::begin_bulk`]. While one lives, the cache notes
/// which deployments change.
#[must_use = "changes are tracked only while the ticket lives"]
pub struct BulkTicket<'a> {
    cache: &'a HotCache,
    global: u64,
}

impl std::fmt::Debug for BulkTicket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkTicket").finish_non_exhaustive()
    }
}

impl Drop for BulkTicket<'_> {
    fn drop(&mut self) {
        let mut t = self.cache.touched.lock();
        t.readers -= 1;
        if t.readers == 0 {
            t.ids.clear();
        }
    }
}

/// Deployments changed while bulk reads run.
#[derive(Default)]
struct Touched {
    readers: usize,
    ids: HashSet<DeploymentId>,
}

/// How a write ended, for [`HotCache::finish_write`].
#[derive(Debug, Clone, Copy)]
pub enum WriteOutcome<'a> {
    /// Committed as this record.
    Written(&'a StateData),
    /// A delete that committed.
    Deleted,
    /// Failed before anything was written (invalid input, busy before the write began).
    NotApplied,
    /// Failed in a way that may or may not have committed.
    Unknown,
}

/// How an operation ended, inside the cache.
#[derive(Clone, Copy)]
enum End<'a> {
    /// A read's result.
    Read(&'a StateData),
    /// A write's committed record.
    Write(&'a StateData),
    /// Nothing to offer, nothing learned (a read that failed, a write that wrote nothing).
    Nothing,
    /// A write that may or may not have committed.
    Unknown,
    /// A delete that committed.
    Deleted,
}

/// Something learned about one deployment outside the operation that is ending.
#[derive(Clone, Copy)]
enum Event {
    /// This version is committed.
    Committed(u64),
    /// The cached copy may be stale in an unknown way.
    Invalidated,
    /// Deleted: versions restart.
    Deleted,
}
