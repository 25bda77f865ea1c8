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
