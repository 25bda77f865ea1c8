//! The one commit path, as a [`StateStore`]: what every domain the handle hands out works on.
//! Writes go through [`StateManager::write`] (HOT kept fresh, payload schema stamped,
//! retention applied, metered and traced); state reads go through HOT and the payload
//! migrations; every other read goes to WARM and is metered under the domain's name.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tierstate_core::journal::{JournalInfo, JournalPage, JournalQuery};
use tierstate_core::{
    ChangeFeed, CommitProbe, Committed, DeploymentId, DocAddr, Document, KeyRange, Name, Result,
    StateData, StateStore, StoredDoc, StreamAddr, TruncateBefore, WriteBatch,
};
use tokio::sync::watch;

use crate::StateManager;
use crate::metrics::{Op, Outcome};

/// A domain's view of the handle's records.
#[derive(Clone)]
pub(crate) struct Door {
    manager: StateManager,
    domain: &'static str,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("domain", &self.domain)
            .field("warm", self.manager.warm())
            .finish()
    }
}

impl Door {
    /// The records of `manager` as `domain` sees them.
    pub(crate) fn open(manager: StateManager, domain: &'static str) -> Arc<dyn StateStore> {
        Arc::new(Self { manager, domain })
    }

    fn warm(&self) -> &Arc<dyn StateStore> {
        self.manager.warm()
    }

    /// Runs a WARM read and meters it under the domain.
    async fn read<T>(
        &self,
        op: Op,
        read: impl std::future::Future<Output = Result<T>>,
        found: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let start = Instant::now();
        let r = read.await;
        let outcome = match &r {
            Ok(v) if found(v) => Outcome::Ok,
            Ok(_) => Outcome::NotFound,
            Err(_) => Outcome::Error,
        };
        self.manager.record_domain(self.domain, op, start, outcome);
        r
    }
}

fn any<T>(_: &T) -> bool {
    true
}

fn some<T>(v: &Option<T>) -> bool {
    v.is_some()
}

#[async_trait]
impl StateStore for Door {
    /// Closes the handle this domain came from, as [`StateManager::close`] does (HOT emptied
    /// with it): a domain's view has no store of its own to close.
    async fn close(&self) {
        self.manager.close().await;
    }

    fn backend(&self) -> &'static str {
        self.warm().backend()
    }

    fn group_stats(&self) -> Option<tierstate_core::group::GroupStats> {
        self.warm().group_stats()
    }

    fn changes(&self) -> Option<ChangeFeed> {
        self.warm().changes()
    }

    fn commit_probe(&self) -> Option<Arc<dyn CommitProbe>> {
        self.warm().commit_probe()
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>> {
        // HOT, then WARM with the payload migrations (and a newer payload refused).
        Ok(self.manager.load(id).await?.map(Arc::unwrap_or_clone))
    }

    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        self.manager.load_version(id, version).await
    }

    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        self.manager.history(id, limit).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<Committed> {
        self.manager.write(batch, self.domain).await
    }

    async fn delete(&self, id: &DeploymentId) -> Result<bool> {
        self.manager.delete(id).await
    }

    async fn list(&self, after: Option<&DeploymentId>, limit: usize) -> Result<Vec<DeploymentId>> {
        self.read(Op::Catalog, self.warm().list(after, limit), any)
            .await
    }

    async fn deployments(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>> {
        self.read(Op::Catalog, self.warm().deployments(after, limit), any)
            .await
    }

    async fn get_as_of(&self, id: &DeploymentId, at: DateTime<Utc>) -> Result<Option<StateData>> {
        self.read(Op::AsOf, self.warm().get_as_of(id, at), some)
            .await
    }

    async fn get_document(&self, address: &DocAddr) -> Result<Option<Document>> {
        self.read(Op::ReadDocument, self.warm().get_document(address), some)
            .await
    }

    async fn document_version(&self, address: &DocAddr, version: u64) -> Result<Option<Document>> {
        self.read(
            Op::ReadDocument,
            self.warm().document_version(address, version),
            some,
        )
        .await
    }

    async fn document_history(&self, address: &DocAddr, limit: usize) -> Result<Vec<Document>> {
        self.read(
            Op::ReadDocument,
            self.warm().document_history(address, limit),
            any,
        )
        .await
    }

    async fn document_as_of(
        &self,
        address: &DocAddr,
        at: DateTime<Utc>,
    ) -> Result<Option<Document>> {
        self.read(
            Op::ReadDocument,
            self.warm().document_as_of(address, at),
            some,
        )
        .await
    }

    async fn scan_stored_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Result<StoredDoc>>> {
        self.read(
            Op::ScanDocuments,
            self.warm()
                .scan_stored_documents(id, collection, range, limit),
            any,
        )
        .await
    }

    async fn collections(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        self.read(Op::Catalog, self.warm().collections(id, after, limit), any)
            .await
    }

    async fn streams(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        self.read(Op::Catalog, self.warm().streams(id, after, limit), any)
            .await
    }

    async fn journal_info(&self, stream: &StreamAddr) -> Result<Option<JournalInfo>> {
        self.read(Op::Catalog, self.warm().journal_info(stream), some)
            .await
    }

    async fn read_journal(&self, stream: &StreamAddr, query: JournalQuery) -> Result<JournalPage> {
        self.read(
            Op::ReadJournal,
            self.warm().read_journal(stream, query),
            any,
        )
        .await
    }

    async fn truncate_journal(&self, stream: &StreamAddr, before: TruncateBefore) -> Result<u64> {
        self.read(
            Op::Truncate,
            self.warm().truncate_journal(stream, before),
            any,
        )
        .await
    }

    fn journal_signal(&self) -> watch::Receiver<u64> {
        self.warm().journal_signal()
    }

    async fn check_engine(&self) -> Result<Option<Vec<String>>> {
        self.warm().check_engine().await
    }

    async fn backup_to(&self, dest: &std::path::Path) -> Result<()> {
        self.warm().backup_to(dest).await
    }

    async fn restore(&self, plan: tierstate_core::plan::Plan) -> Result<()> {
        // HOT must not keep a state the restore wrote past.
        let ids: Vec<DeploymentId> = plan.states.iter().map(|w| w.address.clone()).collect();
        let r = self.warm().restore(plan).await;
        for id in &ids {
            self.manager.invalidate(id);
        }
        r
    }

    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>> {
        self.read(Op::Catalog, self.warm().scan(after, limit), any)
            .await
    }
}
