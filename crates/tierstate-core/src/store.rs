//! The trait every WARM backend implements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{ChangeFeed, DeploymentId, Result, Retention, StateData, StateWrite, WriteBatch};

/// A durable, versioned state store. Object-safe: use it as `Arc<dyn StateStore>`.
///
/// Every record a store returns was checked against its SHA-256 checksum on the way out; a
/// damaged record is an `Integrity` error, never a value. Writes follow [`crate::cas`]: the store
/// assigns `current + 1` atomically and returns the committed record from the same transaction.
#[async_trait]
pub trait StateStore: Send + Sync + Debug + 'static {
    /// Short backend name used in errors and metrics (`"sqlite"`, `"memory"`, ...).
    fn backend(&self) -> &'static str;

    /// A feed of commits made by any process sharing this store, for HOT coherence; `None` for
    /// stores that only one process writes (embedded files).
    fn changes(&self) -> Option<ChangeFeed> {
        None
    }

    /// For stores that other processes write without a change feed (a shared SQLite file): a
    /// check the manager makes before serving a HOT hit. `None` when no other process can
    /// commit behind this one's back (the default), or when [`StateStore::changes`] covers it.
    fn commit_probe(&self) -> Option<Arc<dyn CommitProbe>> {
        None
    }

    /// The current version of a deployment, or `None` if it does not exist.
    ///
    /// # Errors
    /// `Integrity` if the stored record is damaged; `Backend` if the store fails.
    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>>;

    /// One retained version, or `None` if it never existed or was pruned.
    ///
    /// # Errors
    /// As [`StateStore::get`].
    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>>;

    /// Up to `limit` retained versions, newest first; empty if the deployment does not exist.
    ///
    /// # Errors
    /// As [`StateStore::get`]; one damaged version fails the whole call.
    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>>;

    /// Commits every member of `batch` in one transaction, or none of them. Returns the
    /// committed records in batch order.
    ///
    /// # Errors
    /// `InvalidInput` (see [`WriteBatch::prepare`]), `AlreadyExists` or `Conflict` from the first
    /// member whose expectation fails, `Backend` if the store fails. On any error nothing of the
    /// batch is written.
    async fn commit(&self, batch: WriteBatch) -> Result<Vec<StateData>>;

    /// Commits one write; see [`StateStore::commit`].
    ///
    /// # Errors
    /// As [`StateStore::commit`].
    async fn put(&self, write: StateWrite, retention: Retention) -> Result<StateData> {
        let mut committed = self
            .commit(WriteBatch::new().put(write).with_retention(retention))
            .await?;
        Ok(committed
            .pop()
            .expect("a one-member batch commits one record"))
    }

    /// Deletes a deployment's state and all its history. Returns whether anything was there.
    ///
    /// # Errors
    /// `Backend` if the store fails; then the deployment may or may not be deleted.
    async fn delete(&self, id: &DeploymentId) -> Result<bool>;

    /// Up to `limit` deployment ids in byte order, starting after `after`.
    ///
    /// # Errors
    /// `Backend` if the store fails.
    async fn list(&self, after: Option<&DeploymentId>, limit: usize) -> Result<Vec<DeploymentId>>;

    /// Bulk read of current states in id order, starting after `after`, in one round trip.
    /// A damaged record appears as its `Integrity` error in place, so one bad row does not hide
    /// the others.
    ///
    /// # Errors
    /// `Backend` if the store fails.
    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>>;
}

/// Tells whether another process may have committed since the last look; see
/// [`StateStore::commit_probe`].
pub trait CommitProbe: Send + Sync + Debug {
    /// A number that changes whenever another process may have committed since it was last
    /// returned. Must be cheap: it runs on every HOT hit.
    ///
    /// # Errors
    /// `Backend` if the check itself fails (the caller then reads WARM).
    fn foreign_epoch(&self) -> Result<u64>;
}
