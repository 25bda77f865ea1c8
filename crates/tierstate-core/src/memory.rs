//! The in-memory reference store: the semantics of [`StateStore`] with no I/O.
//!
//! It keeps canonical bytes and checksums exactly like a durable backend, so the conformance
//! suite (including corruption detection) runs against it too. Nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use chrono::DateTime;
use parking_lot::Mutex;

use crate::{
    DeploymentId, Result, StateData, StateStore, StoredRecord, Tier, WriteBatch, cas, commit_time,
    micros,
};

/// A [`StateStore`] held in process memory; for tests and as the reference implementation.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    /// Per deployment, its retained versions in ascending order.
    rows: Mutex<BTreeMap<DeploymentId, Vec<StoredRecord>>>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: flips one bit of the stored body of `version` (or the newest version).
    /// Returns false if there is no such record.
    pub fn damage_stored_state(&self, id: &DeploymentId, version: Option<u64>) -> bool {
        let mut rows = self.rows.lock();
        let Some(versions) = rows.get_mut(id) else {
            return false;
        };
        let row = match version {
            Some(v) => versions.iter_mut().find(|r| r.version == v),
            None => versions.last_mut(),
        };
        match row {
            Some(r) if !r.body.is_empty() => {
                let at = r.body.len() / 2;
                r.body[at] ^= 0x20;
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl StateStore for InMemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>> {
        let row = self.rows.lock().get(id).and_then(|v| v.last().cloned());
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        let row = self
            .rows
            .lock()
            .get(id)
            .and_then(|v| v.iter().find(|r| r.version == version).cloned());
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        let rows: Vec<StoredRecord> = self
            .rows
            .lock()
            .get(id)
            .map(|v| v.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default();
        rows.into_iter().map(|r| r.verify(Tier::Warm)).collect()
    }

    async fn commit(&self, batch: WriteBatch) -> Result<Vec<StateData>> {
        let batch = batch.prepare()?;
        let mut rows = self.rows.lock();
        // Decide every member first, so a failing member leaves nothing written.
        let mut planned = Vec::with_capacity(batch.writes.len());
        for w in &batch.writes {
            let current = rows.get(&w.deployment_id).and_then(|v| v.last());
            let version = cas::next_version(&w.deployment_id, w.mode, current.map(|r| r.version))?;
            planned.push((version, current.map(|r| r.created_at_us)));
        }
        let now = commit_time();
        let mut committed = Vec::with_capacity(planned.len());
        for (w, (version, created)) in batch.writes.into_iter().zip(planned) {
            let created_us = created.unwrap_or(micros(now));
            let created_at = DateTime::from_timestamp_micros(created_us).unwrap_or(now);
            committed.push(w.committed(version, created_at, now));
            let versions = rows.entry(w.deployment_id.clone()).or_default();
            versions.push(StoredRecord {
                deployment_id: w.deployment_id,
                version,
                schema_version: w.schema_version,
                body: w.body,
                checksum: w.checksum.to_hex(),
                created_at_us: created_us,
                updated_at_us: micros(now),
            });
            if let Some(below) = batch.retention.prune_below(version) {
                versions.retain(|r| r.version >= below);
            }
        }
        Ok(committed)
    }

    async fn delete(&self, id: &DeploymentId) -> Result<bool> {
        Ok(self.rows.lock().remove(id).is_some())
    }

    async fn list(&self, after: Option<&DeploymentId>, limit: usize) -> Result<Vec<DeploymentId>> {
        let rows = self.rows.lock();
        Ok(range_after(&rows, after)
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>> {
        let picked: Vec<StoredRecord> = {
            let rows = self.rows.lock();
            range_after(&rows, after)
                .take(limit)
                .filter_map(|(_, v)| v.last().cloned())
                .collect()
        };
        Ok(picked.into_iter().map(|r| r.verify(Tier::Warm)).collect())
    }
}

fn range_after<'a>(
    rows: &'a BTreeMap<DeploymentId, Vec<StoredRecord>>,
    after: Option<&DeploymentId>,
) -> impl Iterator<Item = (&'a DeploymentId, &'a Vec<StoredRecord>)> {
    let lower = match after {
        Some(a) => Bound::Excluded(a.clone()),
        None => Bound::Unbounded,
    };
    rows.range((lower, Bound::Unbounded))
        .filter(|(id, _)| !id.is_reserved())
}
