//! What a writer process's handle has measured, published as a document of its deployment so
//! that `tierstate serve` (another process) can show it: HOT's hit ratio, WARM's outcomes and
//! latency, retries after lost races, and how commits were grouped into transactions.

use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tierstate_core::{
    BatchOp, DeploymentId, DocAddr, DocWrite, PutMode, Result, Retention, StateStore, Tier,
};

/// The collection of the published figures (one document per deployment).
pub const COLLECTION: &str = "store.figures";
/// The key of the writer's figures in [`COLLECTION`].
pub const KEY: &str = "writer";
/// The figures' schema.
const SCHEMA: u64 = 1;

/// A writer's figures since it opened its handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreFigures {
    /// When they were taken.
    pub at: DateTime<Utc>,
    /// The WARM backend (`sqlite`, `redb`, `postgres`).
    pub backend: String,
    /// HOT lookups that found the record.
    pub hot_hits: u64,
    /// HOT lookups that went on to WARM.
    pub hot_misses: u64,
    /// WARM operations completed.
    pub warm_ok: u64,
    /// WARM compare-and-swap conflicts.
    pub warm_conflicts: u64,
    /// WARM reads of records that were not there.
    pub warm_not_found: u64,
    /// WARM operations that failed.
    pub warm_errors: u64,
    /// Median latency of recent WARM reads, µs.
    pub read_p50_us: Option<u64>,
    /// 99th percentile latency of recent WARM reads, µs.
    pub read_p99_us: Option<u64>,
    /// Median latency of recent WARM writes (saves, commits, deletes, truncations), µs.
    pub write_p50_us: Option<u64>,
    /// 99th percentile latency of recent WARM writes, µs.
    pub write_p99_us: Option<u64>,
    /// Retries waited for after lost races, in the whole process.
    pub retries: u64,
    /// Transactions of grouped commits (a backend that groups them).
    pub groups: Option<u64>,
    /// Commits in those transactions.
    pub grouped: Option<u64>,
    /// Commits made alone because the writer was idle.
    pub inline: Option<u64>,
}

impl StoreFigures {
    /// HOT hits over lookups; `None` before the first lookup.
    pub fn hot_hit_ratio(&self) -> Option<f64> {
        let n = self.hot_hits + self.hot_misses;
        (n > 0).then(|| self.hot_hits as f64 / n as f64)
    }

    /// Commits per grouped transaction; `None` before the first group.
    pub fn mean_group_size(&self) -> Option<f64> {
        match (self.groups, self.grouped) {
            (Some(g), Some(n)) if g > 0 => Some(n as f64 / g as f64),
            _ => None,
        }
    }

    /// Where a deployment's figures are stored.
    ///
    /// # Errors
    /// `InvalidInput` if the deployment id cannot address a document.
    pub fn address(deployment: &DeploymentId) -> Result<DocAddr> {
        DocAddr::new(deployment.as_str(), COLLECTION, KEY)
    }

    /// The figures last published for `deployment`, if any.
    ///
    /// # Errors
    /// `Integrity` for a damaged document; `Backend`; `InvalidInput` if it does not decode.
    pub async fn read(
        store: &dyn StateStore,
        deployment: &DeploymentId,
    ) -> Result<Option<StoreFigures>> {
        let address = Self::address(deployment)?;
        let Some(doc) = store.get_document(&address).await? else {
            return Ok(None);
        };
        tierstate_core::codec::decode_doc(SCHEMA, doc.value)
            .map(Some)
            .map_err(|e| tierstate_core::Error::invalid("store figures", e.to_string()))
    }
}

/// Publishing a handle's figures ([`crate::Tierstate::plan_figures`]): one document write,
/// keeping only the newest version, for the caller's batch.
#[derive(Debug, Clone)]
pub struct FiguresPlan {
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for FiguresPlan {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

impl crate::Tierstate {
    /// This handle's figures now: HOT and WARM outcomes and latency, the process's retries,
    /// and the backend's commit groups.
    pub fn figures(&self) -> StoreFigures {
        let m = self.metrics();
        let (hot, warm) = (m.tier(Tier::Hot), m.tier(Tier::Warm));
        // Latency of the operations still in the ring buffer, reads apart from writes.
        let us = |d: Option<std::time::Duration>| d.map(|d| d.as_micros() as u64);
        let ((r50, r99), (w50, w99)) = (m.latency(Tier::Warm, false), m.latency(Tier::Warm, true));
        let (read_p50_us, read_p99_us, write_p50_us, write_p99_us) =
            (us(r50), us(r99), us(w50), us(w99));
        let groups = self.warm().group_stats();
        StoreFigures {
            at: Utc::now(),
            backend: self.warm().backend().to_owned(),
            hot_hits: hot.hits,
            hot_misses: hot.misses,
            warm_ok: warm.ok,
            warm_conflicts: warm.conflicts,
            warm_not_found: warm.not_found,
            warm_errors: warm.errors,
            read_p50_us,
            read_p99_us,
            write_p50_us,
            write_p99_us,
            retries: tierstate_core::retry::retries_total(),
            groups: groups.map(|g| g.groups),
            grouped: groups.map(|g| g.grouped),
            inline: groups.map(|g| g.inline),
        }
    }

    /// Plans publishing [`crate::Tierstate::figures`] as `deployment`'s figures document, for
    /// a batch the caller commits (e.g. every few hundred ticks, in the tick's own batch).
    ///
    /// # Errors
    /// `InvalidInput` if the deployment id cannot address a document.
    pub fn plan_figures(&self, deployment: &DeploymentId) -> Result<FiguresPlan> {
        let value = tierstate_core::codec::encode_doc(SCHEMA, &self.figures())
            .map_err(|e| tierstate_core::Error::invalid("store figures", e))?;
        let keep = Retention::KeepLast(NonZeroU32::MIN);
        let write = DocWrite::new(
            StoreFigures::address(deployment)?,
            PutMode::Overwrite,
            value,
        )
        .with_retention(keep);
        Ok(FiguresPlan {
            ops: vec![BatchOp::Document(write)],
        })
    }
}
