//! CLOB orders on any [`StateStore`]: every change a compare-and-swap, open orders cheap to
//! list however many have closed, and every change available as a batch member so it can
//! commit with the strategy's state.
//!
//! Layout (all in the deployment's own records):
//! - `clob.orders/<order id>`: every order, current, with its version history;
//! - `clob.open/<order id>`: a copy of each open order, written in the same batch, removed when
//!   it closes: listing open orders reads only these;
//! - `clob.by_intent/<intent id>`: the ids of the orders placed for an intent;
//! - journal `clob.closed`: each order as it closed, keyed by order id, newest last.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    Append, BatchOp, DeploymentId, DocAddr, DocWrite, Document, JournalQuery, Name, PutMode,
    RetryPolicy, StateStore, StreamAddr, WriteBatch,
};

use crate::error::{OrdersError, Result};
use crate::order::{
    Fill, FillOutcome, Order, OrderKind, OrderSpec, OrderStatus, Side, TimeInForce, check_id,
};
use crate::retry::retry_if;

/// A CLOB order as the CLOB collection keeps it: the one [`Order`] (its client order id is the
/// CLOB order id, its symbol the outcome token) with the market it trades and the times of its
/// life. It has no status or fills of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClobOrder {
    /// The order.
    pub order: Order,
    /// The deployment that placed it.
    pub deployment_id: String,
    /// The market (the token is `order.spec.symbol`).
    pub market_id: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was submitted, once it was.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Anything else the strategy keeps with it.
    pub metadata: Map<String, Value>,
}

/// Reads through to the order: `clob.status`, `clob.filled()`. Changes go through
/// [`ClobOrder::set_status`] and [`ClobOrder::apply_fill`], which keep the times.
impl std::ops::Deref for ClobOrder {
    type Target = Order;
    fn deref(&self) -> &Order {
        &self.order
    }
}

impl ClobOrder {
    /// A new pending limit order, created at `at`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id or a price or size that is not positive.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_id: impl Into<String>,
        deployment_id: impl Into<String>,
        market_id: impl Into<String>,
        token_id: impl Into<String>,
        side: Side,
        tif: TimeInForce,
        price: Decimal,
        size: Decimal,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let spec = OrderSpec {
            symbol: token_id.into(),
            side,
            kind: OrderKind::Limit,
            price: Some(price),
            size,
            tif,
        };
        let at = tierstate_core::truncate_to_micros(at);
        let o = Self {
            order: Order::new(order_id, spec)?,
            deployment_id: deployment_id.into(),
            market_id: market_id.into(),
            created_at: at,
            submitted_at: None,
            updated_at: at,
            metadata: Map::new(),
        };
        o.validate()?;
        Ok(o)
    }

    /// The CLOB order id (the order's client order id).
    pub fn order_id(&self) -> &str {
        &self.order.client_order_id
    }

    /// Sets the intent it is placed for.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id.
    pub fn with_intent(mut self, intent_id: impl Into<String>) -> Result<Self> {
        self.order = self.order.with_intent(intent_id)?;
        Ok(self)
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Moves the order to `to` at `at` (the status machine of [`Order::request`]).
    ///
    /// # Errors
    /// `InvalidTransition` (nothing changes).
    pub fn set_status(
        &mut self,
        to: OrderStatus,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<()> {
        self.order.request(to, error)?;
        let at = tierstate_core::truncate_to_micros(at);
        if to == OrderStatus::Submitted {
            self.submitted_at = Some(at);
        }
        self.updated_at = at;
        Ok(())
    }

    /// Records a fill ([`Order::apply_fill`]); the order's last change moves to the fill's time
    /// if that is later.
    ///
    /// # Errors
    /// As [`Order::apply_fill`].
    pub fn apply_fill(&mut self, fill: Fill) -> Result<FillOutcome> {
        let time = fill.time;
        let outcome = self.order.apply_fill(fill)?;
        if let Some(t) = time
            && outcome == FillOutcome::Applied
        {
            self.updated_at = self.updated_at.max(t);
        }
        Ok(outcome)
    }

    /// Checks every field and that the status agrees with the fills.
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        check_id("deployment id", &self.deployment_id)?;
        check_id("market id", &self.market_id)?;
        if self.order.spec.kind != OrderKind::Limit {
            return Err(OrdersError::invalid(
                "order",
                "a CLOB order is a limit order",
            ));
        }
        self.order.validate_machine()
    }
}

/// Collection of every order.
pub const ORDERS: &str = "clob.orders";
/// Collection of the open orders' copies.
pub const OPEN: &str = "clob.open";
/// Collection of intent id → order ids.
pub const BY_INTENT: &str = "clob.by_intent";
/// Journal of closed orders.
pub const CLOSED: &str = "clob.closed";
/// The order document's schema; a newer one is refused. Schema 2 holds the one [`Order`];
/// schema 1 (tierstate up to 6e4015a) held a CLOB order of its own shape, read through
/// [`decode`]'s step.
pub const ORDER_SCHEMA: u64 = 2;

/// Page size for listing open orders.
const PAGE: usize = 1000;

/// An order as stored: the order and the version the next change must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// The order.
    pub order: ClobOrder,
    /// Its document version.
    pub version: u64,
}

/// A planned order change: the records to write, for [`ClobOrders::commit`] or a caller's own
/// [`WriteBatch`] (e.g. with the strategy state). It commits only if the order is still at
/// the version it was planned from.
#[derive(Debug, Clone)]
pub struct OrderChange {
    /// The order as it will be.
    pub order: ClobOrder,
    /// Its version once committed.
    pub version: u64,
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for OrderChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

impl OrderChange {
    /// The order as stored once the change commits.
    pub fn stored(&self) -> StoredOrder {
        StoredOrder {
            order: self.order.clone(),
            version: self.version,
        }
    }
}

/// What [`ClobOrders::record_fill`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRecorded {
    /// The order after the fill.
    pub order: StoredOrder,
    /// `Duplicate`: the fill was already recorded and nothing was written.
    pub outcome: FillOutcome,
}

/// Where [`ClobOrders::recently_closed`] continues: the closed-journal position of the last
/// order returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedCursor(pub u64);

/// One page of recently closed orders, newest first.
#[derive(Debug, Clone)]
pub struct ClosedPage {
    /// The orders, each as it closed, newest first.
    pub orders: Vec<ClobOrder>,
    /// The cursor for the next (older) page, if there may be one.
    pub next: Option<ClosedCursor>,
}

/// One deployment's CLOB orders on any [`StateStore`].
#[derive(Clone)]
pub struct ClobOrders {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    orders: Name,
    open: Name,
    by_intent: Name,
    closed: StreamAddr,
}

impl std::fmt::Debug for ClobOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClobOrders")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl ClobOrders {
    /// The orders of `deployment` in `store`.
    ///
    /// # Panics
    /// Never: the collection and stream names are constants, valid by construction.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        let name = |s: &str| Name::collection(s).expect("constant collection names are valid");
        Self {
            closed: StreamAddr {
                deployment_id: deployment.clone(),
                stream: Name::stream(CLOSED).expect("constant stream name is valid"),
            },
            store,
            deployment: deployment.clone(),
            orders: name(ORDERS),
            open: name(OPEN),
            by_intent: name(BY_INTENT),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    fn addr(&self, collection: &Name, key: &str) -> Result<DocAddr> {
        Ok(DocAddr {
            deployment_id: self.deployment.clone(),
            collection: collection.clone(),
            key: Name::key(key)?,
        })
    }

    /// Stores a new order (pending, no fills) and indexes it under its intent.
    ///
    /// # Errors
    /// `InvalidInput` for an order of another deployment or one that is not new;
    /// `Store(AlreadyExists)` if the order id is taken (open or closed); `Contended`.
    pub async fn create(&self, order: ClobOrder) -> Result<StoredOrder> {
        let own = tierstate_core::Target::document(&self.addr(&self.orders, order.order_id())?);
        // The intent index moved (or was created) under us: re-read it. A taken order id is
        // the caller's error.
        let index_moved = |e: &OrdersError| {
            matches!(
                e,
                OrdersError::Store(
                    tierstate_core::Error::Conflict { target, .. }
                    | tierstate_core::Error::AlreadyExists { target, .. },
                ) if *target != own
            )
        };
        retry_if(
            "the intent index",
            RetryPolicy::default(),
            index_moved,
            || async {
                let change = self.plan_create(&order).await?;
                self.commit(&change).await
            },
        )
        .await
    }

    /// Plans the creation of `order`: reads its intent's index to extend it.
    ///
    /// # Errors
    /// As [`ClobOrders::create`], without contention.
    pub async fn plan_create(&self, order: &ClobOrder) -> Result<OrderChange> {
        self.check_owned(order)?;
        if order.order.status != OrderStatus::Pending || !order.order.fills.is_empty() {
            return Err(OrdersError::invalid(
                "order",
                format!(
                    "a new order is pending with no fills; {} is {}",
                    order.order_id(),
                    order.order.status
                ),
            ));
        }
        let body = encode(order)?;
        let mut ops = vec![
            BatchOp::Document(DocWrite::new(
                self.addr(&self.orders, order.order_id())?,
                PutMode::Create,
                body.clone(),
            )),
            BatchOp::Document(DocWrite::new(
                self.addr(&self.open, order.order_id())?,
                PutMode::Overwrite,
                body,
            )),
        ];
        if let Some(intent) = &order.order.intent_id {
            let at = self.addr(&self.by_intent, intent)?;
            let (mut ids, mode) = match self.store.get_document(&at).await? {
                Some(d) => (
                    intent_ids(&d)?,
                    PutMode::Update {
                        expected: d.version,
                    },
                ),
                None => (Vec::new(), PutMode::Create),
            };
            ids.push(order.order_id().to_owned());
            let mut value = Map::new();
            value.insert("orders".into(), Value::from(ids));
            ops.push(BatchOp::Document(DocWrite::new(at, mode, value)));
        }
        Ok(OrderChange {
            order: order.clone(),
            version: 1,
            ops,
        })
    }

    /// The order, open or closed; `None` if never stored.
    ///
    /// # Errors
    /// `InvalidInput` for an empty, oversized or control-character id; `Store(Integrity)` for damaged bytes; `InvalidInput`/`UnknownValue`/`NewerSchema` for a
    /// stored order that does not decode; `Store` for I/O.
    pub async fn get(&self, order_id: &str) -> Result<Option<StoredOrder>> {
        check_id("order id", order_id)?;
        let key = Name::key(order_id)?;
        let at = DocAddr {
            deployment_id: self.deployment.clone(),
            collection: self.orders.clone(),
            key,
        };
        match self.store.get_document(&at).await? {
            Some(d) => Ok(Some(StoredOrder {
                version: d.version,
                order: decode(d.value)?,
            })),
            None => Ok(None),
        }
    }

    /// Moves the order from `current` (as read) to `to`: a compare-and-swap on its version.
    ///
    /// # Errors
    /// `InvalidTransition` (nothing written); `Store(Conflict)` with expected and actual
    /// versions if another writer changed it first: re-read and decide again.
    pub async fn update_status(
        &self,
        current: &StoredOrder,
        to: OrderStatus,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<StoredOrder> {
        let change = self.plan_status(current, to, at, error)?;
        self.commit(&change).await
    }

    /// Plans a status change of `current`; see [`ClobOrders::update_status`].
    ///
    /// # Errors
    /// `InvalidTransition`; `InvalidInput` for an order of another deployment.
    pub fn plan_status(
        &self,
        current: &StoredOrder,
        to: OrderStatus,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<OrderChange> {
        self.check_owned(&current.order)?;
        let mut next = current.order.clone();
        next.set_status(to, at, error)?;
        self.plan_update(current.version, next)
    }

    /// Records a fill on the stored order, re-reading it if another writer changes it
    /// meanwhile (fills are idempotent, so a retry cannot apply one twice).
    ///
    /// # Errors
    /// `OrderNotFound`; the fill errors of [`Order::apply_fill`]; `Contended`.
    pub async fn record_fill(&self, order_id: &str, fill: Fill) -> Result<FillRecorded> {
        retry_if(
            "the order",
            RetryPolicy::default(),
            |_| true,
            || async {
                let Some(current) = self.get(order_id).await? else {
                    return Err(OrdersError::OrderNotFound {
                        deployment: self.deployment.to_string(),
                        order: order_id.to_owned(),
                    });
                };
                let Some(change) = self.plan_fill(&current, fill.clone())? else {
                    return Ok(FillRecorded {
                        order: current,
                        outcome: FillOutcome::Duplicate,
                    });
                };
                Ok(FillRecorded {
                    order: self.commit(&change).await?,
                    outcome: FillOutcome::Applied,
                })
            },
        )
        .await
    }

    /// Plans recording `fill` on `current`; `None` if it is already recorded.
    ///
    /// # Errors
    /// As [`Order::apply_fill`].
    pub fn plan_fill(&self, current: &StoredOrder, fill: Fill) -> Result<Option<OrderChange>> {
        self.check_owned(&current.order)?;
        let mut next = current.order.clone();
        match next.apply_fill(fill)? {
            FillOutcome::Duplicate => Ok(None),
            FillOutcome::Applied => self.plan_update(current.version, next).map(Some),
        }
    }

    /// The records of an update from `expected` to `next`: the order, its open copy (or, once
    /// terminal, the copy's removal and a closed-journal entry).
    fn plan_update(&self, expected: u64, next: ClobOrder) -> Result<OrderChange> {
        let body = encode(&next)?;
        let mut ops = vec![BatchOp::Document(DocWrite::new(
            self.addr(&self.orders, next.order_id())?,
            PutMode::Update { expected },
            body.clone(),
        ))];
        let open = self.addr(&self.open, next.order_id())?;
        if next.order.status.is_terminal() {
            ops.push(BatchOp::DeleteDocument {
                address: open,
                expected: None,
            });
            ops.push(BatchOp::Append(
                Append::new(self.closed.clone(), next.updated_at, body)
                    .with_key(Name::key(next.order_id())?),
            ));
        } else {
            ops.push(BatchOp::Document(DocWrite::new(
                open,
                PutMode::Overwrite,
                body,
            )));
        }
        Ok(OrderChange {
            order: next,
            version: expected + 1,
            ops,
        })
    }

    /// Commits a planned change on its own.
    ///
    /// # Errors
    /// `Store(Conflict)`/`Store(AlreadyExists)` if the order moved since it was planned.
    pub async fn commit(&self, change: &OrderChange) -> Result<StoredOrder> {
        self.store.write(WriteBatch::new().with(&change)).await?;
        Ok(change.stored())
    }

    /// The open orders (pending, submitted, live, partially filled), optionally of one market,
    /// newest first. Reads only the open orders, however many have closed.
    ///
    /// # Errors
    /// As [`ClobOrders::get`]; one damaged order fails the call, naming it.
    pub async fn open_orders(&self, market_id: Option<&str>) -> Result<Vec<ClobOrder>> {
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
                let order = decode(d.value)?;
                if market_id.is_none_or(|m| m == order.market_id) {
                    out.push(order);
                }
            }
            if !full {
                break;
            }
        }
        out.sort_by(|a, b| (b.created_at, b.order_id()).cmp(&(a.created_at, a.order_id())));
        Ok(out)
    }

    /// The orders placed for an intent, oldest first, open or closed.
    ///
    /// # Errors
    /// `InvalidInput` for a bad intent id; as [`ClobOrders::get`]; `Store(Integrity)` if the index names an order that is gone.
    pub async fn by_intent(&self, intent_id: &str) -> Result<Vec<StoredOrder>> {
        check_id("intent id", intent_id)?;
        let key = Name::key(intent_id)?;
        let at = DocAddr {
            deployment_id: self.deployment.clone(),
            collection: self.by_intent.clone(),
            key,
        };
        let Some(index) = self.store.get_document(&at).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for id in intent_ids(&index)? {
            match self.get(&id).await? {
                Some(o) => out.push(o),
                None => {
                    return Err(OrdersError::invalid(
                        "intent index",
                        format!("{at} names order {id}, which is not stored"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` closed orders, newest first, each as it closed; continue from a page's
    /// `next`.
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit; as [`ClobOrders::get`].
    pub async fn recently_closed(
        &self,
        cursor: Option<ClosedCursor>,
        limit: usize,
    ) -> Result<ClosedPage> {
        if limit == 0 {
            return Err(OrdersError::invalid("limit", "must be at least 1"));
        }
        let to = match cursor {
            Some(ClosedCursor(0 | 1)) => {
                return Ok(ClosedPage {
                    orders: Vec::new(),
                    next: None,
                });
            }
            Some(ClosedCursor(seq)) => seq - 1,
            None => u64::MAX,
        };
        let page = self
            .store
            .read_journal(
                &self.closed,
                JournalQuery::Range {
                    from: 0,
                    to,
                    descending: true,
                    limit,
                },
            )
            .await?;
        let next = page
            .next
            .is_some()
            .then(|| page.entries.last().map(|e| ClosedCursor(e.seq)))
            .flatten();
        let orders = page
            .entries
            .into_iter()
            .map(|e| decode(e.value))
            .collect::<Result<_>>()?;
        Ok(ClosedPage { orders, next })
    }

    fn check_owned(&self, order: &ClobOrder) -> Result<()> {
        if order.deployment_id != self.deployment.as_str() {
            return Err(OrdersError::invalid(
                "order",
                format!(
                    "{} belongs to deployment {}, not {}",
                    order.order_id(),
                    order.deployment_id,
                    self.deployment
                ),
            ));
        }
        Ok(())
    }
}

fn intent_ids(d: &Document) -> Result<Vec<String>> {
    let ids = d.value.get("orders").cloned().ok_or_else(|| {
        OrdersError::invalid("intent index", format!("{} has no orders", d.address))
    })?;
    serde_json::from_value(ids).map_err(|e| {
        OrdersError::invalid("intent index", format!("{} is malformed: {e}", d.address))
    })
}

/// An order as its documents hold it (schema 2): the order, the record around it, and the
/// derived filled size and average price for readers of the raw record (checked against the
/// fills on every read).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderDoc {
    deployment_id: String,
    market_id: String,
    order: Order,
    filled_size: Decimal,
    average_fill_price: Decimal,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    metadata: Map<String, Value>,
}

/// Schema 1: the CLOB order of tierstate up to 6e4015a, with its own fills and order types.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderDocV1 {
    order_id: String,
    deployment_id: String,
    market_id: String,
    token_id: String,
    side: Side,
    order_type: String,
    price: Decimal,
    size: Decimal,
    status: OrderStatus,
    filled_size: Decimal,
    average_fill_price: Decimal,
    fills: Vec<FillV1>,
    intent_id: Option<String>,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    error: Option<String>,
    metadata: Map<String, Value>,
}

/// Schema 1's fill: it named its order.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FillV1 {
    fill_id: String,
    order_id: String,
    price: Decimal,
    size: Decimal,
    fee: Decimal,
    time: DateTime<Utc>,
    counterparty: Option<String>,
}

/// The step from schema 1: the same order as the one model holds it.
fn from_v1(d: OrderDocV1) -> Result<OrderDoc> {
    let tif = match d.order_type.as_str() {
        "GTC" => TimeInForce::Gtc,
        "IOC" => TimeInForce::Ioc,
        "FOK" => TimeInForce::Fok,
        other => {
            return Err(OrdersError::invalid(
                "order type",
                format!("{other:?}: expected GTC, IOC or FOK"),
            ));
        }
    };
    let mut fills = Vec::with_capacity(d.fills.len());
    for f in d.fills {
        if f.order_id != d.order_id {
            return Err(OrdersError::invalid(
                "fills",
                format!(
                    "fill {} names order {}, not {}",
                    f.fill_id, f.order_id, d.order_id
                ),
            ));
        }
        fills.push(Fill {
            fill_id: f.fill_id,
            price: f.price,
            size: f.size,
            fee: f.fee,
            time: Some(f.time),
            counterparty: f.counterparty,
        });
    }
    let mut order = Order::new(
        d.order_id,
        OrderSpec {
            symbol: d.token_id,
            side: d.side,
            kind: OrderKind::Limit,
            price: Some(d.price),
            size: d.size,
            tif,
        },
    )?;
    order.intent_id = d.intent_id;
    order.status = d.status;
    order.fills = fills;
    order.error = d.error;
    Ok(OrderDoc {
        deployment_id: d.deployment_id,
        market_id: d.market_id,
        order,
        filled_size: d.filled_size,
        average_fill_price: d.average_fill_price,
        created_at: d.created_at,
        submitted_at: d.submitted_at,
        updated_at: d.updated_at,
        metadata: d.metadata,
    })
}

pub(crate) fn encode(o: &ClobOrder) -> Result<Map<String, Value>> {
    o.validate()?;
    let doc = OrderDoc {
        deployment_id: o.deployment_id.clone(),
        market_id: o.market_id.clone(),
        order: o.order.clone(),
        filled_size: o.order.filled(),
        average_fill_price: o.order.average_fill_price(),
        created_at: o.created_at,
        submitted_at: o.submitted_at,
        updated_at: o.updated_at,
        metadata: o.metadata.clone(),
    };
    tierstate_core::codec::encode_doc(ORDER_SCHEMA, &doc)
        .map_err(|e| OrdersError::invalid("order", e))
}

/// Decodes a stored CLOB order of schema 1 or 2 and checks it.
pub(crate) fn decode(value: Map<String, Value>) -> Result<ClobOrder> {
    let malformed = |e| {
        OrdersError::stored(
            "order",
            "a stored CLOB order",
            "a stored CLOB order is malformed",
            e,
        )
    };
    tierstate_core::codec::check_schema(&value, ORDER_SCHEMA).map_err(malformed)?;
    let d = if tierstate_core::codec::schema_of(&value) <= 1 {
        from_v1(tierstate_core::codec::decode_doc::<OrderDocV1>(1, value).map_err(malformed)?)?
    } else {
        tierstate_core::codec::decode_doc::<OrderDoc>(ORDER_SCHEMA, value).map_err(malformed)?
    };
    let order = ClobOrder {
        order: d.order,
        deployment_id: d.deployment_id,
        market_id: d.market_id,
        created_at: d.created_at,
        submitted_at: d.submitted_at,
        updated_at: d.updated_at,
        metadata: d.metadata,
    };
    order.validate()?;
    if order.order.filled() != d.filled_size
        || order.order.average_fill_price() != d.average_fill_price
    {
        return Err(OrdersError::invalid(
            "order",
            format!(
                "{}: stored filled size {} / average price {} disagree with its fills ({} / {})",
                order.order_id(),
                d.filled_size,
                d.average_fill_price,
                order.order.filled(),
                order.order.average_fill_price()
            ),
        ));
    }
    Ok(order)
}
