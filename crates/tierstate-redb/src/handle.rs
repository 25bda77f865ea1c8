//! The database handle, and reopening it after an I/O error.
//!
//! An I/O error (a full disk, a failing device) poisons a redb `Database`: every later call
//! fails with `PreviousIo`. Recovery means dropping the handle and opening the file again (redb
//! repairs it from its last durable commit, so no acknowledged write is lost). The writer does
//! that by itself before its next group, with exponential backoff between attempts; until it
//! succeeds, callers get a retryable `Unavailable` error that says what happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase};
use tierstate_core::{BackendErrorKind, Error, Result};

use crate::error::BACKEND;

/// The open file: for writing (the store's own), or read-only (a reader beside nobody).
pub(crate) enum Db {
    /// Opened for writing.
    Rw(Database),
    /// Opened read-only: no writer, no repair, no upgrade.
    Ro(ReadOnlyDatabase),
}

impl Db {
    /// A read transaction.
    pub(crate) fn begin_read(
        &self,
    ) -> std::result::Result<ReadTransaction, redb::TransactionError> {
        match self {
            Db::Rw(d) => d.begin_read(),
            Db::Ro(d) => d.begin_read(),
        }
    }

    /// The database for writing, or the error a read-only store gives a write.
    pub(crate) fn rw(&self) -> Result<&Database> {
        match self {
            Db::Rw(d) => Ok(d),
            Db::Ro(_) => Err(crate::error::read_only()),
        }
    }
}

/// Opens the database again (from its path, or over the same storage backend in tests).
pub(crate) type Reopen = Box<dyn Fn() -> Result<Db> + Send + Sync>;

/// The shared database handle. Lock order: `recovery`, then `db`.
pub(crate) struct Handle {
    /// The file, for messages.
    pub(crate) path: std::path::PathBuf,
    db: RwLock<Option<Arc<Db>>>,
    reopen: Reopen,
    /// Mirrors `recovery.is_some()`, so the read path takes no mutex.
    poisoned: AtomicBool,
    /// Set by [`Handle::close`]: the file is closed for good.
    closed: AtomicBool,
    recovery: Mutex<Option<Recovery>>,
    /// Journals whose appends fail (the fault seam's `FailAppends`).
    #[cfg(feature = "test-hooks")]
    pub(crate) failing: Mutex<std::collections::HashSet<tierstate_core::StreamAddr>>,
}

/// Set while the handle is poisoned: why, and when to try reopening next.
struct Recovery {
    cause: String,
    last_attempt: Option<String>,
    next_try: Instant,
    delays: backon::ExponentialBackoff,
}

impl Recovery {
    fn describe(&self) -> String {
        match &self.last_attempt {
            Some(why) => format!("{}; last reopen attempt: {why}", self.cause),
            None => self.cause.clone(),
        }
    }
}

/// Drops the database once `db` is the last reference to it, waiting up to `wait` for reads
/// in flight to end (its file lock goes with it); gives it back if they did not.
fn release(mut db: Arc<Db>, wait: Duration) -> std::result::Result<(), Arc<Db>> {
    let deadline = Instant::now() + wait;
    loop {
        match Arc::try_unwrap(db) {
            Ok(only) => {
                drop(only);
                return Ok(());
            }
            Err(shared) if Instant::now() < deadline => {
                db = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(shared) => return Err(shared),
        }
    }
}

fn backoff() -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build()
}

impl Handle {
    pub(crate) fn new(db: Db, reopen: Reopen, path: std::path::PathBuf) -> Self {
        Self {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            reopen,
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            recovery: Mutex::new(None),
            #[cfg(feature = "test-hooks")]
            failing: Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn unavailable(cause: &str) -> Error {
        Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Unavailable,
            message: format!(
                "the database is being reopened after an I/O error ({cause}); nothing was written, try again"
            ),
            source: None,
        }
    }

    /// Whether an I/O error marked the file for reopening.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Closes the file for good: later operations fail with `Closed`. Waits (bounded) for
    /// reads in flight, so the file's lock is released when this returns; a read that outlives
    /// the wait releases it when it ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(old) = self.db.write().take() {
            // A read that outlives the wait releases the file when it ends.
            let _ = release(old, Duration::from_secs(5));
        }
    }

    /// The open database, or a retryable error while it is being recovered.
    pub(crate) fn current(&self) -> Result<Arc<Db>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(tierstate_core::group::closed(BACKEND));
        }
        if self.poisoned.load(Ordering::Acquire) {
            let cause = self.recovery.lock().as_ref().map(Recovery::describe);
            if let Some(cause) = cause {
                return Err(Self::unavailable(&cause));
            }
        }
        let db = self.db.read().clone();
        db.ok_or_else(|| Self::unavailable("the previous handle is still closing"))
    }

    /// Marks the handle poisoned after `e`, if it is an I/O failure; the writer recovers it.
    pub(crate) fn poisoned_by(&self, e: &Error) {
        if let Error::Backend {
            kind: BackendErrorKind::Io,
            message,
            ..
        } = e
        {
            let mut r = self.recovery.lock();
            if r.is_none() {
                tracing::warn!(error = %message, "redb I/O error: the store will reopen the file");
                *r = Some(Recovery {
                    cause: message.clone(),
                    last_attempt: None,
                    next_try: Instant::now(),
                    delays: backoff(),
                });
                self.poisoned.store(true, Ordering::Release);
            }
        }
    }

    /// Called by the writer before each group: if poisoned and the backoff allows, drops the
    /// handle and opens the file again. `Err` (retryable) while the database is not usable.
    pub(crate) fn recover(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(tierstate_core::group::closed(BACKEND));
        }
        if !self.poisoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut guard = self.recovery.lock();
        let Some(r) = guard.as_mut() else {
            return Ok(());
        };
        if Instant::now() < r.next_try {
            return Err(Self::unavailable(&r.describe()));
        }
        // Readers finish quickly; wait (bounded) until the old handle is ours alone, so the
        // file's lock is released when it drops.
        let old = self.db.write().take();
        if let Some(old) = old
            && let Err(still_shared) = release(old, Duration::from_secs(1))
        {
            *self.db.write() = Some(still_shared);
            r.next_try = Instant::now() + Duration::from_millis(50);
            return Err(Self::unavailable(&r.describe()));
        }
        match (self.reopen)() {
            Ok(db) => {
                tracing::info!(cause = %r.cause, "redb reopened after an I/O error");
                *self.db.write() = Some(Arc::new(db));
                *guard = None;
                self.poisoned.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                let delay = r.delays.next().unwrap_or(Duration::from_secs(2));
                r.next_try = Instant::now() + delay;
                r.last_attempt = Some(e.to_string());
                Err(Self::unavailable(&r.describe()))
            }
        }
    }
}
