//! The writer thread: one redb write transaction per group of queued jobs, one fsync.
//!
//! redb has no savepoints inside a dirty transaction, so each job first *plans* (reads heads and
//! applies the CAS rule, writing nothing) and only then writes. A job whose plan fails leaves no
//! trace; a storage error while writing aborts the whole group, and every member hears it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{Durability, ReadableTable, Table};
use tierstate_core::group::{self, CommitJob, GroupWriter, Reply as Done};
use tierstate_core::plan::Reads;
use tierstate_core::{
    BackendErrorKind, Committed, DeploymentId, Error, PreparedBatch, Result, StreamAddr,
    TruncateBefore, commit_time,
};
use tokio::sync::oneshot;

use crate::RedbDurability;
use crate::error::{BACKEND, map};
use crate::handle::Handle;
use crate::records::Tables;
use crate::tables::{VersionKey, VersionValue};

pub(crate) type Head<'t> = Table<'t, &'static str, crate::tables::StateHead>;
pub(crate) type Versions<'t> = Table<'t, VersionKey, VersionValue>;

/// Work for the writer thread.
pub(crate) enum Job {
    /// A batch, with its read set worked out on the caller's thread.
    Commit(CommitJob),
    Truncate {
        stream: StreamAddr,
        before: TruncateBefore,
        reply: oneshot::Sender<Result<u64>>,
    },
    Delete {
        id: DeploymentId,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// A copy's rows, stored as given.
    Restore {
        plan: Box<tierstate_core::plan::Plan>,
        reply: oneshot::Sender<Result<bool>>,
    },
    /// Test hook: raw work on the tables inside the writer's transaction.
    #[cfg(feature = "test-hooks")]
    Hook {
        run: HookFn,
        reply: oneshot::Sender<Result<bool>>,
    },
}

/// Test hook work run inside the writer's transaction.
#[cfg(feature = "test-hooks")]
pub(crate) type HookFn = Box<dyn FnOnce(&mut Tables<'_>) -> Result<bool, Stop> + Send>;

/// A job's storage failure: the transaction is unusable and the whole group must abort.
pub(crate) struct Stop(pub(crate) Error);

fn replicate(e: &Error) -> Error {
    group::replicate(BACKEND, e)
}

fn fail(job: Job, e: &Error) {
    match job {
        Job::Commit(c) => drop(c.reply.send(Err(replicate(e)))),
        Job::Truncate { reply, .. } => drop(reply.send(Err(replicate(e)))),
        Job::Delete { reply, .. } => drop(reply.send(Err(replicate(e)))),
        Job::Restore { reply, .. } => drop(reply.send(Err(replicate(e)))),
        #[cfg(feature = "test-hooks")]
        Job::Hook { reply, .. } => drop(reply.send(Err(replicate(e)))),
    }
}

/// The writer thread that owns the write transactions.
pub(crate) type Writer = GroupWriter<Job>;

/// Starts the writer thread over `db`.
pub(crate) fn start(
    db: Arc<Handle>,
    durability: RedbDurability,
    max_group: usize,
    inline: bool,
) -> Result<Writer> {
    let durability = match durability {
        RedbDurability::Immediate => Durability::Immediate,
        RedbDurability::None => Durability::None,
    };
    GroupWriter::start(BACKEND, max_group, inline, move |group| {
        commit_group(&db, durability, group)
    })
}

fn commit_group(handle: &Handle, durability: Durability, group: Vec<Job>) {
    // After an I/O error, reopen first (with backoff); until then every job hears a retryable
    // error and nothing is written.
    let db = match handle.recover().and_then(|()| handle.current()) {
        Ok(db) => db,
        Err(e) => {
            group.into_iter().for_each(|j| fail(j, &e));
            return;
        }
    };
    let db = match db.rw() {
        Ok(db) => db,
        Err(e) => {
            group.into_iter().for_each(|j| fail(j, &e));
            return;
        }
    };
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let e = map(e);
            handle.poisoned_by(&e);
            group.into_iter().for_each(|j| fail(j, &e));
            return;
        }
    };
    if let Err(e) = txn.set_durability(durability) {
        let e = Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Other,
            message: format!("cannot set durability: {e}"),
            source: None,
        };
        group.into_iter().for_each(|j| fail(j, &e));
        return;
    }
    let now = commit_time();
    let mut done = Vec::with_capacity(group.len());
    let mut broken: Option<Error> = None;
    {
        let mut tables = Tables::new(&txn);
        for job in group {
            if let Some(e) = &broken {
                fail(job, e);
                continue;
            }
            let outcome = match job {
                Job::Commit(CommitJob {
                    batch,
                    reads,
                    reply,
                }) => match apply_batch(handle, &mut tables, batch, &reads, now) {
                    Ok(r) => Ok(Done::Commit(reply, r)),
                    Err(Stop(e)) => Err((e, Done::Commit(reply, Ok(Committed::default())))),
                },
                Job::Truncate {
                    stream,
                    before,
                    reply,
                } => match crate::records::truncate(&mut tables, &stream, before) {
                    Ok(r) => Ok(Done::Count(reply, r)),
                    Err(Stop(e)) => Err((e, Done::Count(reply, Ok(0)))),
                },
                Job::Delete { id, reply } => {
                    match tables.states().and_then(|(h, v)| delete(h, v, &id)) {
                        Ok(r) => Ok(Done::Flag(reply, Ok(r))),
                        Err(Stop(e)) => Err((e, Done::Flag(reply, Ok(false)))),
                    }
                }
                Job::Restore { plan, reply } => match crate::records::store(&mut tables, &plan) {
                    Ok(()) => Ok(Done::Flag(reply, Ok(true))),
                    Err(Stop(e)) => Err((e, Done::Flag(reply, Ok(false)))),
                },
                #[cfg(feature = "test-hooks")]
                Job::Hook { run, reply } => match run(&mut tables) {
                    Ok(r) => Ok(Done::Flag(reply, Ok(r))),
                    Err(Stop(e)) => Err((e, Done::Flag(reply, Ok(false)))),
                },
            };
            match outcome {
                Ok(d) => done.push(d),
                Err((e, d)) => {
                    // The job half-wrote: the whole transaction must be abandoned.
                    done.push(d);
                    broken = Some(e);
                }
            }
        }
    }
    let failure = match broken {
        Some(e) => {
            let _ = txn.abort();
            Some(e)
        }
        None => txn.commit().map_err(map).err(),
    };
    if let Some(e) = &failure {
        handle.poisoned_by(e);
    }
    for d in done {
        d.deliver(BACKEND, failure.as_ref());
    }
}

/// Plans every member (reads only, through the core planner), then writes them. `Ok(Err(..))`
/// is a planning failure that wrote nothing; `Err(Stop)` a storage failure mid-write.
fn apply_batch(
    #[cfg_attr(not(feature = "test-hooks"), allow(unused_variables))] handle: &Handle,
    tables: &mut Tables<'_>,
    batch: PreparedBatch,
    reads: &Reads,
    now: DateTime<Utc>,
) -> Result<Result<Committed>, Stop> {
    let snap = match crate::records::snapshot(tables, reads)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let plan = match tierstate_core::plan::plan(batch, &snap, now) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    crate::records::store(tables, &plan)?;
    // The fault seam: a commit appending to a failing journal is abandoned after its rows
    // were written, as a storage failure mid-write would be.
    #[cfg(feature = "test-hooks")]
    if let Some(e) = plan
        .entries
        .iter()
        .find(|e| handle.failing.lock().contains(&e.stream))
    {
        return Err(Stop(tierstate_core::fault::injected(&e.stream)));
    }
    Ok(Ok(plan.committed))
}

fn delete(
    head: &mut Head<'_>,
    versions: &mut Versions<'_>,
    id: &DeploymentId,
) -> Result<bool, Stop> {
    let id = id.as_str();
    let existed = head.remove(id).map_err(|e| Stop(map(e)))?.is_some();
    let all: Vec<u64> = versions
        .range((id, 0)..=(id, u64::MAX))
        .map_err(|e| Stop(map(e)))?
        .map(|r| r.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()
        .map_err(|e| Stop(map(e)))?;
    for v in all {
        versions.remove((id, v)).map_err(|e| Stop(map(e)))?;
    }
    Ok(existed)
}
