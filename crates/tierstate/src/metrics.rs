//! Per-operation metrics: a bounded ring buffer of records plus per-tier counters.
//!
//! Counters are atomics (never lost, never unbounded); the ring keeps the latest records for
//! latency percentiles. A cache miss is not a success or a failure: hit rate and success rate
//! are reported separately.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tierstate_core::Tier;

/// One HOT hit in this many (per thread) is timed and kept in the ring buffer.
pub const HIT_SAMPLE: u32 = 64;

thread_local! {
    static HITS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// True for the hits this thread times: one in [`HIT_SAMPLE`].
pub fn time_this_hit() -> bool {
    HITS.with(|n| {
        let v = n.get().wrapping_add(1);
        n.set(v);
        v % HIT_SAMPLE == 0
    })
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Load of the current state.
    Load,
    /// Single write.
    Save,
    /// Multi-member batch.
    Commit,
    /// Delete.
    Delete,
    /// History listing.
    History,
    /// Load of one historical version.
    LoadVersion,
    /// Startup bulk load into HOT.
    WarmUp,
    /// A document read (current, by version, as of a time, or its history).
    ReadDocument,
    /// A page of documents of a collection.
    ScanDocuments,
    /// A read of journal entries (a range, a window, by key).
    ReadJournal,
    /// A listing: deployments, collections, streams, a journal's bounds.
    Catalog,
    /// Removal of a journal's oldest entries.
    Truncate,
    /// A state as of a time.
    AsOf,
}

impl Op {
    /// Whether the operation writes (a save, a commit, a delete, a truncation); the others read.
    pub fn writes(self) -> bool {
        matches!(self, Op::Save | Op::Commit | Op::Delete | Op::Truncate)
    }

    /// The operation's name, as metrics report it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Load => "load",
            Op::Save => "save",
            Op::Commit => "commit",
            Op::Delete => "delete",
            Op::History => "history",
            Op::LoadVersion => "load_version",
            Op::WarmUp => "warm_up",
            Op::ReadDocument => "read_document",
            Op::ScanDocuments => "scan_documents",
            Op::ReadJournal => "read_journal",
            Op::Catalog => "catalog",
            Op::Truncate => "truncate",
            Op::AsOf => "as_of",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// HOT had the record.
    Hit,
    /// HOT did not have it (the load went on to WARM).
    Miss,
    /// Done.
    Ok,
    /// CAS conflict or create over an existing deployment.
    Conflict,
    /// Nothing stored under that id (or version).
    NotFound,
    /// Failed.
    Error,
}

const OUTCOMES: [Outcome; 6] = [
    Outcome::Hit,
    Outcome::Miss,
    Outcome::Ok,
    Outcome::Conflict,
    Outcome::NotFound,
    Outcome::Error,
];

/// One operation on one tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpRecord {
    /// Which part of the handle ran it: `"state"` for the state calls, else the domain
    /// (`"orders"`, `"ledger"`, `"strategy"`, …) whose reads and writes went through it.
    pub domain: &'static str,
    /// Which tier did the work.
    pub tier: Tier,
    /// What was done.
    pub op: Op,
    /// How long the tier took.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// Called with every record; must be cheap (it runs on the operation's path).
pub type MetricsCallback = Arc<dyn Fn(&OpRecord) + Send + Sync>;

/// Totals for one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct TierSummary {
    /// The tier.
    pub tier: Tier,
    /// Operations counted since start.
    pub total: u64,
    /// Count per outcome since start.
    pub hits: u64,
    /// Misses (HOT only).
    pub misses: u64,
    /// Completed operations.
    pub ok: u64,
    /// Conflicts.
    pub conflicts: u64,
    /// Not found.
    pub not_found: u64,
    /// Errors.
    pub errors: u64,
    /// hits / (hits + misses); `None` before the first lookup.
    pub hit_rate: Option<f64>,
    /// 1 − errors / total; conflicts and misses are not failures. `None` before the first op.
    pub success_rate: Option<f64>,
    /// Mean latency over the records still in the ring buffer.
    pub mean: Option<Duration>,
    /// Median latency over the records still in the ring buffer.
    pub p50: Option<Duration>,
    /// 99th percentile latency over the records still in the ring buffer.
    pub p99: Option<Duration>,
}

impl fmt::Display for TierSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
        let dur = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{d:.1?}"));
        write!(
            f,
            "{:<4} ops {:>7}  hit {:>6}  success {:>6}  conflicts {:>4}  errors {:>4}  mean {:>9}  p50 {:>9}  p99 {:>9}",
            self.tier.to_string(),
            self.total,
            pct(self.hit_rate),
            pct(self.success_rate),
            self.conflicts,
            self.errors,
            dur(self.mean),
            dur(self.p50),
            dur(self.p99)
        )
    }
}

/// Latency of one kind of operation over the records in the ring buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSummary {
    /// The domain that ran it (`"state"` for the state calls).
    pub domain: &'static str,
    /// The operation ([`Op::name`]).
    pub op: &'static str,
    /// The tier that did the work.
    pub tier: Tier,
    /// Records of it in the ring buffer.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Mean latency.
    pub mean: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// The metrics of one [`crate::StateManager`].
pub struct Metrics {
    ring: Mutex<VecDeque<OpRecord>>,
    capacity: usize,
    counts: [[AtomicU64; 6]; 2],
    callback: Option<MetricsCallback>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn tier_index(t: Tier) -> usize {
    match t {
        Tier::Hot => 0,
        Tier::Warm => 1,
    }
}

fn outcome_index(o: Outcome) -> usize {
    OUTCOMES
        .iter()
        .position(|x| *x == o)
        .expect("every outcome is listed")
}

impl Metrics {
    /// Metrics keeping the last `capacity` records (0 keeps counters only).
    pub fn new(capacity: usize, callback: Option<MetricsCallback>) -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(1 << 16))),
            capacity,
            counts: Default::default(),
            callback,
        }
    }

    /// Counts a HOT hit. Every hit is counted; only the timed ones (`latency`, one in
    /// [`HIT_SAMPLE`] per thread, see [`time_this_hit`]) reach the ring buffer and the
    /// callback, so the hit path takes no lock and reads no clock.
    pub fn record_hit(&self, op: Op, latency: Option<Duration>) {
        match latency {
            Some(l) => self.record(Tier::Hot, op, l, Outcome::Hit),
            None => {
                self.counts[tier_index(Tier::Hot)][outcome_index(Outcome::Hit)]
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records one state operation.
    pub fn record(&self, tier: Tier, op: Op, latency: Duration, outcome: Outcome) {
        self.record_in("state", tier, op, latency, outcome);
    }

    /// Records one operation of `domain`.
    pub fn record_in(
        &self,
        domain: &'static str,
        tier: Tier,
        op: Op,
        latency: Duration,
        outcome: Outcome,
    ) {
        self.counts[tier_index(tier)][outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
        let rec = OpRecord {
            domain,
            tier,
            op,
            latency,
            outcome,
        };
        if self.capacity > 0 {
            let mut ring = self.ring.lock();
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(rec);
        }
        if let Some(cb) = &self.callback {
            cb(&rec);
        }
    }

    /// The records still in the ring buffer, oldest first.
    pub fn recent(&self) -> Vec<OpRecord> {
        self.ring.lock().iter().copied().collect()
    }

    /// The newest `limit` records, newest first.
    pub fn latest(&self, limit: usize) -> Vec<OpRecord> {
        self.ring.lock().iter().rev().take(limit).copied().collect()
    }

    /// Per (domain, operation, tier): how many records the ring holds, how many failed, and
    /// mean, median and 99th percentile latency over them; sorted by domain, then operation.
    pub fn by_operation(&self) -> Vec<OpSummary> {
        let mut groups: std::collections::BTreeMap<
            (&'static str, &'static str, usize),
            Vec<&OpRecord>,
        > = std::collections::BTreeMap::new();
        let ring = self.ring.lock();
        for r in ring.iter() {
            groups
                .entry((r.domain, r.op.name(), tier_index(r.tier)))
                .or_default()
                .push(r);
        }
        groups
            .into_iter()
            .map(|((domain, op, _), recs)| {
                let mut lat: Vec<Duration> = recs.iter().map(|r| r.latency).collect();
                lat.sort_unstable();
                let pick = |q: f64| quantile(&lat, q).unwrap_or_default();
                let total: Duration = lat.iter().sum();
                OpSummary {
                    domain,
                    op,
                    tier: recs[0].tier,
                    count: recs.len() as u64,
                    errors: recs.iter().filter(|r| r.outcome == Outcome::Error).count() as u64,
                    mean: total / u32::try_from(lat.len()).unwrap_or(u32::MAX),
                    p50: pick(0.50),
                    p99: pick(0.99),
                }
            })
            .collect()
    }

    /// Forgets the records (the counters keep counting).
    pub fn clear(&self) {
        self.ring.lock().clear();
    }

    /// Totals and latency percentiles for one tier.
    pub fn tier(&self, tier: Tier) -> TierSummary {
        let c =
            |o: Outcome| self.counts[tier_index(tier)][outcome_index(o)].load(Ordering::Relaxed);
        let (hits, misses, ok, conflicts, not_found, errors) = (
            c(Outcome::Hit),
            c(Outcome::Miss),
            c(Outcome::Ok),
            c(Outcome::Conflict),
            c(Outcome::NotFound),
            c(Outcome::Error),
        );
        let total = hits + misses + ok + conflicts + not_found + errors;
        let mut lat: Vec<Duration> = self
            .ring
            .lock()
            .iter()
            .filter(|r| r.tier == tier)
            .map(|r| r.latency)
            .collect();
        lat.sort_unstable();
        let pick = |q: f64| quantile(&lat, q);
        TierSummary {
            tier,
            total,
            hits,
            misses,
            ok,
            conflicts,
            not_found,
            errors,
            hit_rate: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
            success_rate: (total > 0).then(|| 1.0 - errors as f64 / total as f64),
            mean: (!lat.is_empty()).then(|| lat.iter().sum::<Duration>() / lat.len() as u32),
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }

    /// Median and 99th percentile latency of the ring's records of `tier` that write (`writes`)
    /// or that read; `None` without any.
    pub fn latency(&self, tier: Tier, writes: bool) -> (Option<Duration>, Option<Duration>) {
        let mut lat: Vec<Duration> = self
            .ring
            .lock()
            .iter()
            .filter(|r| r.tier == tier && r.op.writes() == writes)
            .map(|r| r.latency)
            .collect();
        lat.sort_unstable();
        (quantile(&lat, 0.50), quantile(&lat, 0.99))
    }

    /// Summaries of both tiers, HOT first.
    pub fn summary(&self) -> [TierSummary; 2] {
        [self.tier(Tier::Hot), self.tier(Tier::Warm)]
    }
}

/// The `q` quantile of sorted latencies (the one rule every summary here uses); `None` if
/// there are none.
fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[(last as f64 * q).round() as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_split_between_reads_and_writes() {
        let m = Metrics::new(16, None);
        for us in [10, 30, 20] {
            m.record(
                Tier::Warm,
                Op::Commit,
                Duration::from_micros(us),
                Outcome::Ok,
            );
        }
        m.record(
            Tier::Warm,
            Op::ReadDocument,
            Duration::from_micros(2),
            Outcome::Ok,
        );
        let us = Duration::from_micros;
        assert_eq!(m.latency(Tier::Warm, true), (Some(us(20)), Some(us(30))));
        assert_eq!(m.latency(Tier::Warm, false), (Some(us(2)), Some(us(2))));
        assert_eq!(m.latency(Tier::Hot, true), (None, None));
    }

    #[test]
    fn ring_is_bounded_and_counters_are_not() {
        let m = Metrics::new(3, None);
        for i in 0..10 {
            m.record(Tier::Warm, Op::Save, Duration::from_micros(i), Outcome::Ok);
        }
        assert_eq!(m.recent().len(), 3);
        assert_eq!(m.recent()[0].latency, Duration::from_micros(7));
        assert_eq!(m.tier(Tier::Warm).total, 10);
    }

    #[test]
    fn hit_rate_is_separate_from_success_rate() {
        let m = Metrics::new(100, None);
        m.record(Tier::Hot, Op::Load, Duration::ZERO, Outcome::Hit);
        m.record(Tier::Hot, Op::Load, Duration::ZERO, Outcome::Miss);
        m.record(Tier::Hot, Op::Load, Duration::ZERO, Outcome::Miss);
        m.record(Tier::Hot, Op::Load, Duration::ZERO, Outcome::Hit);
        let hot = m.tier(Tier::Hot);
        assert_eq!(hot.hit_rate, Some(0.5));
        assert_eq!(hot.success_rate, Some(1.0), "a miss is not a failure");
        m.record(Tier::Warm, Op::Save, Duration::from_millis(1), Outcome::Ok);
        m.record(
            Tier::Warm,
            Op::Save,
            Duration::from_millis(3),
            Outcome::Error,
        );
        m.record(
            Tier::Warm,
            Op::Save,
            Duration::from_millis(2),
            Outcome::Conflict,
        );
        m.record(Tier::Warm, Op::Save, Duration::from_millis(2), Outcome::Ok);
        let warm = m.tier(Tier::Warm);
        assert_eq!(warm.hit_rate, None);
        assert_eq!(warm.success_rate, Some(0.75));
        assert_eq!(warm.p50, Some(Duration::from_millis(2)));
        assert_eq!(warm.p99, Some(Duration::from_millis(3)));
    }

    #[test]
    fn callback_sees_every_record() {
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let m = Metrics::new(
            0,
            Some(Arc::new(move |_r| {
                s.fetch_add(1, Ordering::Relaxed);
            })),
        );
        for _ in 0..5 {
            m.record(Tier::Hot, Op::Load, Duration::ZERO, Outcome::Hit);
        }
        assert_eq!(seen.load(Ordering::Relaxed), 5);
        assert!(m.recent().is_empty());
    }
}
