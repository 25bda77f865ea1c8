//! Shared helpers of the benchmarks: payloads of a given size and latency statistics.
#![deny(missing_docs)]

pub mod floor;
pub mod plain;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// A realistic state object whose canonical JSON is about `bytes` long.
pub fn state_of_size(bytes: usize, seq: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("seq".into(), json!(seq));
    m.insert("symbol".into(), json!("BTC-PERP"));
    m.insert("position".into(), json!("0.125"));
    let filler = bytes.saturating_sub(80);
    m.insert("orders".into(), json!("o".repeat(filler)));
    m
}

/// Latency samples and the wall time they took.
#[derive(Debug, Clone)]
pub struct Samples {
    /// Per-operation latencies.
    pub lat: Vec<Duration>,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Operations performed (may exceed `lat.len()` when samples are batched).
    pub ops: u64,
}

impl Samples {
    /// Times `n` calls of `f` one by one.
    pub fn each(n: usize, mut f: impl FnMut(usize)) -> Self {
        let mut lat = Vec::with_capacity(n);
        let start = Instant::now();
        for i in 0..n {
            let t = Instant::now();
            f(i);
            lat.push(t.elapsed());
        }
        Self {
            lat,
            wall: start.elapsed(),
            ops: n as u64,
        }
    }

    /// Times `batches` batches of `per` calls and records the mean per call of each batch
    /// (for operations too fast to time one by one).
    pub fn batched(batches: usize, per: usize, mut f: impl FnMut(usize)) -> Self {
        let mut lat = Vec::with_capacity(batches);
        let start = Instant::now();
        for b in 0..batches {
            let t = Instant::now();
            for i in 0..per {
                f(b * per + i);
            }
            lat.push(t.elapsed() / per as u32);
        }
        Self {
            lat,
            wall: start.elapsed(),
            ops: (batches * per) as u64,
        }
    }

    /// Samples already taken one by one; the wall time is their sum.
    pub fn of(lat: Vec<Duration>) -> Self {
        Self {
            wall: lat.iter().sum(),
            ops: lat.len() as u64,
            lat,
        }
    }

    /// The `q` quantile (0..=1) of the latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        let mut v = self.lat.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        v[((v.len() - 1) as f64 * q).round() as usize]
    }

    /// Operations per second over the wall time.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
}

/// This process's page faults and CPU time so far, from `/proc/self/stat` (Linux; `None`
/// elsewhere): a row that allocates much can say whether its time went to first touches of
/// memory rather than to its own work.
#[derive(Debug, Clone, Copy)]
pub struct ProcessCounters {
    /// Minor page faults (first touches of memory that needed no I/O).
    pub minor_faults: u64,
    /// CPU time spent in the kernel on this process's behalf.
    pub system_cpu: Duration,
}

impl ProcessCounters {
    /// The counters now.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name, which may itself contain spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // proc(5): minflt is field 10, stime field 15 (in USER_HZ ticks, 100 per second);
        // `fields` starts at field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            minor_faults: field(10)?,
            system_cpu: Duration::from_millis(field(15)? * 10),
        })
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
            system_cpu: self.system_cpu.saturating_sub(earlier.system_cpu),
        }
    }
}
