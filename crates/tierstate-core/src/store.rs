//! The trait every WARM backend implements.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::journal::{Append, Appended, JournalInfo, JournalPage, JournalQuery, TruncateBefore};
use crate::{
    ChangeFeed, Committed, DeploymentId, DocAddr, DocWrite, Document, Error, KeyRange, Name,
    Result, Retention, StateData, StateWrite, StoredDoc, StreamAddr, Target, Tier, WriteBatch,
};

/// A durable store of versioned state, versioned documents and hash-chained journals, all
/// committed together by [`StateStore::write`]. Object-safe: use it as `Arc<dyn StateStore>`.
///
/// Every record a store returns was checked against its SHA-256 checksum on the way out; a
/// damaged record is an `Integrity` error, never a value. Writes follow [`crate::cas`]: the store
/// assigns `current + 1` atomically and returns the committed record from the same transaction.
#[async_trait]
pub trait StateStore: Send + Sync + Debug + 'static {
    /// Short backend name used in errors and metrics (`"sqlite"`, `"memory"`, ...).
    fn backend(&self) -> &'static str;

    /// How this process's commits were grouped into transactions, for a backend with a
    /// writer thread that groups them (`None` for one that does not).
    fn group_stats(&self) -> Option<crate::group::GroupStats> {
        None
    }

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

    /// Closes the store: what is queued commits, connections close and file locks are
    /// released, so the same file or database can be opened again in this process. Later
    /// operations fail with a `Closed` error. The default has nothing to release.
    async fn close(&self) {}

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

    /// Commits every member of `batch` (states, documents, removals, journal appends) in one
    /// transaction, or none of them; under group commit, with one fsync.
    ///
    /// # Errors
    /// `InvalidInput` (see [`WriteBatch::prepare`]), `AlreadyExists`, `Conflict` or `KeyReused`
    /// from the first member whose expectation fails, `Backend` if the store fails. On any
    /// error nothing of the batch is written.
    async fn write(&self, batch: WriteBatch) -> Result<Committed>;

    /// Commits `batch` and returns its committed states in batch order; see
    /// [`StateStore::write`].
    ///
    /// # Errors
    /// As [`StateStore::write`].
    async fn commit(&self, batch: WriteBatch) -> Result<Vec<StateData>> {
        Ok(self.write(batch).await?.states)
    }

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

    /// The newest retained version of a deployment's state committed at or before `at`;
    /// `None` if it did not exist then.
    ///
    /// # Errors
    /// `NotRetained` if retention pruned the versions that would answer; as
    /// [`StateStore::get`] otherwise.
    async fn get_as_of(&self, id: &DeploymentId, at: DateTime<Utc>) -> Result<Option<StateData>>;

    /// The current version of a document, or `None`.
    ///
    /// # Errors
    /// `Integrity` if it is damaged; `Backend` if the store fails.
    async fn get_document(&self, address: &DocAddr) -> Result<Option<Document>>;

    /// Up to `limit` retained versions of a document, newest first.
    ///
    /// # Errors
    /// As [`StateStore::get_document`]; one damaged version fails the whole call.
    async fn document_history(&self, address: &DocAddr, limit: usize) -> Result<Vec<Document>>;

    /// The newest retained version of a document committed at or before `at`.
    ///
    /// # Errors
    /// As [`StateStore::get_as_of`].
    async fn document_as_of(
        &self,
        address: &DocAddr,
        at: DateTime<Utc>,
    ) -> Result<Option<Document>>;

    /// One retained version of a document, or `None` if it never existed or was pruned: what
    /// a verifier reads to get past a damaged version of a document's history.
    ///
    /// # Errors
    /// `Integrity` if that version is damaged; `Backend` if the store fails.
    async fn document_version(&self, address: &DocAddr, version: u64) -> Result<Option<Document>>;

    /// Up to `limit` deployments holding any record (a state, a document or a journal), in
    /// byte order, after `after`; tierstate's own records are left out. What a tool walks to
    /// see everything ([`StateStore::list`] lists only deployments with a state).
    ///
    /// # Errors
    /// `Backend` if the store fails; `Integrity` for a stored id that is not valid.
    async fn deployments(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>>;

    /// Runs the storage engine's own consistency check (SQLite's `integrity_check`, redb's
    /// check of its trees): `Ok(None)` if the backend has none to run, otherwise the problems
    /// found (empty: none). Reads only.
    ///
    /// # Errors
    /// `Backend` if the check cannot run.
    async fn check_engine(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// Writes a consistent copy of the whole store into the new file `dest` while writers go
    /// on: everything committed before the copy began is in it. Reads only.
    ///
    /// # Errors
    /// `InvalidInput` if `dest` exists, or if the backend has no file to copy (the message
    /// says what to use instead); `Backend` if the copy fails (nothing is left at `dest`).
    async fn backup_to(&self, dest: &std::path::Path) -> Result<()> {
        let _ = dest;
        Err(crate::Error::invalid(
            "backup",
            format!("the {} backend keeps no file to back up", self.backend()),
        ))
    }

    /// Stores `plan`'s rows exactly as given (versions, commit times, checksums, chain hashes
    /// and journal heads) in one transaction: how `tierstate copy` writes what it read from
    /// another store. Only for records the store does not hold yet (copy refuses a destination
    /// that holds any); each address appears at most once in a plan.
    ///
    /// # Errors
    /// `InvalidInput` if the backend cannot restore rows; `Backend` if the store fails (nothing
    /// of the plan is written).
    async fn restore(&self, plan: crate::plan::Plan) -> Result<()> {
        let _ = plan;
        Err(crate::Error::invalid(
            "restore",
            format!("the {} backend cannot restore rows", self.backend()),
        ))
    }

    /// Up to `limit` current documents of one collection inside `range`, in its key order
    /// (byte order of the keys). A damaged document appears as its `Integrity` error in place.
    /// Each bound is a seek, so a page costs the same however large the collection is.
    ///
    /// # Errors
    /// `Backend` if the store fails.
    async fn scan_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Result<Document>>> {
        let rows = self
            .scan_stored_documents(id, collection, range, limit)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| r.and_then(|d| d.verify(Tier::Warm)))
            .collect())
    }

    /// [`StateStore::scan_documents`] before verification: the rows as stored, for a caller
    /// that verifies each with [`StoredDoc::verified_body`] and decodes it straight into its
    /// own type (no JSON tree in between). A row that cannot be read is an error in place.
    ///
    /// # Errors
    /// As [`StateStore::scan_documents`].
    async fn scan_stored_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Result<StoredDoc>>>;

    /// Up to `limit` current documents of one collection in key order, starting after `after`;
    /// see [`StateStore::scan_documents`].
    ///
    /// # Errors
    /// As [`StateStore::scan_documents`].
    async fn list_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Result<Document>>> {
        self.scan_documents(id, collection, &KeyRange::after(after.cloned()), limit)
            .await
    }

    /// Up to `limit` collections of a deployment holding at least one current document, in
    /// byte order, after `after`: what a tool walks to see everything. Each name is one index
    /// seek, however many documents a collection holds.
    ///
    /// # Errors
    /// `Backend` if the store fails; `Integrity` for a stored name that is not valid.
    async fn collections(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>>;

    /// Up to `limit` journals of a deployment (every stream appended to), in byte order,
    /// after `after`.
    ///
    /// # Errors
    /// As [`StateStore::collections`].
    async fn streams(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>>;

    /// A journal's first and last sequence numbers and its length, or `None` if nothing was
    /// ever appended to it.
    ///
    /// # Errors
    /// `Integrity` if its head is damaged; `Backend` if the store fails.
    async fn journal_info(&self, stream: &StreamAddr) -> Result<Option<JournalInfo>>;

    /// One page of a journal, every entry verified (checksum, own hash, and for sequence reads
    /// every link and the head).
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit or an empty window; `Integrity` naming the stream and
    /// sequence number of a damaged, missing or reordered entry; `Backend` if the store fails.
    async fn read_journal(&self, stream: &StreamAddr, query: JournalQuery) -> Result<JournalPage>;

    /// Removes a journal's oldest entries in one transaction; the first kept entry stays
    /// verifiable through the head's anchor. Returns how many entries were removed. Their
    /// idempotency keys are forgotten with them.
    ///
    /// # Errors
    /// `Integrity` if the entry before the first kept one is damaged; `Backend` if the store
    /// fails.
    async fn truncate_journal(&self, stream: &StreamAddr, before: TruncateBefore) -> Result<u64>;

    /// Changes whenever this store commits a journal append or truncation, or another process
    /// may have (a change-feed message or gap): what [`crate::JournalTail`] waits on.
    fn journal_signal(&self) -> watch::Receiver<u64>;

    /// Commits one document write with the default retention.
    ///
    /// # Errors
    /// As [`StateStore::write`].
    async fn put_document(&self, write: DocWrite) -> Result<Document> {
        let mut c = self.write(WriteBatch::new().document(write)).await?;
        Ok(c.documents
            .pop()
            .expect("a one-member batch commits one document"))
    }

    /// Removes a document and its history; with `expected`, only if that version is stored.
    /// Returns whether it existed.
    ///
    /// # Errors
    /// `Conflict` if `expected` is not the stored version; as [`StateStore::write`].
    async fn delete_document(&self, address: &DocAddr, expected: Option<u64>) -> Result<bool> {
        let c = self
            .write(WriteBatch::new().delete_document(address.clone(), expected))
            .await?;
        Ok(c.removed.first().copied().unwrap_or(false))
    }

    /// Appends one entry.
    ///
    /// # Errors
    /// As [`StateStore::write`].
    async fn append(&self, append: Append) -> Result<Appended> {
        let mut c = self.write(WriteBatch::new().append(append)).await?;
        Ok(c.entries
            .pop()
            .expect("a one-member batch appends one entry"))
    }

    /// The journal as it stood at `at`: up to `limit` entries from the first retained one,
    /// ending with the last entry committed at or before `at` (commit times never decrease
    /// along a stream, so this is a binary search of point reads).
    ///
    /// # Errors
    /// `NotRetained` if truncation removed every entry committed by then; as
    /// [`StateStore::read_journal`].
    async fn journal_as_of(
        &self,
        stream: &StreamAddr,
        at: DateTime<Utc>,
        limit: usize,
    ) -> Result<JournalPage> {
        let Some(info) = self.journal_info(stream).await? else {
            return Ok(JournalPage::empty());
        };
        let commit_of = |seq: u64| async move {
            let page = self
                .read_journal(
                    stream,
                    JournalQuery::Range {
                        from: seq,
                        to: seq,
                        descending: false,
                        limit: 1,
                    },
                )
                .await?;
            page.entries.first().map(|e| e.commit_time).ok_or_else(|| {
                crate::journal::integrity(
                    stream,
                    seq,
                    crate::Tier::Warm,
                    format!("entry {seq}"),
                    "missing".into(),
                )
            })
        };
        // Largest seq in [first, last] with commit_time <= at.
        let (mut lo, mut hi) = (info.first_seq, info.last_seq);
        let mut found = None;
        while lo <= hi {
            let mid = lo + (hi - lo) / 2;
            if commit_of(mid).await? <= at {
                found = Some(mid);
                lo = mid + 1;
            } else if mid == 0 {
                break;
            } else {
                hi = mid - 1;
            }
        }
        match found {
            Some(last) => {
                self.read_journal(
                    stream,
                    JournalQuery::Range {
                        from: info.first_seq,
                        to: last,
                        descending: false,
                        limit,
                    },
                )
                .await
            }
            None if info.first_seq > 1 => Err(Error::NotRetained {
                deployment_id: stream.deployment_id.clone(),
                target: Target::journal(stream),
                at,
            }),
            None => Ok(JournalPage::empty()),
        }
    }

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
