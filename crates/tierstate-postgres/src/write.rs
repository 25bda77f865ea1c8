//! The write path: one run of a write transaction (lock and read the heads, plan, store,
//! notify, commit), and the optimistic one-statement path for batches over heads this process
//! already knows.

use tierstate_core::plan::Reads;
use tierstate_core::{Committed, Error, PreparedBatch, Result, commit_time};

use crate::PostgresStore;
use crate::error::{in_flight, lost_race, map, not_applied};
use crate::heads::Heads;
use crate::statement;

/// How one attempt of a write transaction ended.
pub(crate) enum Attempt {
    /// Committed, or failed in a way retrying cannot change.
    Done(Result<Committed>),
    /// Lost a race another transaction won (a unique key it created first, a deadlock):
    /// nothing was applied; run the whole transaction again.
    Retry(Error),
}

impl PostgresStore {
    /// One run of a write transaction: lock and read the heads, plan, store, notify, commit.
    pub(crate) async fn try_write(&self, reads: &Reads, batch: PreparedBatch) -> Attempt {
        let mut tx = match self.pool.begin().await {
            Ok(t) => t,
            Err(e) => return Attempt::Done(Err(not_applied(e))),
        };
        let snap = match crate::records::snapshot(&mut tx, reads).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Attempt::Done(Err(e)),
            Err(e) if lost_race(&e) => return Attempt::Retry(map(e)),
            Err(e) => return Attempt::Done(Err(in_flight(e))),
        };
        self.heads.saw(reads, &snap);
        // On a plan error the transaction is dropped and rolled back: nothing stays.
        let mut plan = match tierstate_core::plan::plan(batch, &snap, commit_time()) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(Err(e)),
        };
        if !plan.removals.is_empty()
            && let Err(e) = crate::records::remove(&mut tx, &plan).await
        {
            return if lost_race(&e) {
                Attempt::Retry(map(e))
            } else {
                Attempt::Done(Err(in_flight(e)))
            };
        }
        // Everything else, NOTIFY included (delivered only if the transaction commits), in one
        // round trip. Its guards only fail here if a create raced this one.
        if let Err(e) = statement::store(&mut tx, &mut plan, &[]).await {
            return if lost_race(&e) || statement::head_moved(&e) {
                Attempt::Retry(map(e))
            } else {
                Attempt::Done(Err(in_flight(e)))
            };
        }
        match tx.commit().await {
            Ok(()) => {
                self.heads.committed(&plan);
                Attempt::Done(Ok(plan.committed))
            }
            Err(e) if lost_race(&e) => Attempt::Retry(map(e)),
            Err(e) => Attempt::Done(Err(in_flight(e))),
        }
    }

    /// A batch over remembered heads, planned without reading them and stored in one
    /// autocommit statement. `Err` hands the batch back for the locking path: a head was not
    /// remembered, was stale (a guard refused it), or the plan failed on what was remembered
    /// (the locking path then reports the real outcome).
    pub(crate) async fn try_optimistic(
        &self,
        reads: &Reads,
        batch: PreparedBatch,
    ) -> std::result::Result<Result<Committed>, PreparedBatch> {
        if !Heads::eligible(&batch) {
            return Err(batch);
        }
        let Some(snap) = self.heads.snapshot(reads, &batch) else {
            return Err(batch);
        };
        let Ok(mut plan) = tierstate_core::plan::plan(batch.clone(), &snap, commit_time()) else {
            return Err(batch);
        };
        // The removals the plan decided, where the remembered heads stand; and the batch's
        // checks (each expects a version: `Heads::eligible`).
        let removals = plan.removals.clone();
        let mut guards = Vec::with_capacity(removals.len() + batch.checks.len());
        for a in &removals {
            let Some(&(version, _)) = snap.documents.get(a) else {
                return Err(batch);
            };
            guards.push(statement::DocGuard {
                address: a,
                version,
                remove: true,
            });
        }
        for (a, v) in &batch.checks {
            if let Some(version) = *v {
                guards.push(statement::DocGuard {
                    address: a,
                    version,
                    remove: false,
                });
            }
        }
        let mut c = match self.fast.acquire().await {
            Ok(c) => c,
            Err(e) => return Ok(Err(not_applied(e))),
        };
        let stored = statement::store(&mut c, &mut plan, &guards).await;
        match stored {
            Ok(()) => {
                drop(c);
                self.heads.committed(&plan);
                Ok(Ok(plan.committed))
            }
            Err(e) => {
                c.after_error(&e);
                if statement::head_moved(&e) || lost_race(&e) {
                    self.heads.forget(reads);
                    Err(batch)
                } else {
                    Ok(Err(in_flight(e)))
                }
            }
        }
    }
}
