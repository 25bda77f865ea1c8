//! [`StateManager`]: HOT over WARM, write-through, with metrics and tracing on every operation.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tierstate_core::{
    BackendErrorKind, BatchOp, CommitProbe, DeploymentId, Error, PutMode, Result, Retention,
    StateData, StateStore, StateWrite, Target, Tier, WriteBatch,
};
use tracing::{Instrument, debug_span, warn};

use crate::StateManagerBuilder;
use crate::hot::{Hot, Written};
use crate::metrics::{Metrics, Op, Outcome};
use crate::payload::Payload;

/// A typed state with the version it was stored at (pass that version to the next update).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The decoded state.
    pub value: T,
    /// Its version.
    pub version: u64,
    /// Its payload schema version.
    pub schema_version: u32,
}

/// Versioned state of many deployments in two tiers: HOT (in-process cache) over WARM
/// (durable store). Clone it freely; clones share everything.
///
/// Loads go HOT → WARM → fill HOT. Writes go WARM first and reach HOT only after WARM
/// committed; while a write is in flight its deployment is served from WARM.
///
/// Within one process, reads never go backwards: once a load or save returned version `v`,
/// no later load returns an older one (a delete starts the count again). A write whose caller
/// stopped waiting (a dropped future, a timeout) still runs to the end, so HOT is never left
/// holding a version older than WARM's.
#[derive(Clone)]
pub struct StateManager {
    inner: Arc<Inner>,
}

struct Inner {
    warm: Arc<dyn StateStore>,
    hot: Hot,
    retention: Retention,
    metrics: Metrics,
    /// False while the store's change feed may have missed commits: HOT is then not trusted.
    coherent: AtomicBool,
    /// Payload migrations, if configured.
    payload: Option<Payload>,
    /// For stores other processes write without a change feed: checked before every HOT hit.
    probe: Option<Arc<dyn CommitProbe>>,
    /// The probe's value when HOT was last known to be coherent with other processes.
    probe_seen: AtomicU64,
}

impl std::fmt::Debug for StateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateManager")
            .field("warm", &self.inner.warm)
            .field("hot_entries", &self.inner.hot.len())
            .field("retention", &self.inner.retention)
            .finish()
    }
}

/// Runs a write to completion even if its caller stops waiting (a dropped future, a timeout),
/// so the WARM commit and the HOT bookkeeping after it always both happen. It runs on the
/// caller's task; only a write abandoned before it finished moves, as it stands, onto a task of
/// its own. (Spawning every write cost two cross-CPU wake-ups, 50-90 µs on a 2-vCPU VM.)
async fn detached<T: Send + 'static>(
    write: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let out = Detach(Some(Box::pin(write))).await;
    // A write that never waits (HOT, the in-memory store, an inline embedded commit) still
    // spends the task's cooperative budget, so a loop of writes lets other tasks run.
    tokio::task::consume_budget().await;
    out
}

/// A write that finishes on its own task if it is dropped before completing.
struct Detach<F: Future + Send + 'static>(Option<std::pin::Pin<Box<F>>>);

impl<F: Future + Send + 'static> Future for Detach<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let Some(write) = self.0.as_mut() else {
            // Polled after it answered: a caller's bug, but never a second commit.
            return std::task::Poll::Pending;
        };
        let out = std::task::ready!(write.as_mut().poll(cx));
        self.0 = None;
        std::task::Poll::Ready(out)
    }
}

impl<F: Future + Send + 'static> Drop for Detach<F> {
    fn drop(&mut self) {
        // The boxed future stays where it is pinned; only the box moves to the new task.
        if let Some(write) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = write.await;
            });
        }
    }
}

/// The deployments a batch writes, in batch order.
fn put_ids(batch: &WriteBatch) -> Vec<DeploymentId> {
    batch
        .ops()
        .iter()
        .filter_map(|op| match op {
            BatchOp::Put(w) => Some(w.deployment_id.clone()),
            _ => None,
        })
        .collect()
}

fn outcome_of(e: &Error) -> Outcome {
    match e {
        Error::Conflict { .. } | Error::AlreadyExists { .. } => Outcome::Conflict,
        _ => Outcome::Error,
    }
}

impl StateManager {
    /// Starts configuring a manager.
    pub fn builder() -> StateManagerBuilder {
        StateManagerBuilder::default()
    }

    pub(crate) fn from_parts(
        warm: Arc<dyn StateStore>,
        hot: Hot,
        retention: Retention,
        metrics: Metrics,
        payload: Option<Payload>,
    ) -> Self {
        // Trusted until `follow_changes` subscribes to a change feed and learns its state.
        let coherent = AtomicBool::new(true);
        let probe = if hot.enabled() {
            warm.commit_probe()
        } else {
            None
        };
        Self {
            inner: Arc::new(Inner {
                warm,
                hot,
                retention,
                metrics,
                coherent,
                payload,
                probe,
                probe_seen: AtomicU64::new(0),
            }),
        }
    }

    /// Records the probe's current value as coherent (HOT is empty or freshly warmed from a
    /// read that started after it).
    pub(crate) fn sync_probe(&self) {
        if let Some(p) = &self.inner.probe
            && let Ok(e) = p.foreign_epoch()
        {
            self.inner.probe_seen.store(e, Ordering::Release);
        }
    }

    pub(crate) fn hot_enabled(&self) -> bool {
        self.inner.hot.enabled()
    }

    /// The WARM store, for operations the manager does not wrap.
    pub fn warm(&self) -> &Arc<dyn StateStore> {
        &self.inner.warm
    }

    /// The metrics of this manager.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Entries currently in HOT.
    pub fn hot_len(&self) -> usize {
        self.inner.hot.len()
    }

    fn record(&self, tier: Tier, op: Op, start: Instant, outcome: Outcome) {
        self.inner.record(tier, op, start, outcome);
    }

    /// The current state: from HOT if cached, else from WARM (verified), which then fills HOT.
    ///
    /// # Errors
    /// `Integrity` if the WARM record is damaged (HOT is evicted, nothing cached); `Backend` if
    /// WARM fails.
    pub async fn load(&self, id: &DeploymentId) -> Result<Option<Arc<StateData>>> {
        let looked = match self.hot_hit(id) {
            Ok(hit) => return Ok(Some(hit)),
            Err(looked) => looked,
        };
        let span = debug_span!("tierstate.load", deployment = %id);
        async {
            if self.inner.hot.enabled() {
                if !self.inner.coherent.load(Ordering::Acquire) {
                    return self.load_untrusted_hot(id).await;
                }
                self.record(
                    Tier::Hot,
                    Op::Load,
                    looked.unwrap_or_else(Instant::now),
                    Outcome::Miss,
                );
            }
            self.load_warm(id).await
        }
        .instrument(span)
        .await
    }

    /// The current state if HOT holds it and may be trusted now, with no await and no WARM
    /// read: what a caller that must not block (an event loop) asks first, falling back to
    /// [`StateManager::load`] on `None`.
    pub fn load_cached(&self, id: &DeploymentId) -> Option<Arc<StateData>> {
        self.hot_hit(id).ok()
    }

    /// The HOT hit path: no span, no lock, one clock read pair in 64 (every hit counted).
    /// `Err` carries when a trusted HOT was looked in (for the miss's metric), if it was.
    fn hot_hit(&self, id: &DeploymentId) -> std::result::Result<Arc<StateData>, Option<Instant>> {
        let trusted = self.inner.hot.enabled() && self.inner.coherent.load(Ordering::Acquire);
        if trusted && !self.inner.other_process_committed() {
            let start = crate::metrics::time_this_hit().then(Instant::now);
            if let Some(hit) = self.inner.hot.get(id) {
                self.inner
                    .metrics
                    .record_hit(Op::Load, start.map(|s| s.elapsed()));
                return Ok(hit);
            }
            return Err(Some(start.unwrap_or_else(Instant::now)));
        }
        Err(None)
    }

    /// After a rollback to an older (but rollback-safe) binary, refuses to overwrite a state a
    /// newer binary wrote: that would silently drop what this binary does not understand.
    async fn guard_newer(&self, p: &Payload, id: &DeploymentId) -> Result<()> {
        if !p.guard_newer.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        if let Some(stored) = self.inner.warm.get(id).await?
            && stored.schema_version > p.current()
        {
            return Err(Error::PayloadTooNew {
                deployment_id: id.clone(),
                found: stored.schema_version,
                supported: p.current(),
            });
        }
        Ok(())
    }

    /// Checks (and records) this binary's payload schema against the store's marker.
    pub(crate) async fn check_payload_marker(&self) -> Result<()> {
        match &self.inner.payload {
            Some(p) => p.check_marker(&self.inner.warm).await,
            None => Ok(()),
        }
    }

    /// While the change feed is down, HOT may be stale: read WARM. Only if WARM cannot be
    /// reached at all is the cached copy served (nobody can commit through an unreachable store,
    /// so it is as fresh as anything available), with a warning.
    async fn load_untrusted_hot(&self, id: &DeploymentId) -> Result<Option<Arc<StateData>>> {
        match self.load_warm(id).await {
            Err(e) if e.is_retryable() => match self.inner.hot.get(id) {
                Some(cached) => {
                    warn!(deployment = %id, error = %e, "WARM unreachable; serving the HOT copy");
                    self.record(Tier::Hot, Op::Load, Instant::now(), Outcome::Hit);
                    Ok(Some(cached))
                }
                None => Err(e),
            },
            other => other,
        }
    }

    /// Follows the WARM store's change feed (if it has one): evicts HOT entries that other
    /// processes made stale, and stops trusting HOT while the feed may have missed commits.
    pub(crate) fn follow_changes(&self) {
        let Some(feed) = self.inner.warm.changes() else {
            return;
        };
        // Trust HOT only while the feed is live; later transitions arrive as events.
        self.inner.coherent.store(feed.live, Ordering::Release);
        let mut feed = feed.events;
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let event = feed.recv().await;
                let Some(inner) = weak.upgrade() else { return };
                match event {
                    Ok(tierstate_core::Change::Committed {
                        deployment_id,
                        version: 0,
                    }) => {
                        inner.hot.forget(&deployment_id);
                    }
                    Ok(tierstate_core::Change::Committed {
                        deployment_id,
                        version,
                    }) => {
                        inner.hot.observe(&deployment_id, version);
                    }
                    Ok(tierstate_core::Change::Gap) => {
                        // Keep the entries (outage fallback) but stop serving them as fresh.
                        inner.coherent.store(false, Ordering::Release);
                    }
                    Ok(tierstate_core::Change::Resumed) => {
                        // Whatever was missed during the gap: drop it all, then trust again.
                        inner.hot.invalidate_all();
                        inner.coherent.store(true, Ordering::Release);
                    }
                    Err(RecvError::Lagged(_)) => inner.hot.invalidate_all(),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// Waits up to `limit` for HOT to be trusted (the change feed live); returns whether it is.
    pub async fn wait_coherent(&self, limit: std::time::Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.hot_is_coherent() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        true
    }

    /// Whether HOT is currently trusted (false while a shared store's change feed is down).
    pub fn hot_is_coherent(&self) -> bool {
        self.inner.coherent.load(Ordering::Acquire)
    }

    /// The current state read from WARM, bypassing HOT (then filling it). Use it to re-read
    /// after a conflict.
    ///
    /// # Errors
    /// As [`StateManager::load`].
    pub async fn load_warm(&self, id: &DeploymentId) -> Result<Option<Arc<StateData>>> {
        let span = debug_span!("tierstate.load_warm", deployment = %id);
        async {
            let ticket = self.inner.hot.begin_read(id);
            let start = Instant::now();
            match self.inner.warm.get(id).await {
                Ok(Some(data)) => {
                    self.record(Tier::Warm, Op::Load, start, Outcome::Ok);
                    let data = match &self.inner.payload {
                        Some(p) => {
                            p.upgrade(&self.inner.warm, self.inner.retention, data)
                                .await?
                        }
                        None => data,
                    };
                    self.inner.hot.fill(ticket, &data);
                    Ok(Some(Arc::new(data)))
                }
                Ok(None) => {
                    self.record(Tier::Warm, Op::Load, start, Outcome::NotFound);
                    Ok(None)
                }
                Err(e) => {
                    self.record(Tier::Warm, Op::Load, start, Outcome::Error);
                    if matches!(e, Error::Integrity { .. }) {
                        self.inner.hot.invalidate(id);
                    }
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Loads and decodes the state as `T`.
    ///
    /// # Errors
    /// As [`StateManager::load`], plus `Serialization` if the state does not match `T` or
    /// holds decimal text that a `Decimal` field of `T` could only hold rounded (refused,
    /// naming the field: money is never rounded on the way in).
    pub async fn load_as<T: DeserializeOwned + serde::Serialize>(
        &self,
        id: &DeploymentId,
    ) -> Result<Option<Versioned<T>>> {
        let Some(data) = self.load(id).await? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            value: data.to_typed()?,
            version: data.version,
            schema_version: data.schema_version,
        }))
    }

    /// Commits one write to WARM, then caches the committed record in HOT. If the caller stops
    /// waiting, the write still finishes (its outcome is then learned by loading).
    ///
    /// # Errors
    /// `AlreadyExists`/`Conflict` (HOT learns the stored version), `InvalidInput`, or `Backend`
    /// (if the outcome is unknown, HOT is invalidated so the next load reads WARM).
    pub async fn save(&self, mut write: StateWrite) -> Result<Arc<StateData>> {
        let span = debug_span!("tierstate.save", deployment = %write.deployment_id);
        if let Some(p) = &self.inner.payload {
            self.guard_newer(p, &write.deployment_id)
                .instrument(span.clone())
                .await?;
            write.schema_version = p.current();
        }
        let inner = self.inner.clone();
        let batch = WriteBatch::new().put(write);
        let mut done = detached(
            async move { inner.commit_through(batch, Op::Save, "state").await }.instrument(span),
        )
        .await?
        .states;
        match done.pop() {
            Some(d) if done.is_empty() => Ok(Arc::new(d)),
            _ => Err(Error::Backend {
                backend: self.inner.warm.backend(),
                kind: BackendErrorKind::Other,
                message: "the store did not return exactly one record for one write".into(),
                source: None,
            }),
        }
    }

    /// Creates a deployment at version 1.
    ///
    /// # Errors
    /// As [`StateManager::save`]; `AlreadyExists` if it exists.
    pub async fn create(
        &self,
        id: &DeploymentId,
        state: Map<String, Value>,
    ) -> Result<Arc<StateData>> {
        self.save(StateWrite::create(id.clone(), state)).await
    }

    /// Replaces exactly version `expected`.
    ///
    /// # Errors
    /// As [`StateManager::save`]; `Conflict` if `expected` is not the stored version.
    pub async fn update(
        &self,
        id: &DeploymentId,
        expected: u64,
        state: Map<String, Value>,
    ) -> Result<Arc<StateData>> {
        self.save(StateWrite::update(id.clone(), expected, state))
            .await
    }

    /// Saves a typed state with the given mode.
    ///
    /// # Errors
    /// As [`StateManager::save`], plus `Serialization`/`InvalidInput` if `T` is not an object.
    pub async fn save_as<T: Serialize>(
        &self,
        id: &DeploymentId,
        mode: PutMode,
        state: &T,
    ) -> Result<Arc<StateData>> {
        self.save(StateWrite::typed(id.clone(), mode, state)?).await
    }

    /// Read-modify-CAS with retries: applies `change` to the current state and writes it as the
    /// next version; on a conflict waits a jittered, growing delay (core's retry helper), then
    /// re-reads from WARM and applies `change` again, up to `max_attempts` times. `change`
    /// must be a pure function of the state it is given.
    ///
    /// # Errors
    /// `NotFound` if the deployment does not exist; the last `Conflict` after `max_attempts`;
    /// any error from `change` or the store.
    pub async fn update_with<F>(
        &self,
        id: &DeploymentId,
        max_attempts: u32,
        mut change: F,
    ) -> Result<Arc<StateData>>
    where
        F: FnMut(&Map<String, Value>) -> Result<Map<String, Value>>,
    {
        let mut current = self.load(id).await?;
        let mut backoff = tierstate_core::Backoff::new(tierstate_core::RetryPolicy {
            attempts: max_attempts.max(1),
            ..tierstate_core::RetryPolicy::default()
        });
        loop {
            let Some(cur) = current else {
                return Err(Error::NotFound {
                    deployment_id: id.clone(),
                });
            };
            let next = change(&cur.state)?;
            let write = StateWrite::update(id.clone(), cur.version, next)
                .with_schema_version(cur.schema_version);
            match self.save(write).await {
                Err(e) if e.is_conflict() => {
                    if !backoff.wait().await {
                        return Err(e);
                    }
                    current = self.load_warm(id).await?;
                }
                other => return other,
            }
        }
    }

    /// Commits every write of `batch` in one WARM transaction, or none; then caches them.
    /// The manager's retention applies. Like [`StateManager::save`], it finishes even if the
    /// caller stops waiting.
    ///
    /// # Errors
    /// As [`tierstate_core::StateStore::commit`]; HOT learns from conflicts and is invalidated
    /// for every member when the outcome is unknown.
    pub async fn commit(&self, batch: WriteBatch) -> Result<Vec<Arc<StateData>>> {
        let done = self.write(batch, "state").await?;
        Ok(done.states.into_iter().map(Arc::new).collect())
    }

    /// The one commit path: every member of `batch` (states, documents, removals, journal
    /// appends) in one WARM transaction, then HOT for the states it wrote; payload schema
    /// stamped on each state, the manager's retention applied, metered as `domain`'s commit
    /// and traced. Finishes even if the caller stops waiting. Returns everything committed.
    ///
    /// # Errors
    /// As [`tierstate_core::StateStore::write`]; HOT learns from conflicts and is invalidated
    /// for every state written when the outcome is unknown.
    pub async fn write(
        &self,
        mut batch: WriteBatch,
        domain: &'static str,
    ) -> Result<tierstate_core::Committed> {
        if let Some(p) = &self.inner.payload {
            for op in batch.ops_mut() {
                if let BatchOp::Put(w) = op {
                    self.guard_newer(p, &w.deployment_id).await?;
                    w.schema_version = p.current();
                }
            }
        }
        let span = debug_span!("tierstate.commit", domain, members = batch.len());
        let inner = self.inner.clone();
        detached(
            async move { inner.commit_through(batch, Op::Commit, domain).await }.instrument(span),
        )
        .await
    }

    /// Records one operation a domain ran on the WARM store through this manager.
    pub(crate) fn record_domain(
        &self,
        domain: &'static str,
        op: Op,
        start: Instant,
        outcome: Outcome,
    ) {
        self.inner
            .metrics
            .record_in(domain, Tier::Warm, op, start.elapsed(), outcome);
    }

    /// Deletes the state and history from WARM, then forgets it in HOT (invalidates it when the
    /// outcome is unknown). Finishes even if the caller stops waiting. Returns whether anything
    /// was there.
    ///
    /// # Errors
    /// `Backend` if WARM fails; never a HOT-only delete.
    pub async fn delete(&self, id: &DeploymentId) -> Result<bool> {
        let span = debug_span!("tierstate.delete", deployment = %id);
        let inner = self.inner.clone();
        let id = id.clone();
        detached(
            async move {
                let ticket = inner.hot.begin_write(&id);
                let start = Instant::now();
                let result = inner.warm.delete(&id).await;
                let outcome = match &result {
                    Ok(gone) => {
                        inner.hot.finish_write(ticket, Written::Deleted);
                        if *gone {
                            Outcome::Ok
                        } else {
                            Outcome::NotFound
                        }
                    }
                    Err(_) => {
                        inner.hot.finish_write(ticket, Written::Unknown);
                        Outcome::Error
                    }
                };
                inner.record(Tier::Warm, Op::Delete, start, outcome);
                result
            }
            .instrument(span),
        )
        .await
    }

    /// Up to `limit` retained versions from WARM, newest first.
    ///
    /// # Errors
    /// `Integrity` if a version is damaged; `Backend` if WARM fails.
    pub async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        let start = Instant::now();
        let span = debug_span!("tierstate.history", deployment = %id, limit);
        let result = self.inner.warm.history(id, limit).instrument(span).await;
        let outcome = if result.is_ok() {
            Outcome::Ok
        } else {
            Outcome::Error
        };
        self.record(Tier::Warm, Op::History, start, outcome);
        result
    }

    /// One retained version from WARM.
    ///
    /// # Errors
    /// As [`StateManager::history`].
    pub async fn load_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        let start = Instant::now();
        let span = debug_span!("tierstate.load_version", deployment = %id, version);
        let result = self
            .inner
            .warm
            .get_version(id, version)
            .instrument(span)
            .await;
        let outcome = match &result {
            Ok(Some(_)) => Outcome::Ok,
            Ok(None) => Outcome::NotFound,
            Err(_) => Outcome::Error,
        };
        self.record(Tier::Warm, Op::LoadVersion, start, outcome);
        result
    }

    /// Evicts one deployment from HOT.
    pub fn invalidate(&self, id: &DeploymentId) {
        self.inner.hot.invalidate(id);
    }

    /// Closes the store underneath (queued writes commit, connections close, file locks
    /// are released, so the same file reopens in this process) and empties HOT. Later
    /// operations fail with a `Closed` error.
    pub async fn close(&self) {
        self.inner.hot.invalidate_all();
        self.inner.warm.close().await;
        self.inner.hot.invalidate_all();
    }

    /// Evicts everything from HOT.
    pub fn invalidate_all(&self) {
        self.inner.hot.invalidate_all();
    }

    /// Loads current states from WARM into HOT in bulk reads (pages of 1000, one query each),
    /// up to HOT's capacity. Damaged records are logged, counted and not cached. Returns how
    /// many records were cached.
    ///
    /// Pages are read one after another. Reading the next page on another task while this one
    /// is cached was measured (2026-11-22): 3–7% faster alone, but 2–2.5× slower late in a long
    /// process (full bench runs: redb 1.05–1.27 s against 0.44 s; cause not pinned down, probably
    /// both threads faulting in fresh memory at once).
    ///
    /// # Errors
    /// `Backend` if a WARM read fails.
    pub async fn warm_up(&self) -> Result<usize> {
        let capacity = self.inner.hot.capacity();
        let span = debug_span!("tierstate.warm_up", capacity);
        async {
            let start = Instant::now();
            let (mut cached, mut damaged) = (0usize, 0usize);
            let mut after: Option<DeploymentId> = None;
            while cached < capacity {
                let page = (capacity - cached).min(1000);
                let ticket = self.inner.hot.begin_bulk();
                let rows = match self.inner.warm.scan(after.as_ref(), page).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        self.record(Tier::Warm, Op::WarmUp, start, Outcome::Error);
                        return Err(e);
                    }
                };
                let len = rows.len();
                let before = after.clone();
                for row in rows {
                    match row {
                        Ok(data) => {
                            after = Some(data.deployment_id.clone());
                            // Old payloads are migrated by their first load, not cached raw.
                            let stale = self
                                .inner
                                .payload
                                .as_ref()
                                .is_some_and(|p| data.schema_version != p.current());
                            if !stale && self.inner.hot.fill_bulk(&ticket, data) {
                                cached += 1;
                            }
                        }
                        Err(e) => {
                            if let Error::Integrity { deployment_id, .. } = &e {
                                after = Some(deployment_id.clone());
                            }
                            damaged += 1;
                            warn!(error = %e, "warm-up skipped a damaged record");
                        }
                    }
                }
                // A page none of whose rows named its deployment (undecodable rows, not damaged
                // ones) cannot be stepped over: stop rather than read it again forever.
                if len < page || after.is_none() || after == before {
                    break;
                }
            }
            self.record(Tier::Warm, Op::WarmUp, start, Outcome::Ok);
            tracing::info!(cached, damaged, "warm-up done");
            Ok(cached)
        }
        .instrument(span)
        .await
    }
}

impl Inner {
    fn record(&self, tier: Tier, op: Op, start: Instant, outcome: Outcome) {
        self.metrics.record(tier, op, start.elapsed(), outcome);
    }

    /// True if another process may have committed since HOT was last known coherent with it
    /// (stores with a commit probe only); HOT is then emptied, and the caller reads WARM.
    fn other_process_committed(&self) -> bool {
        let Some(probe) = &self.probe else {
            return false;
        };
        match probe.foreign_epoch() {
            Ok(e) if e == self.probe_seen.load(Ordering::Acquire) => false,
            Ok(e) => {
                self.hot.invalidate_all();
                self.probe_seen.store(e, Ordering::Release);
                true
            }
            Err(e) => {
                warn!(error = %e, "commit probe failed; reading WARM");
                true
            }
        }
    }

    /// Commits `batch` to WARM and ends every member's HOT write; see [`detached`].
    async fn commit_through(
        self: Arc<Self>,
        batch: WriteBatch,
        op: Op,
        domain: &'static str,
    ) -> Result<tierstate_core::Committed> {
        let ids = put_ids(&batch);
        let tickets: Vec<_> = ids.iter().map(|id| self.hot.begin_write(id)).collect();
        let start = Instant::now();
        let result = self.warm.write(batch.with_retention(self.retention)).await;
        match &result {
            Ok(done) => {
                self.metrics
                    .record_in(domain, Tier::Warm, op, start.elapsed(), Outcome::Ok);
                for (ticket, d) in tickets.into_iter().zip(&done.states) {
                    self.hot.finish_write(ticket, Written::Ok(d));
                }
            }
            Err(e) => {
                self.metrics
                    .record_in(domain, Tier::Warm, op, start.elapsed(), outcome_of(e));
                let how = if e.is_not_applied() {
                    Written::NotApplied
                } else {
                    Written::Unknown
                };
                for ticket in tickets {
                    self.hot.finish_write(ticket, how);
                }
                self.learn(e);
            }
        }
        result
    }

    /// What a failed write tells about the stored version (of a state: the HOT tier caches
    /// states only, so a document's or journal's conflict teaches it nothing).
    fn learn(&self, e: &Error) {
        match e {
            Error::Conflict {
                deployment_id,
                target: Target::State,
                actual: Some(actual),
                ..
            }
            | Error::AlreadyExists {
                deployment_id,
                target: Target::State,
                actual,
            } => self.hot.observe(deployment_id, *actual),
            Error::Conflict {
                deployment_id,
                target: Target::State,
                actual: None,
                ..
            } => self.hot.forget(deployment_id),
            Error::Integrity {
                deployment_id,
                target: Target::State,
                ..
            } => self.hot.invalidate(deployment_id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    /// A write whose caller stops waiting halfway still runs to its end, on a task of its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_write_finishes_on_its_own_task() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let mut write = Box::pin(detached(async move {
            let _ = wait.await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        }));
        std::future::poll_fn(|cx| {
            assert!(write.as_mut().poll(cx).is_pending(), "it waits for `go`");
            Poll::Ready(())
        })
        .await;
        drop(write);
        go.send(()).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !finished.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(
            finished.load(Ordering::SeqCst),
            "the abandoned write never finished"
        );
    }

    /// A write that never waits answers on the caller's task, without a task of its own (the
    /// test's body runs on its own thread, outside the runtime's worker threads).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_write_runs_on_the_callers_task() {
        let caller = std::thread::current().id();
        let ran_on = detached(async move { Ok(std::thread::current().id()) })
            .await
            .unwrap();
        assert_eq!(ran_on, caller);
    }
}
