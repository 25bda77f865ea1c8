//! Settings of the redb backend.

use std::path::PathBuf;

/// How each commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedbDurability {
    /// `Durability::Immediate` (default): fsynced before the commit returns `Ok`.
    #[default]
    Immediate,
    /// `Durability::None`: the commit is visible at once but reaches the disk only with a later
    /// immediate commit. A crash loses every commit since the last immediate one (the file stays
    /// consistent). Use only for rebuildable data or bulk loads followed by an immediate commit.
    None,
}

/// How to open a [`crate::RedbStore`].
#[derive(Debug, Clone)]
pub struct RedbConfig {
    /// Database file; created with mode 0600 if absent.
    pub path: PathBuf,
    /// Durability of each commit.
    pub durability: RedbDurability,
    /// Most queued writes committed together in one transaction.
    pub max_group: usize,
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
}

impl RedbConfig {
    /// Durable defaults for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: RedbDurability::Immediate,
            max_group: 256,
            inline_reads: true,
            inline_writes: true,
        }
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

    /// Sets the durability; see [`RedbDurability::None`] for its risk.
    pub fn durability(mut self, durability: RedbDurability) -> Self {
        self.durability = durability;
        self
    }
}
