//! Who may use a database file at once, and how a shared file keeps HOT coherent.
//!
//! Every store holds a lock on `<file>-lock` (an `flock`, released by the kernel when the
//! process dies, independent of SQLite's own locks): exclusive by default, so a second process
//! is refused at open instead of silently serving stale HOT entries; shared when every process
//! opened the file with [`Sharing::Shared`].
//!
//! A shared file has no change feed, so the manager asks a [`SharedProbe`] before every HOT
//! hit whether another process committed. `PRAGMA data_version` on a connection changes when
//! *another connection* committed; the probe's own connection cannot tell this process's
//! writer from another process, so the writer accounts for its own commits. At the start of
//! each write transaction (the file's write lock held, so nobody else can commit) it lets the
//! probe look — any change then is another process's — and notes its own connection's
//! `data_version`, which only other processes move. After the commit the probe absorbs the
//! change the writer made, and a move of the writer's counter since the start shows a commit
//! another process slipped in between.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::Connection;
use tierstate_core::{BackendErrorKind, CommitProbe, Error, Result};

use crate::error::{BACKEND, map};

/// Who may use the database file at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Only this process (default). Another process opening the file gets a `Locked` error.
    /// HOT hits cost nothing beyond the cache lookup.
    #[default]
    Exclusive,
    /// Several processes, each opened with `Shared`. Before every HOT hit the manager checks
    /// whether another process committed (one `PRAGMA data_version`, about a microsecond; see
    /// the README's bench table) and reads WARM if one did, so a hit is never older than a
    /// commit another process finished before the load began.
    Shared,
}

/// The lock file that says who uses the database.
pub(crate) struct LockFile {
    _file: File,
    path: PathBuf,
    /// This open created the lock file (it did not exist before).
    created: bool,
}

impl LockFile {
    /// Removes the lock file again if this open created it: an open that failed (a file that
    /// is not a database) leaves nothing behind.
    pub(crate) fn release_if_created(&self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-lock");
    PathBuf::from(p)
}

/// How long a conflicting lock may be held before the open is refused. A process that forks
/// (any `std::process::Command`, in this process or a library it uses) gives the child a copy of
/// every open file description, this lock's included, until the child execs: a store closed in
/// that window is still "held" for a moment. A real second owner holds it for good.
const TRANSIENT_HOLDER: Duration = Duration::from_millis(500);

impl LockFile {
    /// Takes the lock `sharing` asks for, or fails with `Locked` once another holder kept it for
    /// [`TRANSIENT_HOLDER`].
    pub(crate) fn take(db: &Path, sharing: Sharing) -> Result<Self> {
        let path = lock_path(db);
        let io = |what: &str, e: std::io::Error| Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!("cannot {what} {}: {e}", path.display()),
            source: Some(Box::new(e)),
        };
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("create", e))?;
        let deadline = Instant::now() + TRANSIENT_HOLDER;
        let taken = loop {
            let taken = match sharing {
                Sharing::Exclusive => file.try_lock(),
                Sharing::Shared => file.try_lock_shared(),
            };
            match taken {
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                other => break other,
            }
        };
        match taken {
            Ok(()) => Ok(Self {
                _file: file,
                path,
                created,
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Backend {
                backend: BACKEND,
                kind: BackendErrorKind::Locked,
                message: match sharing {
                    Sharing::Exclusive => format!(
                        "{} is in use by another store (process, or an earlier open in this one); \
                         to let several processes share it, open it with Sharing::Shared in every one",
                        db.display()
                    ),
                    Sharing::Shared => format!(
                        "{} is held exclusively by another process (opened without Sharing::Shared)",
                        db.display()
                    ),
                },
                source: None,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io("lock", e)),
        }
    }
}

/// `PRAGMA data_version` of `conn`.
fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(map)
}

struct ProbeState {
    conn: Connection,
    /// The probe connection's `data_version` when last looked at.
    known: i64,
    /// How many times another process may have committed.
    foreign: u64,
}

/// The commit probe of a shared file; see the module docs.
pub(crate) struct SharedProbe {
    state: Mutex<ProbeState>,
}

impl std::fmt::Debug for SharedProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedProbe").finish_non_exhaustive()
    }
}

impl SharedProbe {
    pub(crate) fn new(conn: Connection) -> Result<Self> {
        let known = data_version(&conn)?;
        Ok(Self {
            state: Mutex::new(ProbeState {
                conn,
                known,
                foreign: 0,
            }),
        })
    }

    /// Another process committed (seen by the writer).
    pub(crate) fn foreign_commit(&self) {
        self.state.lock().foreign += 1;
    }

    /// The writer committed: the change the probe will see next is this process's own.
    pub(crate) fn absorb_own(&self) {
        let mut st = self.state.lock();
        match data_version(&st.conn) {
            Ok(v) => st.known = v,
            // Cannot tell: count it as foreign, which only costs a WARM read.
            Err(_) => st.foreign += 1,
        }
    }
}

impl CommitProbe for SharedProbe {
    fn foreign_epoch(&self) -> Result<u64> {
        let mut st = self.state.lock();
        let v = data_version(&st.conn)?;
        if v != st.known {
            st.known = v;
            st.foreign += 1;
        }
        Ok(st.foreign)
    }
}

/// The writer's side: its own connection's `data_version`, which only other processes move.
pub(crate) struct WriterWatch {
    last: i64,
}

impl WriterWatch {
    pub(crate) fn new(conn: &Connection) -> Result<Self> {
        Ok(Self {
            last: data_version(conn)?,
        })
    }

    /// At the start of a write transaction: lets the probe count what other processes
    /// committed, and notes the writer's own counter.
    pub(crate) fn begin(&mut self, conn: &Connection, probe: &SharedProbe) {
        let _ = probe.foreign_epoch();
        match data_version(conn) {
            Ok(v) => self.last = v,
            Err(_) => probe.foreign_commit(),
        }
    }

    /// After a commit: tells the probe if another process committed since `begin`.
    pub(crate) fn check(&mut self, conn: &Connection, probe: &SharedProbe) {
        match data_version(conn) {
            Ok(v) if v == self.last => {}
            Ok(v) => {
                self.last = v;
                probe.foreign_commit();
            }
            Err(_) => probe.foreign_commit(),
        }
    }
}
