//! [`Tierstate`]: the front door. Open it from a URL (or a builder); it owns the WARM store,
//! HOT, metrics, payload migrations and tracing, and hands out every domain of a deployment.
//! Every write of every domain goes through its one commit path, so HOT is never older than a
//! commit made through the same handle, payload migrations apply to every state read, and every
//! operation is metered under its domain's name.

use std::sync::Arc;

#[cfg(any(
    feature = "strategy",
    feature = "orders",
    feature = "accounting",
    feature = "positions"
))]
use tierstate_core::DeploymentId;
use tierstate_core::{Committed, Result, StateStore, WriteBatch};

use crate::door::Door;
use crate::{Metrics, StateManager, StateManagerBuilder};

/// How many days of portfolio snapshots [`Tierstate::cleanup_old_snapshots`] keeps when not
/// told (seed 000's default).
#[cfg(feature = "accounting")]
pub const DEFAULT_SNAPSHOT_RETENTION_DAYS: u32 = 7;

/// The front door: one handle per process and store. Clone it freely; clones share
/// everything.
///
/// ```no_run
/// # async fn demo() -> tierstate::Result<()> {
/// use tierstate::{DeploymentId, Tierstate};
/// use serde_json::json;
///
/// let ts = Tierstate::open("sqlite:strategies.db").await?;
/// let id = DeploymentId::new("eth-basis")?;
/// let v1 = ts.state().create(&id, json!({"position": "0"}).as_object().unwrap().clone()).await?;
/// assert_eq!(v1.version, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Tierstate {
    manager: StateManager,
}

impl Tierstate {
    /// Opens the store at `url` (`sqlite:PATH`, `redb:PATH`, `postgres://…[?schema=S]`,
    /// `memory:`) with the default options: HOT on, warm-up on, the default retention.
    ///
    /// # Errors
    /// `InvalidInput` for a URL this build cannot open; what the backend's open fails with.
    pub async fn open(url: &str) -> Result<Self> {
        Self::builder().url(url)?.open().await
    }

    /// Starts configuring a handle (the options of [`StateManagerBuilder`]; end with
    /// [`StateManagerBuilder::open`]).
    pub fn builder() -> StateManagerBuilder {
        StateManagerBuilder::default()
    }

    /// A handle over a manager already built.
    pub fn from_manager(manager: StateManager) -> Self {
        Self { manager }
    }

    /// The state calls: load, create, update, compare-and-swap with retries, delete, history.
    pub fn state(&self) -> &StateManager {
        &self.manager
    }

    /// The metrics of every operation through this handle, each under its domain's name.
    pub fn metrics(&self) -> &Metrics {
        self.manager.metrics()
    }

    /// The records as a [`StateStore`] whose reads and writes all go through this handle,
    /// metered as `domain`: what a domain of your own builds on.
    pub fn records(&self, domain: &'static str) -> Arc<dyn StateStore> {
        Door::open(self.manager.clone(), domain)
    }

    /// Commits a batch (any mix of states, documents, removals, appends, guards; any domain's
    /// plans added to it) in one transaction through the one commit path.
    ///
    /// # Errors
    /// As [`StateStore::write`].
    pub async fn commit(&self, batch: WriteBatch) -> Result<Committed> {
        self.manager.write(batch, "commit").await
    }

    /// Closes the handle and every clone of it: queued writes commit, connections close and
    /// file locks are released, so the same file reopens in this process. Later operations
    /// fail with a `Closed` error.
    pub async fn close(&self) {
        self.manager.close().await;
    }

    /// The WARM store underneath, bypassing HOT and metrics (for tools only).
    pub fn warm(&self) -> &Arc<dyn StateStore> {
        self.manager.warm()
    }

    /// A strategy's per-tick persistence for `deployment`.
    #[cfg(feature = "strategy")]
    pub fn strategy<S: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        deployment: &DeploymentId,
    ) -> tierstate_strategy::StrategyStore<S> {
        tierstate_strategy::StrategyStore::new(self.records("strategy"), deployment)
    }

    /// Takes `deployment`'s writer lease (one writer per deployment).
    ///
    /// # Errors
    /// As [`tierstate_strategy::Lease::take`].
    #[cfg(feature = "strategy")]
    pub async fn lease(
        &self,
        deployment: &DeploymentId,
        ttl: std::time::Duration,
    ) -> Result<tierstate_strategy::Lease> {
        tierstate_strategy::Lease::take(&*self.records("lease"), deployment, ttl).await
    }

    /// `deployment`'s order intents, actual orders and order journals.
    #[cfg(feature = "orders")]
    pub fn orders(&self, deployment: &DeploymentId) -> tierstate_orders::OrderStore {
        tierstate_orders::OrderStore::new(self.records("orders"), deployment)
    }

    /// `deployment`'s transaction ledger.
    #[cfg(feature = "accounting")]
    pub fn ledger(&self, deployment: &DeploymentId) -> tierstate_accounting::Ledger {
        tierstate_accounting::Ledger::new(self.records("ledger"), deployment)
    }

    /// `deployment`'s portfolio snapshots, NAV series and metrics.
    #[cfg(feature = "accounting")]
    pub fn portfolio(&self, deployment: &DeploymentId) -> tierstate_accounting::Portfolio {
        tierstate_accounting::Portfolio::new(self.records("portfolio"), deployment)
    }

    /// Removes, in every deployment of the store, the portfolio snapshots older than
    /// `retention_days` (default [`DEFAULT_SNAPSHOT_RETENTION_DAYS`], as seed 000's
    /// `cleanup_old_snapshots`) and returns how many went. Each deployment's removal is one
    /// transaction and keeps its lifetime NAV fold.
    ///
    /// # Errors
    /// `Store` if listing or a removal fails (deployments before it stay cleaned).
    #[cfg(feature = "accounting")]
    pub async fn cleanup_old_snapshots(
        &self,
        retention_days: impl Into<Option<u32>>,
    ) -> tierstate_accounting::Result<u64> {
        let days = retention_days
            .into()
            .unwrap_or(DEFAULT_SNAPSHOT_RETENTION_DAYS);
        let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        let mut removed = 0;
        let mut after: Option<DeploymentId> = None;
        loop {
            let page = self.warm().deployments(after.as_ref(), 1000).await?;
            for id in &page {
                removed += self.portfolio(id).delete_before(before).await?;
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some(last.clone()),
                _ => return Ok(removed),
            }
        }
    }

    /// `deployment`'s CLOB orders (the one order model, kept as seed 000's calls keep them).
    #[cfg(feature = "orders")]
    pub fn clob(&self, deployment: &DeploymentId) -> tierstate_orders::ClobOrders {
        tierstate_orders::ClobOrders::new(self.records("clob"), deployment)
    }

    /// `deployment`'s position registry.
    #[cfg(feature = "accounting")]
    pub fn registry(&self, deployment: &DeploymentId) -> tierstate_accounting::Registry {
        tierstate_accounting::Registry::new(self.records("registry"), deployment)
    }

    /// `deployment`'s position and accounting events.
    #[cfg(feature = "accounting")]
    pub fn events(&self, deployment: &DeploymentId) -> tierstate_accounting::Events {
        tierstate_accounting::Events::new(self.records("events"), deployment)
    }

    /// `deployment`'s multi-chain position book. Keep the returned store (or a clone) for the
    /// strategy's life: it remembers the book it last loaded or saved, so each save writes only
    /// the positions that changed; a store made afresh for each save writes a whole snapshot.
    ///
    /// # Errors
    /// As [`tierstate_positions::PositionStore::new`].
    #[cfg(feature = "positions")]
    pub fn positions(
        &self,
        deployment: &DeploymentId,
    ) -> tierstate_positions::Result<tierstate_positions::PositionStore> {
        tierstate_positions::PositionStore::new(self.records("positions"), deployment)
    }
}

impl StateManagerBuilder {
    /// Opens the built manager as the front door.
    ///
    /// # Errors
    /// As [`StateManagerBuilder::build`].
    pub async fn open(self) -> Result<Tierstate> {
        Ok(Tierstate::from_manager(self.build().await?))
    }
}
