//! Rewriting every deployment to the latest payload schema, in batches.
//!
//! Idempotent (states already current are counted and skipped) and therefore resumable: after a
//! crash, run it again; every committed batch stays committed and is skipped. Each batch is one
//! atomic CAS commit; if another writer touched a member, that page falls back to one-by-one
//! writes, re-reading a conflicted state once, so a concurrent writer is never clobbered.

use std::sync::Arc;

use tierstate_core::{
    DeploymentId, Error, Result, Retention, StateData, StateStore, StateWrite, WriteBatch,
};
use tierstate_migrate::MigrationRegistry;

/// What a bulk migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// States rewritten to the current schema.
    pub migrated: u64,
    /// States that were already current.
    pub already_current: u64,
    /// States that could not be migrated (failing step, newer schema, damaged record, or still
    /// conflicting after a retry); see `failures`.
    pub failed: u64,
    /// The first failures (at most 100): deployment and reason.
    pub failures: Vec<(Option<DeploymentId>, String)>,
}

impl MigrationReport {
    fn fail(&mut self, id: Option<DeploymentId>, why: String) {
        self.failed += 1;
        if self.failures.len() < 100 {
            self.failures.push((id, why));
        }
    }
}

/// Migrates every state in `store` to `registry`'s current schema, `batch` states per commit;
/// `progress` is called after each page with (states scanned so far, the report so far).
///
/// # Errors
/// `Backend` if the store fails (what was committed before stays committed; run again to
/// resume).
pub async fn migrate_states(
    store: &Arc<dyn StateStore>,
    registry: &MigrationRegistry,
    batch: usize,
    retention: Retention,
    mut progress: impl FnMut(u64, &MigrationReport),
) -> Result<MigrationReport> {
    let batch = batch.max(1);
    let current = registry.current_version();
    let mut report = MigrationReport::default();
    let mut after: Option<DeploymentId> = None;
    let mut scanned = 0u64;
    loop {
        let page = store.scan(after.as_ref(), batch).await?;
        if page.is_empty() {
            break;
        }
        let mut todo: Vec<(StateData, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        for row in page {
            scanned += 1;
            let data = match row {
                Ok(d) => d,
                Err(e) => {
                    let id = match &e {
                        Error::Integrity { deployment_id, .. } => Some(deployment_id.clone()),
                        _ => None,
                    };
                    after = id.clone().or(after);
                    report.fail(id, e.to_string());
                    continue;
                }
            };
            after = Some(data.deployment_id.clone());
            // `scan` never returns tierstate's own records; the check guards the invariant.
            if data.deployment_id.is_reserved() || data.schema_version == current {
                report.already_current += 1;
                continue;
            }
            match registry.migrate(data.state.clone(), data.schema_version) {
                Ok((state, _)) => todo.push((data, state)),
                Err(e) => report.fail(Some(data.deployment_id.clone()), e.to_string()),
            }
        }
        commit_page(store, registry, retention, todo, &mut report).await?;
        progress(scanned, &report);
    }
    Ok(report)
}

async fn commit_page(
    store: &Arc<dyn StateStore>,
    registry: &MigrationRegistry,
    retention: Retention,
    todo: Vec<(StateData, serde_json::Map<String, serde_json::Value>)>,
    report: &mut MigrationReport,
) -> Result<()> {
    if todo.is_empty() {
        return Ok(());
    }
    let current = registry.current_version();
    let mut b = WriteBatch::new().with_retention(retention);
    for (d, state) in &todo {
        b = b.put(
            StateWrite::update(d.deployment_id.clone(), d.version, state.clone())
                .with_schema_version(current),
        );
    }
    match store.commit(b).await {
        Ok(done) => {
            report.migrated += done.len() as u64;
            return Ok(());
        }
        Err(e) if e.is_conflict() => {}
        Err(e) => return Err(e),
    }
    // Someone else wrote a member: go one by one, re-reading a conflicted state once.
    for (d, state) in todo {
        let w = StateWrite::update(d.deployment_id.clone(), d.version, state)
            .with_schema_version(current);
        match store.put(w, retention).await {
            Ok(_) => report.migrated += 1,
            Err(e) if e.is_conflict() => match store.get(&d.deployment_id).await? {
                Some(fresh) if fresh.schema_version == current => report.already_current += 1,
                Some(fresh) => match registry.migrate(fresh.state.clone(), fresh.schema_version) {
                    Ok((state, _)) => {
                        let w = StateWrite::update(d.deployment_id.clone(), fresh.version, state)
                            .with_schema_version(current);
                        match store.put(w, retention).await {
                            Ok(_) => report.migrated += 1,
                            Err(e) => report.fail(Some(d.deployment_id.clone()), e.to_string()),
                        }
                    }
                    Err(e) => report.fail(Some(d.deployment_id.clone()), e.to_string()),
                },
                None => {}
            },
            Err(e) => report.fail(Some(d.deployment_id.clone()), e.to_string()),
        }
    }
    Ok(())
}
