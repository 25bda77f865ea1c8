//! The writer thread: owns the only write connection and commits queued writes in groups.
//!
//! Every write that arrives while a commit is in flight waits in the queue; the next
//! transaction takes all of them (up to `max_group`) and ends with one COMMIT — one fsync for
//! the whole group. One member's conflict does not disturb the others: a batch is planned
//! (read and checked) before it writes, and other jobs run inside a SAVEPOINT of their own.
//! No caller hears `Ok` before that COMMIT returned.
//!
//! The fsync stays inside COMMIT (`synchronous=FULL`) on purpose. Moving it to a second thread,
//! so the next group could start while the last one synced, was measured (2026-11-22, 64
//! writers): groups shrank from 31 to 21 writes and throughput fell from 48k/s to 43k/s,
//! because on two cores the writer is CPU-bound and the fsync wait is what lets a group grow.
//! It would also let readers see a commit before it is durable.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tierstate_core::group::{self, CommitJob, GroupWriter, Reply as Done};
use tierstate_core::plan::Reads;
use tierstate_core::{
    Committed, DeploymentId, Error, PreparedBatch, Result, StreamAddr, TruncateBefore, commit_time,
};
use tokio::sync::oneshot;

use std::sync::Arc;

use crate::error::{BACKEND, map};
use crate::records::Reclaim;
use crate::sharing::{SharedProbe, WriterWatch};

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
    /// Test hook: runs raw SQL work in the writer's transaction.
    #[cfg(feature = "test-hooks")]
    Hook {
        run: HookFn,
        reply: oneshot::Sender<Result<bool>>,
    },
}

fn replicate(e: &Error) -> Error {
    group::replicate(BACKEND, e)
}

/// Test hook work run inside the writer's transaction.
#[cfg(feature = "test-hooks")]
pub(crate) type HookFn = Box<dyn FnOnce(&Connection) -> Result<bool> + Send>;

/// The writer thread that owns the write connection.
pub(crate) type Writer = GroupWriter<Job>;

/// Starts the writer thread that owns `conn`. With a probe (a shared file), the writer tells it
/// which commits were its own and which were another process's.
pub(crate) fn start(
    conn: Connection,
    max_group: usize,
    inline: bool,
    probe: Option<Arc<SharedProbe>>,
) -> Result<Writer> {
    let mut shared = match probe {
        Some(p) => Some((WriterWatch::new(&conn)?, p)),
        None => None,
    };
    GroupWriter::start(BACKEND, max_group, inline, move |group| {
        commit_group(&conn, group, shared.as_mut())
    })
}

/// Runs one statement from the connection's cache: `BEGIN`, `COMMIT` and the savepoints are
/// parsed once, not on every transaction as `execute_batch` would.
fn run(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(map)
}

fn commit_group(
    conn: &Connection,
    group: Vec<Job>,
    mut shared: Option<&mut (WriterWatch, Arc<SharedProbe>)>,
) {
    if let Err(e) = run(conn, "BEGIN IMMEDIATE") {
        for job in group {
            fail(job, &e);
        }
        return;
    }
    if let Some((watch, probe)) = shared.as_deref_mut() {
        // The file's write lock is held: what the probe sees now is other processes' work.
        watch.begin(conn, probe);
    }
    let now = commit_time();
    let mut done = Vec::with_capacity(group.len());
    let mut broken = None;
    let mut reclaim = Vec::new();
    if group.len() == 1 {
        // A lone job needs no SAVEPOINT: its transaction is its own, and a failure rolls all of
        // it back. A savepoint would make SQLite copy every page it touches into a statement
        // journal first (a temporary file once the copies pass 64 KiB).
        lone(conn, group, now, shared);
        return;
    }
    for job in group {
        if let Some(e) = &broken {
            fail(job, e);
            continue;
        }
        let job = match job {
            Job::Commit(CommitJob {
                batch,
                reads,
                reply,
            }) => {
                // A batch is planned before it writes anything: a conflict leaves no trace, so
                // it needs no savepoint of its own. A failed store (I/O, a full disk) breaks
                // the whole group's transaction instead.
                match plan_batch(conn, batch, &reads, now) {
                    Err(e) => done.push(Done::Commit(reply, Err(e))),
                    Ok(plan) => match crate::records::store(conn, &plan, &mut reclaim) {
                        Ok(()) => done.push(Done::Commit(reply, Ok(plan.committed))),
                        Err(e) => {
                            let _ = reply.send(Err(replicate(&e)));
                            broken = Some(e);
                        }
                    },
                }
                continue;
            }
            other => other,
        };
        if let Err(e) = run(conn, "SAVEPOINT job") {
            fail(job, &e);
            broken = Some(e);
            continue;
        }
        let mut mine = Vec::new();
        let result = apply(conn, job, now, &mut mine);
        let end = if result.is_ok() {
            run(conn, "RELEASE job")
        } else {
            run(conn, "ROLLBACK TO job").and_then(|()| run(conn, "RELEASE job"))
        };
        match end {
            Err(e) => broken = Some(e),
            Ok(()) if result.is_ok() => reclaim.append(&mut mine),
            Ok(()) => {}
        }
        done.push(result);
    }
    let failure = match broken {
        Some(e) => Some(e),
        None => reclaim_all(conn, &reclaim)
            .and_then(|()| run(conn, "COMMIT"))
            .err(),
    };
    finish(conn, failure, done, shared);
}

/// Commits a group of one job (the transaction is already open).
fn lone(
    conn: &Connection,
    group: Vec<Job>,
    now: DateTime<Utc>,
    shared: Option<&mut (WriterWatch, Arc<SharedProbe>)>,
) {
    let mut done = Vec::with_capacity(1);
    let mut reclaim = Vec::new();
    for job in group {
        done.push(apply(conn, job, now, &mut reclaim));
    }
    reclaim.retain(Reclaim::due_alone);
    let failure = if done.iter().all(Done::is_ok) {
        reclaim_all(conn, &reclaim)
            .and_then(|()| run(conn, "COMMIT"))
            .err()
    } else {
        run(conn, "ROLLBACK").err()
    };
    finish(conn, failure, done, shared);
}

/// Deletes the pruned rows the group's committed jobs left (outside every savepoint).
fn reclaim_all(conn: &Connection, reclaim: &[Reclaim]) -> Result<()> {
    reclaim.iter().try_for_each(|r| r.run(conn))
}

/// After the transaction ended (`failure` says how): makes sure it is closed, updates the
/// shared-file probe, and answers every job with its own result, or with `failure` if it had
/// succeeded.
fn finish(
    conn: &Connection,
    failure: Option<Error>,
    done: Vec<Done>,
    shared: Option<&mut (WriterWatch, Arc<SharedProbe>)>,
) {
    if failure.is_some() {
        // COMMIT can fail and leave the transaction open (e.g. busy): end it for sure.
        let _ = run(conn, "ROLLBACK");
    }
    if let Some((watch, probe)) = shared {
        // Before anyone hears of this commit: the probe's next change is our own, unless
        // another process committed right after us, which the writer's counter shows.
        probe.absorb_own();
        watch.check(conn, probe);
    }
    for d in done {
        d.deliver(BACKEND, failure.as_ref());
    }
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

/// Runs one job inside the open transaction.
fn apply(conn: &Connection, job: Job, now: DateTime<Utc>, reclaim: &mut Vec<Reclaim>) -> Done {
    match job {
        Job::Commit(CommitJob {
            batch,
            reads,
            reply,
        }) => Done::Commit(reply, apply_batch(conn, batch, &reads, now, reclaim)),
        Job::Truncate {
            stream,
            before,
            reply,
        } => Done::Count(reply, crate::records::truncate(conn, &stream, before)),
        Job::Delete { id, reply } => Done::Flag(reply, delete(conn, &id)),
        Job::Restore { plan, reply } => Done::Flag(
            reply,
            crate::records::store(conn, &plan, reclaim).map(|()| true),
        ),
        #[cfg(feature = "test-hooks")]
        Job::Hook { run, reply } => Done::Flag(reply, run(conn)),
    }
}

/// Reads what the batch depends on and lets the core planner decide (nothing is written).
fn plan_batch(
    conn: &Connection,
    batch: PreparedBatch,
    reads: &Reads,
    now: DateTime<Utc>,
) -> Result<tierstate_core::plan::Plan> {
    let snap = crate::records::snapshot(conn, reads)?;
    tierstate_core::plan::plan(batch, &snap, now)
}

/// Reads what the batch depends on, lets the core planner decide, and stores the plan.
fn apply_batch(
    conn: &Connection,
    batch: PreparedBatch,
    reads: &Reads,
    now: DateTime<Utc>,
    reclaim: &mut Vec<Reclaim>,
) -> Result<Committed> {
    let snap = crate::records::snapshot(conn, reads)?;
    let plan = tierstate_core::plan::plan(batch, &snap, now)?;
    crate::records::store(conn, &plan, reclaim)?;
    Ok(plan.committed)
}

fn delete(conn: &Connection, id: &DeploymentId) -> Result<bool> {
    conn.prepare_cached("DELETE FROM ts_version WHERE deployment_id = ?1")
        .and_then(|mut s| s.execute([id.as_str()]))
        .map_err(map)?;
    let heads = conn
        .prepare_cached("DELETE FROM ts_head WHERE deployment_id = ?1")
        .and_then(|mut s| s.execute([id.as_str()]))
        .map_err(map)?;
    Ok(heads > 0)
}
