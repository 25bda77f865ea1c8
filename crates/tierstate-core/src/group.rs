//! The group-commit worker shared by the embedded backends: one thread owns the write
//! connection, drains every queued job into one batch, and hands the batch to the backend, which
//! commits it in one transaction (one fsync) and answers each job.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use tokio::sync::oneshot;

use crate::{BackendErrorKind, Committed, Error, Result};

/// A worker thread that receives jobs of type `J` and processes them in groups.
pub struct GroupWriter<J> {
    backend: &'static str,
    tx: Mutex<Option<Sender<J>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<J: Send + 'static> GroupWriter<J> {
    /// Starts the thread. `commit` gets each group (at most `max_group` jobs, in arrival order)
    /// and must answer every job in it.
    ///
    /// # Errors
    /// `Backend` (`Io`) if the thread cannot be spawned.
    pub fn start(
        backend: &'static str,
        max_group: usize,
        mut commit: impl FnMut(Vec<J>) + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx): (Sender<J>, Receiver<J>) = channel();
        let max_group = max_group.max(1);
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
                    commit(group);
                }
            })
            .map_err(|e| Error::backend(backend, BackendErrorKind::Io, e))?;
        Ok(Self {
            backend,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a job.
    ///
    /// # Errors
    /// `Backend` (`Closed`) if the writer has stopped.
    pub fn send(&self, job: J) -> Result<()> {
        match &*self.tx.lock() {
            Some(tx) => tx.send(job).map_err(|_| closed(self.backend)),
            None => Err(closed(self.backend)),
        }
    }

    /// Stops taking jobs, lets the thread finish the queued ones, and waits for it.
    pub fn close(&self) {
        drop(self.tx.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
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
