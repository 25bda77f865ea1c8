//! The CAS lane: a batch that is one state update (`PutMode::Update`, nothing else) commits in
//! one round trip instead of a seven-statement transaction, grouped with every other such
//! update queued at the same moment.
//!
//! One statement per group, in autocommit: a CTE moves each head only where it still stands at
//! the expected version, inserts those versions, prunes what retention drops and queues the
//! NOTIFY; the server's commit makes all of it durable at once. An update whose head had moved,
//! or a group that lost a race (deadlock), goes back to the general transaction path, which
//! locks, re-reads and reports the exact conflict. Up to [`IN_FLIGHT`] groups run at once; what
//! arrives meanwhile forms the next group, as the embedded backends' writer threads do.
//!
//! A write that finds the lane idle (no other lane write in flight) commits on the caller's own
//! task instead: handing it to the lane's task and being woken by the group's would cost two
//! task wake-ups, often across CPUs. A group of one runs [`SQL_ONE`], the same statement with
//! plain parameters, whose plan reaches the rows by primary key instead of hashing arrays.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::DateTime;
use tierstate_core::group;
use tierstate_core::plan::{Snapshot, plan};
use tierstate_core::{
    BackendErrorKind, Committed, DeploymentId, Error, PreparedBatch, PutMode, Result, commit_time,
};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::BACKEND;
use crate::error::{in_flight, lost_race, not_applied};
use crate::fast::Fast;
use crate::heads::Heads;
use crate::notify::NOTIFY_CHANNEL;

/// Groups committing at once (each holds one pooled connection while it does). Two: the
/// server's WAL flush already overlaps them, and fewer, bigger groups spend less of a 2-core
/// machine per update (64 writers: about 25,000 updates/s with 2, 20,000 with 4).
const IN_FLIGHT: usize = 2;
/// Most updates in one statement.
const MAX_GROUP: usize = 512;

/// How the lane finished with a batch.
pub(crate) enum Outcome {
    /// Committed, or failed in a way the general path would not change.
    Done(Result<Committed>),
    /// Not applied: run it through the general transaction path.
    Fallback(PreparedBatch),
}

struct Job {
    batch: PreparedBatch,
    reply: oneshot::Sender<Outcome>,
}

/// The queue into the lane's task; the task ends when the last store clone drops this.
pub(crate) struct Lane {
    queue: mpsc::UnboundedSender<Job>,
    heads: Arc<Heads>,
    fast: Arc<Fast>,
    /// Lane writes submitted and not yet answered (inline or queued).
    busy: AtomicUsize,
}

/// Counts a submitted write until its answer (or its caller's cancellation).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lane {
    /// Starts the lane's task on the current runtime.
    pub(crate) fn start(heads: Arc<Heads>, fast: Arc<Fast>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(fast.clone(), heads.clone(), rx));
        Self {
            queue,
            heads,
            fast,
            busy: AtomicUsize::new(0),
        }
    }

    /// True if `batch` is a single state update and nothing else.
    pub(crate) fn takes(batch: &PreparedBatch) -> bool {
        batch.writes.len() == 1
            && matches!(batch.writes[0].mode, PutMode::Update { .. })
            && batch.documents.is_empty()
            && batch.removals.is_empty()
            && batch.appends.is_empty()
            && batch.checks.is_empty()
    }

    /// Commits `batch` (one that [`Lane::takes`]) in the next group.
    pub(crate) async fn submit(&self, batch: PreparedBatch) -> Outcome {
        let idle = self.busy.fetch_add(1, Ordering::AcqRel) == 0;
        let _busy = Busy(&self.busy);
        let (reply, done) = oneshot::channel();
        if idle {
            // Nothing to group with: commit on this task, a group of one.
            commit(
                Via::Fast(&self.fast),
                &self.heads,
                vec![Job { batch, reply }],
            )
            .await;
        } else if let Err(mpsc::error::SendError(job)) = self.queue.send(Job { batch, reply }) {
            return Outcome::Fallback(job.batch);
        }
        match done.await {
            Ok(outcome) => outcome,
            // The group was dropped mid-flight (its runtime is shutting down).
            Err(_) => Outcome::Done(Err(Error::Backend {
                backend: BACKEND,
                kind: BackendErrorKind::ConnectionLost,
                message: "the runtime shut down while the write was in flight; its outcome is \
                          unknown: read the state back"
                    .into(),
                source: None,
            })),
        }
    }
}

async fn run(fast: Arc<Fast>, heads: Arc<Heads>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    // Updates of a deployment already in the forming group wait for the next one: one
    // statement must not move a head twice.
    let mut carried: VecDeque<Job> = VecDeque::new();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        let mut ids = HashSet::from([first.batch.writes[0].deployment_id.clone()]);
        let mut group = vec![first];
        let mut later = Vec::new();
        while group.len() < MAX_GROUP {
            let Some(job) = carried.pop_front().or_else(|| rx.try_recv().ok()) else {
                break;
            };
            if ids.insert(job.batch.writes[0].deployment_id.clone()) {
                group.push(job);
            } else {
                later.push(job);
            }
        }
        carried.extend(later);
        let (fast, heads) = (fast.clone(), heads.clone());
        tokio::spawn(async move {
            commit(Via::Pool(&fast), &heads, group).await;
            drop(permit);
        });
    }
}

/// The group's statement. `$1..$8`: one array element per update; `$9`: the NOTIFY channel.
const SQL: &str = "WITH a AS (
    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::int[], $5::text[],
        $6::bigint[], $7::bytea[], $8::bigint[])
        AS a(id, expected, version, schema_version, checksum, updated_at, body, prune_below)
), h AS (
    UPDATE ts_head t SET version = a.version FROM a
    WHERE t.deployment_id = a.id AND t.version = a.expected
    RETURNING t.deployment_id, t.created_at
), v AS (
    INSERT INTO ts_version (deployment_id, version, schema_version, checksum, updated_at, body)
    SELECT a.id, a.version, a.schema_version, a.checksum, a.updated_at, a.body
    FROM a JOIN h ON h.deployment_id = a.id
), p AS (
    DELETE FROM ts_version d USING a, h
    WHERE h.deployment_id = a.id AND d.deployment_id = a.id AND d.version < a.prune_below
), n AS (
    SELECT pg_notify($9, current_schema() || ' ' || a.version::text || ' ' || a.id)
    FROM a JOIN h ON h.deployment_id = a.id
)
SELECT h.deployment_id, h.created_at, (SELECT count(*) FROM n) FROM h";

/// [`SQL`] for a group of one, with the same parameters as plain values: every step reaches
/// its rows through the primary key, where the array form plans hash joins over `UNNEST`.
const SQL_ONE: &str = "WITH h AS (
    UPDATE ts_head SET version = $3::bigint
    WHERE deployment_id = $1::text AND version = $2::bigint
    RETURNING deployment_id, created_at
), v AS (
    INSERT INTO ts_version (deployment_id, version, schema_version, checksum, updated_at, body)
    SELECT h.deployment_id, $3::bigint, $4::int, $5::text, $6::bigint, $7::bytea FROM h
), p AS (
    DELETE FROM ts_version
    WHERE deployment_id = $1::text AND version < $8::bigint AND EXISTS (SELECT 1 FROM h)
), n AS (
    SELECT pg_notify($9, current_schema() || ' ' || $3::bigint::text || ' ' || h.deployment_id)
    FROM h
)
SELECT h.deployment_id, h.created_at, (SELECT count(*) FROM n) FROM h";

/// Where a group gets its connection.
enum Via<'a> {
    /// A connection from the pool (pinged while an outage is unchecked).
    Pool(&'a Fast),
    /// The kept connection if free.
    Fast(&'a Fast),
}

async fn commit(via: Via<'_>, heads: &Heads, group: Vec<Job>) {
    let now = commit_time();
    // Each update planned as if its head stands where the caller expects; the statement
    // applies it only if that is still true.
    let mut planned = Vec::with_capacity(group.len());
    for job in group {
        let w = &job.batch.writes[0];
        let PutMode::Update { expected } = w.mode else {
            let _ = job.reply.send(Outcome::Fallback(job.batch));
            continue;
        };
        let mut snap = Snapshot::default();
        snap.states.insert(w.deployment_id.clone(), (expected, 0));
        match plan(job.batch.clone(), &snap, now) {
            Ok(p) => planned.push((job, expected, p)),
            Err(e) => {
                let _ = job.reply.send(Outcome::Done(Err(e)));
            }
        }
    }
    if planned.is_empty() {
        return;
    }
    let rows = planned.iter().map(|(_, e, p)| (*e, &p.states[0]));
    let n = planned.len();
    let (mut ids, mut expected, mut versions, mut schemas) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut sums, mut times, mut bodies, mut prunes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (e, w) in rows {
        ids.push(w.address.as_str());
        expected.push(i64_of(e));
        versions.push(i64_of(w.version));
        schemas.push(i32::try_from(w.schema_version).unwrap_or(i32::MAX));
        sums.push(w.checksum.as_str());
        times.push(w.updated_us);
        bodies.push(w.body.as_slice());
        prunes.push(w.prune_below.map(i64_of));
    }
    let conn = match via {
        Via::Pool(fast) => fast.pooled().await,
        Via::Fast(fast) => fast.acquire().await,
    };
    let result = match conn {
        Err(e) => Err((false, e)),
        Ok(mut c) => {
            let out = if n == 1 {
                sqlx::query_as::<_, (String, i64, i64)>(SQL_ONE)
                    .bind(ids[0])
                    .bind(expected[0])
                    .bind(versions[0])
                    .bind(schemas[0])
                    .bind(sums[0])
                    .bind(times[0])
                    .bind(bodies[0])
                    .bind(prunes[0])
                    .bind(NOTIFY_CHANNEL)
                    .fetch_all(&mut *c)
                    .await
            } else {
                sqlx::query_as::<_, (String, i64, i64)>(SQL)
                    .bind(&ids)
                    .bind(&expected)
                    .bind(&versions)
                    .bind(&schemas)
                    .bind(&sums)
                    .bind(&times)
                    .bind(&bodies)
                    .bind(&prunes)
                    .bind(NOTIFY_CHANNEL)
                    .fetch_all(&mut *c)
                    .await
            };
            match out {
                Ok(rows) => Ok(rows),
                Err(e) => {
                    c.after_error(&e);
                    Err((true, e))
                }
            }
        }
    };
    drop((ids, sums, bodies));
    let moved: HashMap<String, i64> = match result {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, created, _)| (id, created))
            .collect(),
        Err((sent, e)) => {
            let race = lost_race(&e);
            let err = if sent { in_flight(e) } else { not_applied(e) };
            for (job, _, _) in planned {
                let out = if race {
                    Outcome::Fallback(job.batch)
                } else {
                    Outcome::Done(Err(group::replicate(BACKEND, &err)))
                };
                let _ = job.reply.send(out);
            }
            return;
        }
    };
    for (job, _, mut p) in planned {
        let id: &DeploymentId = &job.batch.writes[0].deployment_id;
        let out = match moved.get(id.as_str()) {
            Some(&created) => {
                if let Some(w) = p.states.first_mut() {
                    w.created_us = created;
                }
                heads.committed(&p);
                if let (Some(s), Some(at)) = (
                    p.committed.states.first_mut(),
                    DateTime::from_timestamp_micros(created),
                ) {
                    s.created_at = at;
                }
                Outcome::Done(Ok(p.committed))
            }
            None => Outcome::Fallback(job.batch),
        };
        let _ = job.reply.send(out);
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
