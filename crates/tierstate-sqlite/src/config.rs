//! Settings of the SQLite backend.

use std::path::PathBuf;
use std::time::Duration;

use crate::Sharing;

/// How hard SQLite works to make each commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=FULL` (default): the WAL is fsynced on every commit. A save that returned
    /// `Ok` survives a process crash and a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. Survives a process crash
    /// (`kill -9`), but a power loss or OS crash can lose the most recent acknowledged commits
    /// (never corrupts the file). Roughly the cost of a write() instead of an fsync per commit.
    Normal,
}

/// How to open a [`crate::SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Database file; created with mode 0600 if absent.
    pub path: PathBuf,
    /// Durability of each commit.
    pub synchronous: Synchronous,
    /// Reader connections kept open for reuse.
    pub readers: usize,
    /// How long a write waits for another process's write lock before failing with a
    /// retryable `Busy` error.
    pub busy_timeout: Duration,
    /// Most queued writes committed together in one transaction.
    pub max_group: usize,
    /// Whether other processes may use the file too (default: no, and they are refused).
    pub sharing: Sharing,
    /// Whether point reads (`get`, `get_version`, `get_document`) run on the calling task
    /// (default: yes). From the page cache such a read takes a few microseconds, less than
    /// the hop to tokio's blocking pool costs; scans and histories always take that hop.
    pub inline_reads: bool,
    /// Whether a write that finds the writer idle commits on the calling thread (default:
    /// yes) instead of waking the writer thread and waiting to be woken by it; on a tokio
    /// multi-thread runtime it runs inside `block_in_place`, so the worker's other tasks move
    /// to another thread. Writes that arrive while one commits still queue and commit together.
    /// On a current-thread runtime writes always go to the writer thread.
    pub inline_writes: bool,
    /// Open an existing file for reading only (default: no): nothing is created, upgraded,
    /// locked or written, and the file and its directory may be read-only. Every write fails.
    pub read_only: bool,
    /// Page size in bytes of a file this store creates (default [`DEFAULT_PAGE_SIZE`], 1 KiB);
    /// a power of two from 512 to 65536. A file that already exists keeps the size it was
    /// created with: SQLite cannot change it in WAL mode.
    pub page_size: u32,
}

/// Page size of new files: 1 KiB, a quarter of SQLite's own. Every page a commit changes goes
/// to the WAL whole and is fsynced, and a tick changes a page in each of several B-trees (state,
/// history, document, journal and its indexes), so 1 KiB pages make a lone tick write about
/// 22 KB of WAL instead of 54 KB and commit about 12% faster. The cost is on reads that span
/// pages: from WARM a 1 KiB state loads about 10% slower, a 64 KiB one 14%, and a verified
/// journal range read delivers 12% fewer entries/s (the HOT tier serves repeated reads). Files
/// of large states may prefer 4096 (full bench runs; figures in the README).
pub const DEFAULT_PAGE_SIZE: u32 = 1024;

impl SqliteConfig {
    /// Durable defaults for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(10),
            max_group: 256,
            sharing: Sharing::Exclusive,
            inline_reads: true,
            inline_writes: true,
            read_only: false,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Sets read-only opening; see the `read_only` field. A read-only store reads beside a
    /// writer of any sharing mode (SQLite's own WAL locking keeps each read consistent).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets the page size of a file this store creates; see the `page_size` field and
    /// [`DEFAULT_PAGE_SIZE`] for what 1 KiB pages gain (a lone writer's small commits) and
    /// cost (reads of large states and time windows). An invalid size is refused when the
    /// store opens.
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }

    /// Sets who may use the file at once; see [`Sharing`] for what sharing costs.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }

    /// Sets the durability mode; see [`Synchronous`] for what `Normal` risks.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets the number of pooled reader connections (at least 1).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// Sets whether point reads run on the calling task. Turn it off when the file is much
    /// larger than memory, so that a point read that waits for the disk does not hold up
    /// other tasks on the same runtime worker.
    pub fn inline_reads(mut self, inline: bool) -> Self {
        self.inline_reads = inline;
        self
    }

    /// Sets whether a write that finds the writer idle commits on the calling thread; see
    /// the `inline_writes` field.
    pub fn inline_writes(mut self, inline: bool) -> Self {
        self.inline_writes = inline;
        self
    }

    /// Sets the busy timeout for cross-process write locks.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}
