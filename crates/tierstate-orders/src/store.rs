//! Durable intents and actual orders on any [`StateStore`], each change committed in one batch
//! with its indexes and with an event appended to the order's own journal (optimistically,
//! expecting the journal's last sequence number).
//!
//! Layout (in the deployment's records):
//! - `orders.intents/<intent>`: the intent (compare-and-swap); `orders.groups/<group>`: the
//!   intents of an OCO group;
//! - `orders.actual/<intent>`: the actual order, with its last sync time and reconciliation
//!   status; `orders.by_exchange_id/<exchange id>`: the intent an exchange id belongs to;
//!   `orders.synced/<sync µs>|<intent>`: the sync-time index that finds stale orders;
//! - journal `orders.ev.<30 hex>` per intent: its events, hash-chained.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    Append, BatchOp, DeploymentId, DocAddr, DocWrite, Document, JournalQuery, KeyRange, Name,
    PutMode, Retention, StateStore, StoredDoc, StreamAddr, Tier, WriteBatch,
};

use crate::error::{OrdersError, Result};
use crate::event::{OrderEvent, Rebuilt, fold};
use crate::intent::OrderIntent;
use crate::order::{Order, check_id};
use crate::retry::{RetryPolicy, retry_if};

const INTENTS: &str = "orders.intents";
const GROUPS: &str = "orders.groups";
const ACTUAL: &str = "orders.actual";
const BY_EXCHANGE_ID: &str = "orders.by_exchange_id";
const SYNCED: &str = "orders.synced";
/// The records' schema; a newer one is refused. Schema 2 stores the actual order as the one
/// [`Order`]; schema 1 (tierstate up to 6e4015a) spelled its statuses `pending_submit`,
/// `unknown`, `open`, `rejected` and its failure `reject_reason`, which [`Order`] still reads.
pub const ORDERS_SCHEMA: u64 = 2;
const PAGE: usize = 1000;

/// How an actual order compares with its intent, as the engine last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconStatus {
    /// Matches the intent.
    InSync,
    /// An action is under way or the outcome of a send is unknown.
    Pending,
    /// Differs and the engine will not act alone (e.g. rejected).
    Diverged,
}

/// A planned change of an intent or its actual order: the records, the indexes and the events
/// in the order's journal. Commit it with [`OrderStore::commit`] or add it to a caller's
/// [`WriteBatch`]; it commits only if nothing it read moved since.
#[derive(Debug, Clone)]
pub struct OrderPlan<T> {
    /// What the change stores once committed.
    pub result: T,
    ops: Vec<BatchOp>,
}

impl<T> tierstate_core::Plan for OrderPlan<T> {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// An intent as stored, with the version its next change must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIntent {
    /// The intent.
    pub intent: OrderIntent,
    /// Its document version.
    pub version: u64,
}

/// An actual order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredActual {
    /// The order.
    pub order: Order,
    /// Its document version.
    pub version: u64,
    /// When it was last compared with the exchange.
    pub synced_at: DateTime<Utc>,
    /// How it compares with its intent.
    pub recon: ReconStatus,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActualDoc {
    order: Order,
    synced_us: i64,
    recon: ReconStatus,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentDoc {
    intent: OrderIntent,
}

/// One deployment's intents, actual orders and order journals.
#[derive(Clone)]
pub struct OrderStore {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    doc_retention: Retention,
}

/// How many versions of each order document (intent, actual order, index) are kept by default:
/// the current one. Every change is an event in the order's journal, which is its history
/// ([`OrderStore::events`], [`OrderStore::rebuild`]); older document versions repeated it.
pub const ORDER_DOC_RETENTION: Retention =
    Retention::KeepLast(std::num::NonZeroU32::new(1).expect("1"));

impl std::fmt::Debug for OrderStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderStore")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl OrderStore {
    /// The orders of `deployment` in `store`.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        Self {
            store,
            deployment: deployment.clone(),
            doc_retention: ORDER_DOC_RETENTION,
        }
    }

    /// The same store, keeping `retention` versions of each order document instead of
    /// [`ORDER_DOC_RETENTION`] (for reading older versions of an intent by number or as of a
    /// time; the order's journal has every change either way).
    #[must_use]
    pub fn with_doc_retention(mut self, retention: Retention) -> Self {
        self.doc_retention = retention;
        self
    }

    /// A document write of this store, with its retention.
    fn doc_op(&self, write: DocWrite) -> BatchOp {
        BatchOp::Document(write.with_retention(self.doc_retention))
    }

    /// The deployment.
    pub fn deployment(&self) -> &DeploymentId {
        &self.deployment
    }

    fn addr(&self, collection: &str, key: &str) -> Result<DocAddr> {
        Ok(DocAddr {
            deployment_id: self.deployment.clone(),
            collection: Name::collection(collection)?,
            key: Name::key(key)?,
        })
    }

    /// The journal of an intent's events.
    ///
    /// # Errors
    /// `InvalidInput` for a bad intent id.
    pub fn stream(&self, intent_id: &str) -> Result<StreamAddr> {
        check_id("intent id", intent_id)?;
        let h = tierstate_core::Checksum::of(intent_id.as_bytes()).to_hex();
        Ok(StreamAddr {
            deployment_id: self.deployment.clone(),
            stream: Name::stream(format!("orders.ev.{}", &h[..30]))?,
        })
    }

    /// Appends `events` to the intent's journal, expecting its current last sequence.
    async fn event_ops(
        &self,
        intent_id: &str,
        events: &[OrderEvent],
        at: DateTime<Utc>,
    ) -> Result<Vec<BatchOp>> {
        let st = self.stream(intent_id)?;
        let mut last = self
            .store
            .journal_info(&st)
            .await?
            .map_or(0, |i| i.last_seq);
        let mut ops = Vec::with_capacity(events.len());
        for e in events {
            ops.push(BatchOp::Append(
                Append::typed(st.clone(), at, e)?.expecting(last),
            ));
            last += 1;
        }
        Ok(ops)
    }

    fn check_owned(&self, i: &OrderIntent) -> Result<()> {
        if i.deployment_id != self.deployment.as_str() {
            return Err(OrdersError::invalid(
                "intent",
                format!(
                    "{} belongs to {}, not {}",
                    i.intent_id, i.deployment_id, self.deployment
                ),
            ));
        }
        Ok(())
    }

    /// Stores a new intent (and its event). Idempotent: if the id already holds exactly this
    /// intent (a retried create), the stored one is returned and nothing is written.
    ///
    /// # Errors
    /// `InvalidInput`; `Store(AlreadyExists)` if the id holds a different intent.
    pub async fn create_intent(&self, intent: &OrderIntent) -> Result<StoredIntent> {
        let own = self.addr(INTENTS, &intent.intent_id)?;
        let created = self
            .internally_retried(&own, || async {
                self.commit(self.plan_create_intent(intent).await?).await
            })
            .await;
        match created {
            Err(OrdersError::Store(tierstate_core::Error::AlreadyExists { .. })) => {
                match self.intent(&intent.intent_id).await? {
                    Some(stored) if stored.intent == *intent => Ok(stored),
                    _ => created,
                }
            }
            other => other,
        }
    }

    /// Plans storing a new intent: the intent, its OCO group's index and its event.
    ///
    /// # Errors
    /// As [`OrderStore::create_intent`], without the retries.
    pub async fn plan_create_intent(
        &self,
        intent: &OrderIntent,
    ) -> Result<OrderPlan<StoredIntent>> {
        intent.validate()?;
        self.check_owned(intent)?;
        let own = self.addr(INTENTS, &intent.intent_id)?;
        let mut ops = vec![self.doc_op(DocWrite::new(own, PutMode::Create, intent_doc(intent)?))];
        if let Some(g) = &intent.oco_group {
            ops.push(self.group_op(g, Some(&intent.intent_id), None).await?);
        }
        ops.extend(
            self.event_ops(
                &intent.intent_id,
                &[OrderEvent::IntentSet {
                    intent: intent.clone(),
                }],
                intent.updated_at,
            )
            .await?,
        );
        Ok(OrderPlan {
            result: StoredIntent {
                intent: intent.clone(),
                version: 1,
            },
            ops,
        })
    }

    /// Runs `op` (which plans from fresh reads and commits) again while it loses a race on a
    /// record the caller never read (an OCO group's index, the order's journal), with jittered
    /// backoff; a lost race on `own` (the caller's intent) is the caller's error.
    async fn internally_retried<T, F, Fut>(&self, own: &DocAddr, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mine = tierstate_core::Target::document(own);
        let internal = |e: &OrdersError| match e {
            OrdersError::Store(
                tierstate_core::Error::Conflict { target, .. }
                | tierstate_core::Error::AlreadyExists { target, .. },
            ) => *target != mine,
            _ => false,
        };
        retry_if("an order index", RetryPolicy::default(), internal, op).await
    }

    /// The intent, if stored.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store`; `NewerSchema`.
    pub async fn intent(&self, intent_id: &str) -> Result<Option<StoredIntent>> {
        check_id("intent id", intent_id)?;
        match self
            .store
            .get_document(&self.addr(INTENTS, intent_id)?)
            .await?
        {
            Some(d) => Ok(Some(decode_intent(d)?)),
            None => Ok(None),
        }
    }

    /// Replaces the intent: a compare-and-swap on the version read.
    ///
    /// # Errors
    /// `InvalidInput`; `Store(Conflict)` with both versions if it changed since.
    pub async fn update_intent(
        &self,
        current: &StoredIntent,
        next: OrderIntent,
    ) -> Result<StoredIntent> {
        let own = self.addr(INTENTS, &next.intent_id)?;
        self.internally_retried(&own, || async {
            self.commit(self.plan_update_intent(current, next.clone()).await?)
                .await
        })
        .await
    }

    /// Plans replacing the intent (a compare-and-swap on the version read), its OCO group
    /// indexes and its event.
    ///
    /// # Errors
    /// As [`OrderStore::update_intent`], without the retries.
    pub async fn plan_update_intent(
        &self,
        current: &StoredIntent,
        next: OrderIntent,
    ) -> Result<OrderPlan<StoredIntent>> {
        next.validate()?;
        self.check_owned(&next)?;
        if next.intent_id != current.intent.intent_id {
            return Err(OrdersError::invalid(
                "intent",
                "an update keeps the intent id",
            ));
        }
        let own = self.addr(INTENTS, &next.intent_id)?;
        let mut ops = vec![self.doc_op(DocWrite::new(
            own,
            PutMode::Update {
                expected: current.version,
            },
            intent_doc(&next)?,
        ))];
        if current.intent.oco_group != next.oco_group {
            if let Some(g) = &current.intent.oco_group {
                ops.push(self.group_op(g, None, Some(&next.intent_id)).await?);
            }
            if let Some(g) = &next.oco_group {
                ops.push(self.group_op(g, Some(&next.intent_id), None).await?);
            }
        }
        ops.extend(
            self.event_ops(
                &next.intent_id,
                &[OrderEvent::IntentSet {
                    intent: next.clone(),
                }],
                next.updated_at,
            )
            .await?,
        );
        Ok(OrderPlan {
            result: StoredIntent {
                intent: next,
                version: current.version + 1,
            },
            ops,
        })
    }

    /// Deletes the intent (expecting the version read) and leaves its journal.
    ///
    /// # Errors
    /// `Store(Conflict)` if it changed since.
    pub async fn delete_intent(&self, current: &StoredIntent, at: DateTime<Utc>) -> Result<()> {
        let own = self.addr(INTENTS, &current.intent.intent_id)?;
        self.internally_retried(&own, || async {
            self.commit(self.plan_delete_intent(current, at).await?)
                .await
        })
        .await
    }

    /// Plans deleting the intent (expecting the version read), its OCO group index entry and
    /// its event.
    ///
    /// # Errors
    /// As [`OrderStore::delete_intent`], without the retries.
    pub async fn plan_delete_intent(
        &self,
        current: &StoredIntent,
        at: DateTime<Utc>,
    ) -> Result<OrderPlan<()>> {
        let id = &current.intent.intent_id;
        let mut ops = vec![BatchOp::DeleteDocument {
            address: self.addr(INTENTS, id)?,
            expected: Some(current.version),
        }];
        if let Some(g) = &current.intent.oco_group {
            ops.push(self.group_op(g, None, Some(id)).await?);
        }
        ops.extend(self.event_ops(id, &[OrderEvent::IntentDeleted], at).await?);
        Ok(OrderPlan { result: (), ops })
    }

    /// The group index write that adds or removes an intent, expecting the version read.
    async fn group_op(
        &self,
        group: &str,
        add: Option<&str>,
        remove: Option<&str>,
    ) -> Result<BatchOp> {
        let at = self.addr(GROUPS, group)?;
        let (mut ids, mode) = match self.store.get_document(&at).await? {
            Some(d) => (
                ids_of(&d)?,
                PutMode::Update {
                    expected: d.version,
                },
            ),
            None => (Vec::new(), PutMode::Create),
        };
        if let Some(a) = add
            && !ids.iter().any(|i| i == a)
        {
            ids.push(a.to_owned());
        }
        if let Some(r) = remove {
            ids.retain(|i| i != r);
        }
        let mut m = Map::new();
        m.insert("intents".into(), Value::from(ids));
        Ok(self.doc_op(DocWrite::new(at, mode, m)))
    }

    /// The intents of an OCO group, in the order they joined it.
    ///
    /// # Errors
    /// `InvalidInput` for a bad group; `Store`.
    pub async fn group(&self, group: &str) -> Result<Vec<StoredIntent>> {
        check_id("OCO group", group)?;
        let Some(d) = self.store.get_document(&self.addr(GROUPS, group)?).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for id in ids_of(&d)? {
            if let Some(i) = self.intent(&id).await? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Every intent, in id order, optionally of one symbol and/or OCO group.
    ///
    /// # Errors
    /// `Store`; `NewerSchema`.
    pub async fn intents(
        &self,
        symbol: Option<&str>,
        group: Option<&str>,
    ) -> Result<Vec<StoredIntent>> {
        let mut out = Vec::new();
        for d in self.scan(INTENTS).await? {
            let i = decode_stored_intent(&d)?;
            if symbol.is_none_or(|s| s == i.intent.spec.symbol)
                && group.is_none_or(|g| Some(g) == i.intent.oco_group.as_deref())
            {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Up to `limit` intents with ids after `after`, in id order: one read of one page.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store`; `NewerSchema`.
    pub async fn intent_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredIntent>> {
        self.page(INTENTS, after, limit)
            .await?
            .iter()
            .map(decode_stored_intent)
            .collect()
    }

    /// Up to `limit` actual orders whose intent ids come after `after`, in intent-id order,
    /// each with its intent id: one read of one page.
    ///
    /// # Errors
    /// As [`OrderStore::intent_page`].
    pub async fn actual_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredActual)>> {
        self.page(ACTUAL, after, limit)
            .await?
            .into_iter()
            .map(|d| {
                let a = decode_stored_actual(&d)?;
                Ok((d.address.key.as_str().to_owned(), a))
            })
            .collect()
    }

    async fn page(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredDoc>> {
        let c = Name::collection(collection)?;
        let after = after.map(Name::key).transpose()?;
        let range = KeyRange::after(after);
        self.store
            .scan_stored_documents(&self.deployment, &c, &range, limit)
            .await?
            .into_iter()
            .map(|d| d.map_err(Into::into))
            .collect()
    }

    async fn scan(&self, collection: &str) -> Result<Vec<StoredDoc>> {
        let c = Name::collection(collection)?;
        let mut out = Vec::new();
        let mut after: Option<Name> = None;
        loop {
            let range = KeyRange::after(after.take());
            let page = self
                .store
                .scan_stored_documents(&self.deployment, &c, &range, PAGE)
                .await?;
            let full = page.len() == PAGE;
            for d in page {
                let d = d?;
                after = Some(d.address.key.clone());
                out.push(d);
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The actual order of an intent, if any.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store`; `NewerSchema`.
    pub async fn actual(&self, intent_id: &str) -> Result<Option<StoredActual>> {
        check_id("intent id", intent_id)?;
        match self
            .store
            .get_document(&self.addr(ACTUAL, intent_id)?)
            .await?
        {
            Some(d) => Ok(Some(decode_actual(d)?)),
            None => Ok(None),
        }
    }

    /// The placement that carries this exchange id: one index read, then the order; `None`
    /// if no current placement carries it (a replaced placement's id never resolves to the
    /// placement that replaced it).
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store`.
    pub async fn by_exchange_id(&self, exchange_order_id: &str) -> Result<Option<StoredActual>> {
        check_id("exchange order id", exchange_order_id)?;
        let Some(d) = self
            .store
            .get_document(&self.addr(BY_EXCHANGE_ID, exchange_order_id)?)
            .await?
        else {
            return Ok(None);
        };
        let intent = d
            .value
            .get("intent")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                OrdersError::invalid(
                    "exchange id index",
                    format!("{} names no intent", d.address),
                )
            })?
            .to_owned();
        Ok(self
            .actual(&intent)
            .await?
            .filter(|a| a.order.exchange_order_id.as_deref() == Some(exchange_order_id)))
    }

    /// Every actual order, optionally of one symbol and/or reconciliation status.
    ///
    /// # Errors
    /// `Store`; `NewerSchema`.
    pub async fn actuals(
        &self,
        symbol: Option<&str>,
        recon: Option<ReconStatus>,
    ) -> Result<Vec<StoredActual>> {
        let mut out = Vec::new();
        for d in self.scan(ACTUAL).await? {
            let a = decode_stored_actual(&d)?;
            if symbol.is_none_or(|s| s == a.order.spec.symbol) && recon.is_none_or(|r| r == a.recon)
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Actual orders last synced before `before`, oldest first: a range of the sync-time
    /// index, not a scan of every order.
    ///
    /// # Errors
    /// `Store`; `NewerSchema`.
    pub async fn stale(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<StoredActual>> {
        let range = KeyRange {
            after: None,
            before: Some(Name::key(format!(
                "{:019}",
                before.timestamp_micros().max(0)
            ))?),
            descending: false,
        };
        let page = self
            .store
            .scan_documents(&self.deployment, &Name::collection(SYNCED)?, &range, limit)
            .await?;
        let mut out = Vec::new();
        for d in page {
            let d = d?;
            let intent = d
                .address
                .key
                .as_str()
                .split_once('|')
                .map(|(_, i)| i.to_owned());
            if let Some(i) = intent
                && let Some(a) = self.actual(&i).await?
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Applies `events` to the intent's actual order (`current`: as read; `None` if there is
    /// none yet) and stores the result with its indexes and the events, in one batch that
    /// commits only if neither the order nor its journal moved since.
    ///
    /// # Errors
    /// `InvalidInput` for events that do not apply; `Store(Conflict)` if the order moved.
    pub async fn apply(
        &self,
        intent_id: &str,
        current: Option<&StoredActual>,
        events: &[OrderEvent],
        recon: ReconStatus,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredActual>> {
        let plan = self
            .plan_apply(intent_id, current, events, recon, at)
            .await?;
        self.commit(plan).await
    }

    /// Plans applying `events` to the intent's actual order; see [`OrderStore::apply`].
    ///
    /// # Errors
    /// `InvalidInput` for events that do not apply.
    pub async fn plan_apply(
        &self,
        intent_id: &str,
        current: Option<&StoredActual>,
        events: &[OrderEvent],
        recon: ReconStatus,
        at: DateTime<Utc>,
    ) -> Result<OrderPlan<Option<StoredActual>>> {
        let mut next = current.map(|c| c.order.clone());
        for e in events {
            next = fold(next, intent_id, e)?;
        }
        let at_doc = self.addr(ACTUAL, intent_id)?;
        let mut ops = Vec::new();
        // The sync-time index entry moves with the sync time (unless it is the same µs).
        if let Some(c) = current
            && (c.synced_at.timestamp_micros() != at.timestamp_micros() || next.is_none())
        {
            ops.push(BatchOp::DeleteDocument {
                address: self.synced_addr(c.synced_at, intent_id)?,
                expected: None,
            });
        }
        let stored = match &next {
            Some(order) => {
                let doc = ActualDoc {
                    order: order.clone(),
                    synced_us: at.timestamp_micros(),
                    recon,
                };
                let mode = match current {
                    Some(c) => PutMode::Update {
                        expected: c.version,
                    },
                    None => PutMode::Create,
                };
                ops.push(self.doc_op(DocWrite::new(at_doc, mode, encode(&doc)?)));
                if current.is_none_or(|c| c.synced_at.timestamp_micros() != at.timestamp_micros()) {
                    ops.push(self.doc_op(DocWrite::new(
                        self.synced_addr(at, intent_id)?,
                        PutMode::Overwrite,
                        Map::new(),
                    )));
                }
                let known = current.and_then(|c| c.order.exchange_order_id.as_deref());
                if let Some(old) = known
                    && order.exchange_order_id.as_deref() != Some(old)
                {
                    // A replaced placement's id no longer names this intent's order.
                    ops.push(BatchOp::DeleteDocument {
                        address: self.addr(BY_EXCHANGE_ID, old)?,
                        expected: None,
                    });
                }
                if let Some(x) = order.exchange_order_id.as_deref()
                    && known != Some(x)
                {
                    let mut m = Map::new();
                    m.insert("intent".into(), Value::from(intent_id));
                    ops.push(self.doc_op(DocWrite::new(
                        self.addr(BY_EXCHANGE_ID, x)?,
                        PutMode::Overwrite,
                        m,
                    )));
                }
                Some(StoredActual {
                    order: order.clone(),
                    version: current.map_or(1, |c| c.version + 1),
                    synced_at: tierstate_core::truncate_to_micros(at),
                    recon,
                })
            }
            None => {
                if let Some(c) = current {
                    ops.push(BatchOp::DeleteDocument {
                        address: at_doc,
                        expected: Some(c.version),
                    });
                    if let Some(x) = c.order.exchange_order_id.as_deref() {
                        ops.push(BatchOp::DeleteDocument {
                            address: self.addr(BY_EXCHANGE_ID, x)?,
                            expected: None,
                        });
                    }
                }
                None
            }
        };
        ops.extend(self.event_ops(intent_id, events, at).await?);
        Ok(OrderPlan {
            result: stored,
            ops,
        })
    }

    fn synced_addr(&self, at: DateTime<Utc>, intent_id: &str) -> Result<DocAddr> {
        self.addr(
            SYNCED,
            &format!("{:019}|{intent_id}", at.timestamp_micros().max(0)),
        )
    }

    /// Commits a plan on its own; returns what it planned.
    ///
    /// # Errors
    /// `Store(Conflict)`/`Store(AlreadyExists)` if what it read moved since.
    pub async fn commit<T>(&self, plan: OrderPlan<T>) -> Result<T> {
        self.store.write(WriteBatch::new().with(&plan)).await?;
        Ok(plan.result)
    }

    /// The intent's events, oldest first, with their sequence numbers (each entry's checksum
    /// and chain link verified on read).
    ///
    /// # Errors
    /// `Store` (`Integrity` for a damaged or missing entry); `InvalidInput` for an entry that
    /// is not an event.
    pub async fn events(&self, intent_id: &str) -> Result<Vec<(u64, OrderEvent)>> {
        let st = self.stream(intent_id)?;
        let mut out = Vec::new();
        let mut q = Some(JournalQuery::from_seq(1, PAGE));
        while let Some(query) = q {
            let page = self.store.read_journal(&st, query).await?;
            for e in page.entries {
                let ev: OrderEvent = tierstate_core::exact::from_map(&e.value).map_err(|x| {
                    OrdersError::invalid("order event", format!("{intent_id} #{}: {x}", e.seq))
                })?;
                out.push((e.seq, ev));
            }
            q = page.next;
        }
        Ok(out)
    }

    /// Folds the intent's journal into its intent and actual order.
    ///
    /// # Errors
    /// As [`OrderStore::events`]; `InvalidInput` for a journal that does not fold.
    pub async fn rebuild(&self, intent_id: &str) -> Result<Rebuilt> {
        let mut r = Rebuilt::default();
        for (_, e) in self.events(intent_id).await? {
            match &e {
                OrderEvent::IntentSet { intent } => r.intent = Some(intent.clone()),
                OrderEvent::IntentDeleted => r.intent = None,
                _ => {}
            }
            r.actual = fold(r.actual.take(), intent_id, &e)?;
        }
        Ok(r)
    }

    /// Checks that the stored intent and actual order equal the fold of the journal.
    ///
    /// # Errors
    /// `Diverged` naming what differs; as [`OrderStore::rebuild`].
    pub async fn verify(&self, intent_id: &str) -> Result<()> {
        let r = self.rebuild(intent_id).await?;
        let intent = self.intent(intent_id).await?.map(|s| s.intent);
        let actual = self.actual(intent_id).await?.map(|s| s.order);
        if r.intent != intent {
            return Err(OrdersError::Diverged {
                intent: intent_id.to_owned(),
                detail: format!("intent: stored {intent:?}, journal {:?}", r.intent),
            });
        }
        if r.actual != actual {
            return Err(OrdersError::Diverged {
                intent: intent_id.to_owned(),
                detail: format!("actual: stored {actual:?}, journal {:?}", r.actual),
            });
        }
        Ok(())
    }
}

fn ids_of(d: &Document) -> Result<Vec<String>> {
    serde_json::from_value(d.value.get("intents").cloned().unwrap_or(Value::Null))
        .map_err(|e| OrdersError::invalid("group index", format!("{}: {e}", d.address)))
}

/// A record as a document body stamped with the orders schema (core's one codec).
fn encode<T: Serialize>(v: &T) -> Result<Map<String, Value>> {
    tierstate_core::codec::encode_doc(ORDERS_SCHEMA, v)
        .map_err(|e| OrdersError::invalid("record", e))
}

fn intent_doc(i: &OrderIntent) -> Result<Map<String, Value>> {
    encode(&IntentDoc { intent: i.clone() })
}

/// A stored body decoded with core's one codec; a newer schema is refused naming `what`.
fn decode<T: DeserializeOwned + Serialize>(
    what: &'static str,
    record: &str,
    d: Document,
) -> Result<T> {
    let address = d.address.clone();
    tierstate_core::codec::decode_doc(ORDERS_SCHEMA, d.value)
        .map_err(|e| OrdersError::stored(what, record, address, e))
}

fn decode_intent(d: Document) -> Result<StoredIntent> {
    let version = d.version;
    let doc: IntentDoc = decode("intent", "a stored order intent", d)?;
    intent_of(doc, version)
}

fn decode_actual(d: Document) -> Result<StoredActual> {
    let version = d.version;
    let doc: ActualDoc = decode("actual order", "a stored actual order", d)?;
    Ok(actual_of(doc, version))
}

/// As [`decode_intent`], for a row a scan read: verified, then decoded from its bytes.
fn decode_stored_intent(d: &StoredDoc) -> Result<StoredIntent> {
    let doc: IntentDoc = decode_stored("intent", "a stored order intent", d)?;
    intent_of(doc, d.version)
}

/// As [`decode_actual`], for a row a scan read.
fn decode_stored_actual(d: &StoredDoc) -> Result<StoredActual> {
    let doc: ActualDoc = decode_stored("actual order", "a stored actual order", d)?;
    Ok(actual_of(doc, d.version))
}

fn decode_stored<T: DeserializeOwned + Serialize>(
    what: &'static str,
    record: &str,
    d: &StoredDoc,
) -> Result<T> {
    let body = d.verified_body(Tier::Warm)?;
    tierstate_core::codec::decode_doc_bytes(ORDERS_SCHEMA, &body)
        .map_err(|e| OrdersError::stored(what, record, &d.address, e))
}

fn intent_of(doc: IntentDoc, version: u64) -> Result<StoredIntent> {
    doc.intent.validate()?;
    Ok(StoredIntent {
        intent: doc.intent,
        version,
    })
}

fn actual_of(doc: ActualDoc, version: u64) -> StoredActual {
    StoredActual {
        order: doc.order,
        version,
        synced_at: DateTime::from_timestamp_micros(doc.synced_us).unwrap_or_default(),
        recon: doc.recon,
    }
}
