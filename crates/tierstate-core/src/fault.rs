//! The one fault seam for tests: damage a backend's stored records the way a bad disk would, or
//! make its commits fail inside their own transaction. Every backend implements [`FaultSeam`]
//! (the durable ones under their `test-hooks` feature), so no test reaches into a backend's
//! private tables.

use async_trait::async_trait;

use crate::journal::EntryDamage;
use crate::{DeploymentId, DocAddr, Result, StreamAddr};

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Flips bits (`mask`) of one byte of a stored state version: `offset` picks a byte of the
    /// body followed by the stored checksum (wrapped over both). The newest version if
    /// `version` is `None`.
    StateBytes {
        /// The deployment.
        id: DeploymentId,
        /// The version (`None`: the newest).
        version: Option<u64>,
        /// Which byte.
        offset: usize,
        /// Which bits.
        mask: u8,
    },
    /// Flips one bit of a document's current body.
    DocumentBody(DocAddr),
    /// Deletes a document's current version row, leaving its head.
    DocumentRowGone(DocAddr),
    /// Damages one journal entry (body, checksum, chain hash, or the row itself).
    Entry {
        /// The journal.
        stream: StreamAddr,
        /// The entry.
        seq: u64,
        /// What to damage.
        damage: EntryDamage,
    },
    /// While on, every commit that appends to `stream` fails inside its own transaction, after
    /// the batch's other rows were written: the backend must roll all of it back.
    FailAppends {
        /// The journal.
        stream: StreamAddr,
        /// On or off.
        on: bool,
    },
}

/// Where a test injects a [`Fault`] into a backend.
#[async_trait]
pub trait FaultSeam: Send + Sync {
    /// Injects `fault`. `Ok(false)`: there was nothing to damage (no such record, or the
    /// backend has no such row: a document's head and body are one row in memory).
    ///
    /// # Errors
    /// What the backend's own write fails with.
    async fn inject(&self, fault: Fault) -> Result<bool>;
}

/// The error a commit fails with while [`Fault::FailAppends`] is on.
pub fn injected(stream: &StreamAddr) -> crate::Error {
    crate::Error::Backend {
        backend: "fault",
        kind: crate::BackendErrorKind::Other,
        message: format!("injected failure: appends to {stream} fail"),
        source: None,
    }
}
