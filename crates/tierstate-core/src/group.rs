//! The group-commit worker shared by the embedded backends: one thread owns the write
//! connection, drains every queued job into one batch, and hands the batch to the backend, which
//! commits it in one transaction (one fsync) and answers each job.
//!
//! A job that finds the writer idle (nothing queued, no commit running) may instead be committed
//! on the caller's own thread: handing it to a sleeping thread and being woken by it costs two
//! cross-CPU wake-ups, which on a virtual machine are worth more than the commit's own CPU time.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use crate::plan::Reads;
use crate::{BackendErrorKind, Committed, Error, PreparedBatch, Result};

/// What commits a group: the backend's closure over its write connection. `None` once closed
/// (or after it panicked, which leaves the connection in an unknown state).
type Committer<J> = Arc<Mutex<Option<Box<dyn FnMut(Vec<J>) + Send>>>>;

/// How a writer has committed since it started: an operator reads the mean group size to see
/// whether concurrent writes share their fsyncs (and whether `max_group` caps them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Groups the writer thread handed to the backend (one transaction each; counted before
    /// the backend answers their jobs).
    pub groups: u64,
    /// Jobs in those groups.
    pub grouped: u64,
    /// Jobs committed alone on their caller's thread because the writer was idle.
    pub inline: u64,
}

impl GroupStats {
    /// Jobs per group on the writer thread (0 before its first group).
    pub fn mean_group(&self) -> f64 {
        if self.groups == 0 {
            0.0
        } else {
            self.grouped as f64 / self.groups as f64
        }
    }

    /// What happened between `earlier` and `self` (both from the same writer).
    pub fn since(&self, earlier: &GroupStats) -> GroupStats {
        GroupStats {
            groups: self.groups.saturating_sub(earlier.groups),
            grouped: self.grouped.saturating_sub(earlier.grouped),
            inline: self.inline.saturating_sub(earlier.inline),
        }
    }
}

/// The live counters behind [`GroupStats`].
#[derive(Default)]
struct Counters {
    groups: AtomicU64,
    grouped: AtomicU64,
    inline: AtomicU64,
}

/// A worker thread that receives jobs of type `J` and processes them in groups.
pub struct GroupWriter<J> {
    backend: &'static str,
    tx: Mutex<Option<Sender<J>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    commit: Committer<J>,
    /// Jobs sent to the thread and not yet committed.
    queued: Arc<AtomicUsize>,
    inline: bool,
    counters: Arc<Counters>,
}

/// Runs one group, and retires the committer if it panics (then re-raises the panic).
fn run<J>(slot: &mut Option<Box<dyn FnMut(Vec<J>) + Send>>, group: Vec<J>) -> bool {
    let Some(commit) = slot.as_mut() else {
        return false;
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| commit(group))) {
        *slot = None;
        resume_unwind(panic);
    }
    true
}

impl<J: Send + 'static> GroupWriter<J> {
    /// Starts the thread. `commit` gets each group (at most `max_group` jobs, in arrival order)
    /// and must answer every job in it. With `inline`, [`send`](Self::send) may run `commit`
    /// for a lone job on the caller's thread when the writer is idle.
    ///
    /// # Errors
    /// `Backend` (`Io`) if the thread cannot be spawned.
    pub fn start(
        backend: &'static str,
        max_group: usize,
        inline: bool,
        commit: impl FnMut(Vec<J>) + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx): (Sender<J>, Receiver<J>) = channel();
        let max_group = max_group.max(1);
        let committer: Committer<J> = Arc::new(Mutex::new(Some(Box::new(commit))));
        let queued = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(Counters::default());
        let (c, q, k) = (committer.clone(), queued.clone(), counters.clone());
        let thread = std::thread::Builder::new()
            .name(format!("tierstate-{backend}-writer"))
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < max_group {
                        match rx.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    let n = group.len();
                    // A retired committer drops the group, and with it the replies: their
                    // callers hear `Closed`.
                    let mut slot = c.lock();
                    if slot.is_some() {
                        // Counted before the commit answers anyone: whoever heard back from
                        // a job finds it in the stats.
                        k.groups.fetch_add(1, Ordering::Relaxed);
                        k.grouped.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    run(&mut slot, group);
                    drop(slot);
                    q.fetch_sub(n, Ordering::AcqRel);
                }
            })
            .map_err(|e| Error::backend(backend, BackendErrorKind::Io, e))?;
        Ok(Self {
            backend,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            commit: committer,
            queued,
            inline,
            counters,
        })
    }

    /// How this writer has committed so far.
    pub fn stats(&self) -> GroupStats {
        GroupStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            grouped: self.counters.grouped.load(Ordering::Relaxed),
            inline: self.counters.inline.load(Ordering::Relaxed),
        }
    }

    /// Hands over a job: committed at once on this thread if the writer is idle and this thread
    /// may block (not a current-thread tokio runtime; on a multi-thread one inside
    /// `block_in_place`, so the worker's other tasks move on), otherwise queued for the thread.
    ///
    /// # Errors
    /// `Backend` (`Closed`) if the writer has stopped.
    pub fn send(&self, job: J) -> Result<()> {
        let job = match self.try_inline(job) {
            Ok(done) => return done,
            Err(job) => job,
        };
        match &*self.tx.lock() {
            Some(tx) => {
                self.queued.fetch_add(1, Ordering::AcqRel);
                tx.send(job).map_err(|_| {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    closed(self.backend)
                })
            }
            None => Err(closed(self.backend)),
        }
    }

    /// Commits `job` on this thread if nothing is queued and no commit is running; gives it back
    /// otherwise.
    fn try_inline(&self, job: J) -> std::result::Result<Result<()>, J> {
        if !self.inline || self.queued.load(Ordering::Acquire) != 0 {
            return Err(job);
        }
        let blocking = match Handle::try_current() {
            Err(_) => false,
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => true,
            Ok(_) => return Err(job),
        };
        if self.tx.lock().is_none() {
            return Ok(Err(closed(self.backend)));
        }
        let Some(mut slot) = self.commit.try_lock() else {
            return Err(job);
        };
        if slot.is_some() {
            self.counters.inline.fetch_add(1, Ordering::Relaxed);
        }
        let ran = if blocking {
            tokio::task::block_in_place(|| run(&mut slot, vec![job]))
        } else {
            run(&mut slot, vec![job])
        };
        // A retired committer dropped the job's reply, so its caller hears `Closed`.
        Ok(if ran {
            Ok(())
        } else {
            Err(closed(self.backend))
        })
    }

    /// Stops taking jobs, lets the thread finish the queued ones, waits for it, and drops the
    /// committer (closing the backend's write connection) once any inline commit is done.
    pub fn close(&self) {
        drop(self.tx.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        drop(self.commit.lock().take());
    }
}

/// The error a caller gets once the writer has stopped.
pub fn closed(backend: &'static str) -> Error {
    Error::Backend {
        backend,
        kind: BackendErrorKind::Closed,
        message: "the store is closed (its writer thread has stopped)".into(),
        source: None,
    }
}

/// A copy of a group-wide failure for one member of the group (errors are not `Clone`). A
/// backend error keeps its own message, so the copy reads exactly like the original.
pub fn replicate(backend: &'static str, e: &Error) -> Error {
    let (kind, message) = match e {
        Error::Backend { kind, message, .. } => (*kind, message.clone()),
        other => (BackendErrorKind::Other, other.to_string()),
    };
    Error::Backend {
        backend,
        kind,
        message,
        source: None,
    }
}

/// A batch for a writer thread to commit, with what its plan reads worked out on the caller's
/// thread when it is queued: the writer's time is shared by every queued write.
pub struct CommitJob {
    /// The batch.
    pub batch: PreparedBatch,
    /// What the batch's plan reads.
    pub reads: Reads,
    /// Where the committed records go.
    pub reply: oneshot::Sender<Result<Committed>>,
}

impl CommitJob {
    /// A job for `batch`, its read set computed now.
    pub fn new(batch: PreparedBatch, reply: oneshot::Sender<Result<Committed>>) -> Self {
        let reads = batch.reads();
        Self {
            batch,
            reads,
            reply,
        }
    }
}

/// A job's answer, held until its group's commit is known: no caller hears `Ok` before the
/// transaction that contains its write has committed.
pub enum Reply {
    /// The committed records of a batch.
    Commit(oneshot::Sender<Result<Committed>>, Result<Committed>),
    /// A yes/no outcome (delete, test hooks).
    Flag(oneshot::Sender<Result<bool>>, Result<bool>),
    /// A count (journal truncation).
    Count(oneshot::Sender<Result<u64>>, Result<u64>),
}

impl Reply {
    /// Whether the job itself succeeded inside the transaction.
    pub fn is_ok(&self) -> bool {
        match self {
            Reply::Commit(_, r) => r.is_ok(),
            Reply::Flag(_, r) => r.is_ok(),
            Reply::Count(_, r) => r.is_ok(),
        }
    }

    /// Sends the answer; a job that succeeded inside a group whose commit then failed gets
    /// (a copy of) that failure instead.
    pub fn deliver(self, backend: &'static str, failure: Option<&Error>) {
        match (self, failure) {
            (Reply::Commit(tx, Ok(_)), Some(e)) => drop(tx.send(Err(replicate(backend, e)))),
            (Reply::Flag(tx, Ok(_)), Some(e)) => drop(tx.send(Err(replicate(backend, e)))),
            (Reply::Count(tx, Ok(_)), Some(e)) => drop(tx.send(Err(replicate(backend, e)))),
            (Reply::Commit(tx, r), _) => drop(tx.send(r)),
            (Reply::Flag(tx, r), _) => drop(tx.send(r)),
            (Reply::Count(tx, r), _) => drop(tx.send(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job: its number and where to say which thread committed it.
    type Probe = (u32, oneshot::Sender<String>);

    fn writer(inline: bool) -> GroupWriter<Probe> {
        GroupWriter::start("test", 8, inline, |group: Vec<Probe>| {
            let here = std::thread::current().name().unwrap_or("?").to_owned();
            for (_, reply) in group {
                let _ = reply.send(here.clone());
            }
        })
        .unwrap()
    }

    async fn committed_on(w: &GroupWriter<Probe>, n: u32) -> Result<String> {
        let (tx, rx) = oneshot::channel();
        w.send((n, tx))?;
        rx.await.map_err(|_| closed("test"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_writer_commits_on_the_callers_thread() {
        let w = writer(true);
        let caller = std::thread::current().name().unwrap_or("?").to_owned();
        assert_eq!(committed_on(&w, 1).await.unwrap(), caller);
        let w = writer(false);
        assert_eq!(committed_on(&w, 1).await.unwrap(), "tierstate-test-writer");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_always_queues() {
        let w = writer(true);
        assert_eq!(committed_on(&w, 1).await.unwrap(), "tierstate-test-writer");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn inline_and_queued_commits_answer_every_job() {
        let w = Arc::new(writer(true));
        let tasks: Vec<_> = (0..64)
            .map(|n| {
                let w = w.clone();
                tokio::spawn(async move {
                    let mut threads = Vec::new();
                    for i in 0..20 {
                        threads.push(committed_on(&w, n * 100 + i).await.unwrap());
                    }
                    threads
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap().len();
        }
        assert_eq!(total, 64 * 20);
        let stats = w.stats();
        assert_eq!(stats.grouped + stats.inline, 64 * 20, "{stats:?}");
        assert!(stats.groups <= stats.grouped, "{stats:?}");
        w.close();
        assert!(matches!(
            committed_on(&w, 0).await,
            Err(Error::Backend {
                kind: BackendErrorKind::Closed,
                ..
            })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stats_count_inline_commits_and_groups() {
        let w = writer(true);
        assert_eq!(w.stats(), GroupStats::default());
        assert_eq!(w.stats().mean_group(), 0.0);
        committed_on(&w, 0).await.unwrap();
        let expected = GroupStats {
            groups: 0,
            grouped: 0,
            inline: 1,
        };
        assert_eq!(w.stats(), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stats_count_the_jobs_that_waited_for_a_commit_as_one_group() {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let mut first = true;
        let w = GroupWriter::start("test", 8, false, move |group: Vec<Probe>| {
            if std::mem::take(&mut first) {
                started_tx.send(()).unwrap();
                gate.recv().unwrap();
            }
            for (_, reply) in group {
                let _ = reply.send(String::new());
            }
        })
        .unwrap();
        let (tx, held) = oneshot::channel();
        w.send((1, tx)).unwrap();
        started.recv().unwrap();
        // Five more arrive while the first commits: the thread takes them as one group.
        let waiting: Vec<_> = (2..7)
            .map(|n| {
                let (tx, rx) = oneshot::channel();
                w.send((n, tx)).unwrap();
                rx
            })
            .collect();
        release.send(()).unwrap();
        held.await.unwrap();
        for rx in waiting {
            rx.await.unwrap();
        }
        let stats = w.stats();
        let expected = GroupStats {
            groups: 2,
            grouped: 6,
            inline: 0,
        };
        assert_eq!(stats, expected);
        assert_eq!(stats.mean_group(), 3.0);
        assert_eq!(
            stats
                .since(&GroupStats {
                    groups: 1,
                    grouped: 1,
                    inline: 0
                })
                .mean_group(),
            5.0
        );
    }

    #[test]
    fn a_commit_that_panics_closes_the_writer() {
        let w = GroupWriter::start("test", 8, true, |group: Vec<Probe>| {
            assert!(group.iter().all(|(n, _)| *n != 13), "job 13");
            for (_, reply) in group {
                let _ = reply.send(String::new());
            }
        })
        .unwrap();
        let (tx, _rx) = oneshot::channel();
        let inline = std::panic::catch_unwind(AssertUnwindSafe(|| w.send((13, tx))));
        assert!(inline.is_err());
        let (tx, _rx) = oneshot::channel();
        assert!(matches!(
            w.send((1, tx)),
            Err(Error::Backend {
                kind: BackendErrorKind::Closed,
                ..
            })
        ));
    }

    #[test]
    fn outside_a_runtime_an_idle_writer_commits_inline() {
        let w = writer(true);
        let (tx, mut rx) = oneshot::channel();
        w.send((1, tx)).unwrap();
        // Committed before `send` returned.
        let here = std::thread::current().name().unwrap_or("?").to_owned();
        assert_eq!(rx.try_recv().unwrap(), here);
    }

    #[test]
    fn a_replicated_error_reads_like_the_original() {
        let e = Error::Backend {
            backend: "sqlite",
            kind: BackendErrorKind::Busy,
            message: "database is locked".into(),
            source: None,
        };
        let copy = replicate("sqlite", &e);
        assert_eq!(copy.to_string(), e.to_string());
        assert_eq!(
            copy.to_string(),
            "sqlite backend error (Busy): database is locked"
        );
        assert!(copy.is_retryable());
    }
}
