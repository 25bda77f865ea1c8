//! The position registry: one row per open (or once open) on-chain position, keyed by
//! (deployment, chain, primitive, physical identity hash), moving through a status lifecycle
//! that only goes forward, with its handle and auto-mode constraints enforced in the same
//! transaction as every change.
//!
//! # Status lifecycle
//!
//! | from \ to            | open        | closed      | reorg_invalidated |
//! |----------------------|-------------|-------------|-------------------|
//! | (no row)             | yes         | backfill    | backfill          |
//! | open                 | yes (retry) | yes         | yes               |
//! | closed               | **no**      | yes (retry) | yes               |
//! | reorg_invalidated    | **no**      | **no**      | yes (retry)       |
//!
//! A retry at the same status refreshes the payload, closing block/tx and the other fields;
//! a move back is [`AccountingError::RegistryTransition`] and changes nothing. A row can start
//! closed or invalidated only through [`Registry::insert_if_absent`] (backfill of history).
//!
//! # Constraints
//! - A handle is unique per (deployment, accounting category) among the rows that hold it.
//!   A closed or invalidated row keeps its handle until a new row claims it, which frees it
//!   from the old row in the same transaction; claiming one an open row holds is
//!   [`AccountingError::HandleTaken`].
//! - At most one open row without a handle per (deployment, chain, category, grouping key):
//!   a second is [`AccountingError::AutoModeCollision`] naming both rows.
//!
//! Layout: `registry.rows/<chain>|<primitive>|<identity>` (every row, with history),
//! `registry.open/<same key>` (a copy of each open row, for listing), `registry.handles/
//! <category>|<handle>` and `registry.auto/<chain>|<category>|<grouping key>` (the claims).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    BatchOp, DeploymentId, DocAddr, DocWrite, Document, Name, PutMode, StateStore, WriteBatch,
};

use crate::error::{AccountingError, CommitFailure, Result, retryable};
use crate::ledger::{Ledger, LedgerEntry, Recorded, from_object, to_object};
use crate::retry::Retry;
use crate::text::text_enum;
use crate::time::truncate_to_micros;

/// Collection of every registry row.
pub const ROWS: &str = "registry.rows";
/// Collection of the open rows' copies.
pub const OPEN_ROWS: &str = "registry.open";
/// Collection of handle claims.
pub const HANDLES: &str = "registry.handles";
/// Collection of open handle-less (auto-mode) claims.
pub const AUTO: &str = "registry.auto";
/// The registry row's schema; a newer one is refused.
pub const REGISTRY_SCHEMA: u64 = 1;

const PAGE: usize = 1000;

text_enum!(
    /// Where a registry row is in its lifecycle (see the module docs for the table).
    RegistryStatus, "registry status", "open, closed, reorg_invalidated" {
        /// The position exists on chain.
        Open = "open",
        /// The position was closed.
        Closed = "closed",
        /// A reorg undid the position's opening (or closing) transaction.
        ReorgInvalidated = "reorg_invalidated",
    }
);

impl RegistryStatus {
    /// True if a row may move from `from` (`None`: no row yet) to `to` on the commit path.
    pub fn allows(from: Option<Self>, to: Self) -> bool {
        use RegistryStatus::{Closed, Open, ReorgInvalidated};
        matches!(
            (from, to),
            (None, Open)
                | (Some(Open), _)
                | (Some(Closed), Closed | ReorgInvalidated)
                | (Some(ReorgInvalidated), ReorgInvalidated)
        )
    }
}

/// One position in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RegistryRow {
    /// The deployment.
    pub deployment_id: String,
    /// Chain, e.g. `arbitrum`.
    pub chain: String,
    /// Primitive, e.g. `uniswap_v3_lp`.
    pub primitive: String,
    /// Hash of the position's physical identity (e.g. NFT id and pool).
    pub identity_hash: String,
    /// Lifecycle status.
    pub status: RegistryStatus,
    /// What the strategy keeps about the position.
    pub payload: Map<String, Value>,
    /// The holding itself, as the one position record, if the strategy keeps it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<tierstate_positions::PositionRecord>,
    /// The strategy's handle for it, unique per category among rows holding it.
    pub handle: Option<String>,
    /// Accounting category, e.g. `lp`.
    pub category: String,
    /// Semantic grouping key (e.g. the pool): one open handle-less row per group.
    pub grouping_key: String,
    /// Block of the closing transaction.
    pub closing_block: Option<u64>,
    /// The closing transaction.
    pub closing_tx: Option<String>,
    /// The last block reconciliation checked the row at.
    pub last_reconciled_block: Option<u64>,
    /// Versions of the policies that wrote the row.
    pub policy_versions: Map<String, Value>,
    /// When this change was made (UTC, microseconds).
    pub updated_at: DateTime<Utc>,
}

impl RegistryRow {
    /// An open row with an empty payload and no handle.
    ///
    /// # Errors
    /// `InvalidInput` naming a bad field.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        deployment_id: impl Into<String>,
        chain: impl Into<String>,
        primitive: impl Into<String>,
        identity_hash: impl Into<String>,
        category: impl Into<String>,
        grouping_key: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let r = Self {
            deployment_id: deployment_id.into(),
            chain: chain.into(),
            primitive: primitive.into(),
            identity_hash: identity_hash.into(),
            status: RegistryStatus::Open,
            payload: Map::new(),
            position: None,
            handle: None,
            category: category.into(),
            grouping_key: grouping_key.into(),
            closing_block: None,
            closing_tx: None,
            last_reconciled_block: None,
            policy_versions: Map::new(),
            updated_at: truncate_to_micros(at),
        };
        r.validate()?;
        Ok(r)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput` naming the field.
    pub fn validate(&self) -> Result<()> {
        crate::text::check_id("deployment id", &self.deployment_id)?;
        for (field, v) in [
            ("chain", &self.chain),
            ("primitive", &self.primitive),
            ("category", &self.category),
        ] {
            token(field, v, 64)?;
        }
        for (field, v) in [
            ("identity hash", &self.identity_hash),
            ("grouping key", &self.grouping_key),
        ] {
            part(field, v)?;
        }
        if let Some(h) = &self.handle {
            part("handle", h)?;
        }
        if let Some(tx) = &self.closing_tx {
            crate::text::check_id("closing tx", tx)?;
        }
        if let Some(p) = &self.position {
            p.validate()
                .map_err(|e| AccountingError::invalid("position", e.to_string()))?;
        }
        Ok(())
    }

    /// The row's key in the registry: `chain|primitive|identity hash`.
    pub fn key(&self) -> String {
        row_key(&self.chain, &self.primitive, &self.identity_hash)
    }

    fn auto_key(&self) -> Option<String> {
        (self.status == RegistryStatus::Open && self.handle.is_none())
            .then(|| format!("{}|{}|{}", self.chain, self.category, self.grouping_key))
    }

    fn handle_key(&self) -> Option<String> {
        self.handle
            .as_ref()
            .map(|h| format!("{}|{h}", self.category))
    }
}

/// The key of a row: `chain|primitive|identity hash`.
pub fn row_key(chain: &str, primitive: &str, identity_hash: &str) -> String {
    format!("{chain}|{primitive}|{identity_hash}")
}

/// 1..=`max` bytes of `A-Z a-z 0-9 _ . : -`.
fn token(field: &'static str, v: &str, max: usize) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if v.is_empty() || v.len() > max || !v.chars().all(ok) {
        return Err(AccountingError::invalid(
            field,
            format!("{v:?}: must be 1..={max} bytes of A-Z a-z 0-9 _ . : -"),
        ));
    }
    Ok(())
}

/// 1..=64 bytes with no `|` (the key separator) and no control character.
fn part(field: &'static str, v: &str) -> Result<()> {
    if v.is_empty() || v.len() > 64 || v.contains('|') || v.chars().any(char::is_control) {
        return Err(AccountingError::invalid(
            field,
            format!("{v:?}: must be 1..=64 bytes without '|' or control characters"),
        ));
    }
    Ok(())
}

/// A row as stored, with the version its next change must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// The row.
    pub row: RegistryRow,
    /// Its document version.
    pub version: u64,
}

/// Which open rows [`Registry::open_rows`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilter {
    /// Only this chain.
    pub chain: Option<String>,
    /// Only this primitive.
    pub primitive: Option<String>,
    /// Only this accounting category.
    pub category: Option<String>,
}

/// What a commit adds besides the registry change.
#[derive(Debug, Clone, Copy)]
pub enum CommitMode<'a> {
    /// The ledger entry of the action that changed the position: both land or neither.
    Ledger(&'a LedgerEntry),
    /// Reconciliation: the registry change alone, with no ledger entry.
    Reconciliation,
}

/// What [`Registry::commit_ledger_and_registry`] committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCommitted {
    /// The row as stored now.
    pub row: StoredRow,
    /// The ledger append (`None` in reconciliation mode).
    pub ledger: Option<Recorded>,
}

/// A planned registry change (with its claims), for a batch.
#[derive(Debug, Clone)]
pub struct RegistryChange {
    /// The row as stored once committed.
    pub stored: StoredRow,
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for RegistryChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// One deployment's position registry on any [`StateStore`].
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    ledger: Ledger,
    rows: Name,
    open: Name,
    handles: Name,
    auto: Name,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The registry of `deployment` in `store` (its ledger is [`Ledger::new`] on the same).
    ///
    /// # Panics
    /// Never: the collection names are constants, valid by construction.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        let name = |s: &str| Name::collection(s).expect("constant collection names are valid");
        Self {
            ledger: Ledger::new(store.clone(), deployment),
            store,
            deployment: deployment.clone(),
            rows: name(ROWS),
            open: name(OPEN_ROWS),
            handles: name(HANDLES),
            auto: name(AUTO),
        }
    }

    /// The ledger committed with this registry.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn addr(&self, collection: &Name, key: &str) -> Result<DocAddr> {
        Ok(DocAddr {
            deployment_id: self.deployment.clone(),
            collection: collection.clone(),
            key: Name::key(key)?,
        })
    }

    /// The row at (chain, primitive, identity), if any.
    ///
    /// # Errors
    /// `InvalidInput` for bad parts; `Store` for I/O or damage; `NewerSchema`.
    pub async fn get(
        &self,
        chain: &str,
        primitive: &str,
        identity_hash: &str,
    ) -> Result<Option<StoredRow>> {
        token("chain", chain, 64)?;
        token("primitive", primitive, 64)?;
        part("identity hash", identity_hash)?;
        self.get_key(&row_key(chain, primitive, identity_hash))
            .await
    }

    pub(crate) async fn get_key(&self, key: &str) -> Result<Option<StoredRow>> {
        let at = self.addr(&self.rows, key)?;
        self.store
            .get_document(&at)
            .await?
            .map(stored_row)
            .transpose()
    }

    /// The ledger entry and the registry change (with its handle and auto-mode claims) in
    /// one atomic batch; in reconciliation mode the registry change alone. Re-reads and
    /// retries when another writer moved a record it depends on.
    ///
    /// # Errors
    /// [`AccountingError::Commit`] with the failure's kind, the deployment and the cause
    /// (transition, handle taken, auto-mode collision, ledger conflict, bad input,
    /// contention, backend); nothing was written.
    pub async fn commit_ledger_and_registry(
        &self,
        mode: CommitMode<'_>,
        row: &RegistryRow,
    ) -> Result<RegistryCommitted> {
        self.commit_with(mode, row)
            .await
            .map_err(|cause| AccountingError::Commit {
                kind: CommitFailure::of(&cause),
                deployment: self.deployment.to_string(),
                cause: Box::new(cause),
            })
    }

    async fn commit_with(
        &self,
        mode: CommitMode<'_>,
        row: &RegistryRow,
    ) -> Result<RegistryCommitted> {
        let mut retry = Retry::new("the registry");
        // Set once the ledger entry turns out to be stored already (a retried commit).
        let mut duplicate: Option<Recorded> = None;
        loop {
            let change = self.plan(row, false).await?;
            let ledger = match (mode, duplicate) {
                (CommitMode::Ledger(e), None) => Some(self.ledger.plan_new(e).await?),
                _ => None,
            };
            let mut batch = WriteBatch::new().with(&change);
            if let Some(l) = &ledger {
                batch = batch.with(l);
            }
            match self.store.write(batch).await {
                Ok(_) => {
                    return Ok(RegistryCommitted {
                        row: change.stored,
                        ledger: duplicate.or(ledger.map(|l| l.recorded)),
                    });
                }
                Err(e) if self.ledger.key_taken(&e) => {
                    // The entry is stored: the same one again is a replay (the registry change
                    // still applies, as a retry at its status); other content is refused.
                    let CommitMode::Ledger(entry) = mode else {
                        return Err(e.into());
                    };
                    duplicate = Some(self.ledger.classify(entry).await?);
                }
                Err(e) if retryable(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Backfill: stores `row` (at any status) unless a row with its key exists, which is
    /// returned unchanged (`false`: nothing written). Claims are enforced as on commit.
    ///
    /// # Errors
    /// As [`Registry::commit_ledger_and_registry`]'s causes, unwrapped.
    pub async fn insert_if_absent(&self, row: &RegistryRow) -> Result<(StoredRow, bool)> {
        let mut retry = Retry::new("the registry");
        loop {
            if let Some(existing) = self.get_key(&row.key()).await? {
                return Ok((existing, false));
            }
            let change = self.plan(row, true).await?;
            match self.store.write(WriteBatch::new().with(&change)).await {
                Ok(_) => return Ok((change.stored, true)),
                Err(e) if retryable(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Plans storing `row` over what is stored: the transition check, the row and its open
    /// copy, and the handle and auto-mode claims, each guarded by the version it was read at.
    ///
    /// # Errors
    /// `RegistryTransition`, `HandleTaken`, `AutoModeCollision`, `InvalidInput`; `Store`.
    pub async fn plan_upsert(&self, row: &RegistryRow) -> Result<RegistryChange> {
        self.plan(row, false).await
    }

    async fn plan(&self, row: &RegistryRow, backfill: bool) -> Result<RegistryChange> {
        row.validate()?;
        if row.deployment_id != self.deployment.as_str() {
            return Err(AccountingError::invalid(
                "registry row",
                format!(
                    "{} belongs to deployment {}, not {}",
                    row.key(),
                    row.deployment_id,
                    self.deployment
                ),
            ));
        }
        let key = row.key();
        let stored = self.get_key(&key).await?;
        let from = stored.as_ref().map(|s| s.row.status);
        let allowed = RegistryStatus::allows(from, row.status) || (backfill && from.is_none());
        if !allowed {
            return Err(AccountingError::RegistryTransition {
                deployment: self.deployment.to_string(),
                row: key,
                from: from.map(RegistryStatus::as_str),
                to: row.status.as_str(),
            });
        }
        let body = to_object("registry row", REGISTRY_SCHEMA, row)?;
        let mode = match &stored {
            Some(s) => PutMode::Update {
                expected: s.version,
            },
            None => PutMode::Create,
        };
        let mut ops = vec![BatchOp::Document(DocWrite::new(
            self.addr(&self.rows, &key)?,
            mode,
            body.clone(),
        ))];
        let open_copy = self.addr(&self.open, &key)?;
        if row.status == RegistryStatus::Open {
            ops.push(BatchOp::Document(DocWrite::new(
                open_copy,
                PutMode::Overwrite,
                body,
            )));
        } else if from == Some(RegistryStatus::Open) {
            ops.push(BatchOp::DeleteDocument {
                address: open_copy,
                expected: None,
            });
        }
        let old = stored.as_ref().map(|s| &s.row);
        self.plan_handle(&key, old, row, &mut ops).await?;
        self.plan_auto(&key, old, row, &mut ops).await?;
        Ok(RegistryChange {
            stored: StoredRow {
                row: row.clone(),
                version: stored.map_or(1, |s| s.version + 1),
            },
            ops,
        })
    }

    /// Reads a claim document (a handle's or an auto-mode group's).
    async fn claim(&self, collection: &Name, key: &str) -> Result<Claim> {
        let at = self.addr(collection, key)?;
        let d = self.store.get_document(&at).await?;
        let holder = d.as_ref().map(holder_of).transpose()?.flatten();
        Ok(Claim {
            version: d.map(|d| d.version),
            holder,
            at,
        })
    }

    /// Moves this row's claim in `collection` from `was` to `now`: frees `was` if the row
    /// still holds it, and takes `now`, guarded by the version read. If another row holds
    /// `now`, `contest` decides: an error keeps it there; `Ok` takes it over (after adding
    /// whatever freeing the old holder needs).
    async fn move_claim(
        &self,
        collection: &Name,
        key: &str,
        was: Option<String>,
        now: Option<String>,
        ops: &mut Vec<BatchOp>,
        contest: impl AsyncFnOnce(&str, &str, &mut Vec<BatchOp>) -> Result<()>,
    ) -> Result<()> {
        if let Some(w) = &was
            && now.as_ref() != Some(w)
        {
            let c = self.claim(collection, w).await?;
            if c.holder.as_deref() == Some(key) {
                ops.push(c.set(None));
            }
        }
        let Some(k) = now else { return Ok(()) };
        let c = self.claim(collection, &k).await?;
        match c.holder.as_deref() {
            Some(holder) if holder == key => ops.push(c.guard()),
            Some(holder) => {
                contest(holder, &k, ops).await?;
                ops.push(c.set(Some(key)));
            }
            None => ops.push(c.set(Some(key))),
        }
        Ok(())
    }

    async fn plan_handle(
        &self,
        key: &str,
        old: Option<&RegistryRow>,
        row: &RegistryRow,
        ops: &mut Vec<BatchOp>,
    ) -> Result<()> {
        let (was, now) = (old.and_then(RegistryRow::handle_key), row.handle_key());
        let contest = async |holder: &str, h: &str, ops: &mut Vec<BatchOp>| {
            let Some(other) = self.get_key(holder).await? else {
                return Ok(());
            };
            if other.row.handle_key().as_deref() != Some(h) {
                return Ok(()); // a stale claim: its row let the handle go
            }
            if other.row.status == RegistryStatus::Open {
                return Err(AccountingError::HandleTaken {
                    deployment: self.deployment.to_string(),
                    category: row.category.clone(),
                    handle: row.handle.clone().unwrap_or_default(),
                    held_by: holder.to_owned(),
                    claimed_by: key.to_owned(),
                });
            }
            // Freed from the closed or invalidated row that held it.
            let mut freed = other.row.clone();
            freed.handle = None;
            ops.push(BatchOp::Document(DocWrite::new(
                self.addr(&self.rows, holder)?,
                PutMode::Update {
                    expected: other.version,
                },
                to_object("registry row", REGISTRY_SCHEMA, &freed)?,
            )));
            Ok(())
        };
        self.move_claim(&self.handles, key, was, now, ops, contest)
            .await
    }

    async fn plan_auto(
        &self,
        key: &str,
        old: Option<&RegistryRow>,
        row: &RegistryRow,
        ops: &mut Vec<BatchOp>,
    ) -> Result<()> {
        let (was, now) = (old.and_then(RegistryRow::auto_key), row.auto_key());
        let contest = async |holder: &str, k: &str, _: &mut Vec<BatchOp>| {
            match self.get_key(holder).await? {
                Some(other) if other.row.auto_key().as_deref() == Some(k) => {
                    Err(AccountingError::AutoModeCollision {
                        deployment: self.deployment.to_string(),
                        existing: holder.to_owned(),
                        new: key.to_owned(),
                    })
                }
                _ => Ok(()), // a stale claim (its row moved on): take it over
            }
        };
        self.move_claim(&self.auto, key, was, now, ops, contest)
            .await
    }

    /// The open rows, optionally of one chain, primitive and/or category, in key order.
    /// Reads only the open rows, however many have closed.
    ///
    /// # Errors
    /// `Store` for I/O or damage (naming the row); `NewerSchema`.
    pub async fn open_rows(&self, filter: &RowFilter) -> Result<Vec<RegistryRow>> {
        let mut out = Vec::new();
        let mut after: Option<Name> = None;
        loop {
            let page = self
                .store
                .list_documents(&self.deployment, &self.open, after.as_ref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for d in page {
                let d = d?;
                after = Some(d.address.key.clone());
                let r: RegistryRow = from_object("registry row", REGISTRY_SCHEMA, d.value)?;
                let keep = filter.chain.as_ref().is_none_or(|c| *c == r.chain)
                    && filter.primitive.as_ref().is_none_or(|p| *p == r.primitive)
                    && filter.category.as_ref().is_none_or(|c| *c == r.category);
                if keep {
                    out.push(r);
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// The open handle-less row a new handle-less open of this group would collide with
    /// (the preflight before opening a position), if any.
    ///
    /// # Errors
    /// `InvalidInput` for bad parts; `Store`.
    pub async fn find_open_auto_row(
        &self,
        chain: &str,
        category: &str,
        grouping_key: &str,
    ) -> Result<Option<StoredRow>> {
        token("chain", chain, 64)?;
        token("category", category, 64)?;
        part("grouping key", grouping_key)?;
        let k = format!("{chain}|{category}|{grouping_key}");
        self.claimant(&self.auto, &k, RegistryRow::auto_key).await
    }

    /// The row holding a handle in a category, if any.
    ///
    /// # Errors
    /// `InvalidInput` for bad parts; `Store`.
    pub async fn by_handle(&self, category: &str, handle: &str) -> Result<Option<StoredRow>> {
        token("category", category, 64)?;
        part("handle", handle)?;
        let k = format!("{category}|{handle}");
        self.claimant(&self.handles, &k, RegistryRow::handle_key)
            .await
    }

    /// The row a claim names, if it still holds the claim (`key_of` gives a row's claim key).
    async fn claimant(
        &self,
        collection: &Name,
        key: &str,
        key_of: fn(&RegistryRow) -> Option<String>,
    ) -> Result<Option<StoredRow>> {
        let Some(holder) = self.claim(collection, key).await?.holder else {
            return Ok(None);
        };
        Ok(self
            .get_key(&holder)
            .await?
            .filter(|r| key_of(&r.row).as_deref() == Some(key)))
    }
}

/// A claim document as read. A claim is never deleted, only set free (`"row": null`): a
/// deleted document would be re-created at version 1, so a writer holding version 1 from
/// before the deletion could overwrite a newer claim (an ABA race, seen in the
/// multi-process test before this rule).
struct Claim {
    at: DocAddr,
    /// Its version (`None`: never written).
    version: Option<u64>,
    /// The row holding it (`None`: free).
    holder: Option<String>,
}

impl Claim {
    /// The write that sets the holder, expecting the version read.
    fn set(&self, holder: Option<&str>) -> BatchOp {
        let mut m = Map::new();
        m.insert("row".into(), holder.map_or(Value::Null, Value::from));
        let mode = match self.version {
            Some(expected) => PutMode::Update { expected },
            None => PutMode::Create,
        };
        BatchOp::Document(DocWrite::new(self.at.clone(), mode, m))
    }

    /// A guard: the batch commits only if the claim is unchanged.
    fn guard(&self) -> BatchOp {
        BatchOp::Expect {
            address: self.at.clone(),
            version: self.version,
        }
    }
}

/// The holder a claim document names (`None`: free).
fn holder_of(d: &Document) -> Result<Option<String>> {
    match d.value.get("row") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) => Ok(None),
        _ => Err(AccountingError::invalid(
            "registry claim",
            format!("{} names no row", d.address),
        )),
    }
}

pub(crate) fn stored_row(d: Document) -> Result<StoredRow> {
    if let Some(Value::String(s)) = d.value.get("status") {
        s.parse::<RegistryStatus>()?;
    }
    let row: RegistryRow = from_object("registry row", REGISTRY_SCHEMA, d.value)?;
    row.validate()?;
    Ok(StoredRow {
        row,
        version: d.version,
    })
}
