//! The reconciliation engine: compares each intent (desired) with its actual order and the
//! venue, and acts: place what is missing, resolve what is unknown by client id, modify what
//! differs beyond tolerance, cancel what is no longer wanted (and the rest of a filled OCO
//! group), mark done what matches.
//!
//! **Never a duplicate order.** Before a send, the placement (client order id included) is
//! durable. A send whose outcome is unknown (a timeout, or a crash after sending) stays
//! `Unknown`/`PendingSubmit` and is resolved by querying the venue by client id: found, it is
//! adopted; not found, it is sent again *with the same client id*, which the venue refuses as a
//! duplicate if the first send arrives after all.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use rust_decimal::Decimal;

use crate::error::{OrdersError, Result};
use crate::event::{OrderEvent, fold};
use crate::exchange::{Exchange, ExchangeError};
use crate::intent::{IntentStatus, OrderIntent};
use crate::order::{Order, OrderSpec, OrderStatus, TimeInForce};
use crate::retry::{RetryPolicy, retry_on_conflict};
use crate::store::{OrderStore, ReconStatus, StoredActual, StoredIntent};

/// What the engine did for an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sent a new order.
    Place {
        /// The intent.
        intent: String,
        /// Its client order id.
        client_order_id: String,
    },
    /// Found an order of unknown outcome on the venue and took it over.
    Adopt {
        /// The intent.
        intent: String,
    },
    /// Recorded fills or a status the venue reported.
    Sync {
        /// The intent.
        intent: String,
    },
    /// Changed price or size on the venue.
    Modify {
        /// The intent.
        intent: String,
    },
    /// Cancelled an order no longer wanted.
    Cancel {
        /// The intent.
        intent: String,
    },
    /// Marked the intent done (filled), or cancelled its OCO siblings.
    Done {
        /// The intent.
        intent: String,
    },
}

impl Action {
    fn kind(&self) -> usize {
        match self {
            Action::Place { .. } => 0,
            Action::Adopt { .. } => 1,
            Action::Sync { .. } => 2,
            Action::Modify { .. } => 3,
            Action::Cancel { .. } => 4,
            Action::Done { .. } => 5,
        }
    }
}

/// Counters of the engine, readable at any time.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// Passes over every intent.
    pub passes: AtomicU64,
    /// Intents whose reconciliation failed (retried on the next pass).
    pub errors: AtomicU64,
    /// Passes retried after a failure, with backoff.
    pub retries: AtomicU64,
    /// Orders whose outcome was not yet known after the last pass.
    pub pending: AtomicU64,
    /// Milliseconds the last pass took.
    pub lag_ms: AtomicU64,
    /// Actions by kind: place, adopt, sync, modify, cancel, done.
    pub actions: [AtomicU64; 6],
    /// Whether the loop of [`Reconciler::start`] is running (seed 001's `running`).
    pub running: AtomicBool,
}

/// The engine's state at one moment: whether its loop runs, and its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStatus {
    /// The loop of [`Reconciler::start`] is running.
    pub running: bool,
    /// Passes over every intent.
    pub passes: u64,
    /// Intents whose reconciliation failed.
    pub errors: u64,
    /// Passes retried after a failure.
    pub retries: u64,
    /// Orders whose outcome was not yet known after the last pass.
    pub pending: u64,
    /// Milliseconds the last pass took.
    pub lag_ms: u64,
}

/// Clears `running` when the loop's task ends, however it ends.
struct Running(Arc<EngineMetrics>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// One pass's outcome.
#[derive(Debug, Default)]
pub struct Pass {
    /// What was done, intent by intent in id order.
    pub actions: Vec<Action>,
    /// Intents that failed, with why (tried again next pass).
    pub errors: Vec<(String, OrdersError)>,
}

/// The engine for one deployment's orders against one venue.
pub struct Reconciler {
    orders: OrderStore,
    exchange: Arc<dyn Exchange>,
    tolerance: Decimal,
    metrics: Arc<EngineMetrics>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("orders", &self.orders)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// An engine; a price differing by no more than `tolerance` counts as matching.
    pub fn new(orders: OrderStore, exchange: Arc<dyn Exchange>, tolerance: Decimal) -> Self {
        Self {
            orders,
            exchange,
            tolerance,
            metrics: Arc::default(),
        }
    }

    /// Its counters.
    pub fn metrics(&self) -> Arc<EngineMetrics> {
        self.metrics.clone()
    }

    /// Whether its loop runs, with its counters (seed 001's `get_metrics`).
    pub fn status(&self) -> EngineStatus {
        let m = &self.metrics;
        EngineStatus {
            running: m.running.load(Ordering::Acquire),
            passes: m.passes.load(Ordering::Relaxed),
            errors: m.errors.load(Ordering::Relaxed),
            retries: m.retries.load(Ordering::Relaxed),
            pending: m.pending.load(Ordering::Relaxed),
            lag_ms: m.lag_ms.load(Ordering::Relaxed),
        }
    }

    /// The store it works on.
    pub fn orders(&self) -> &OrderStore {
        &self.orders
    }

    /// One pass over every intent (and every actual order whose intent is gone), in id order.
    /// It reads in bulk: one paged scan of the intents, one of the orders and one list of the
    /// venue's open orders; an intent with nothing to do costs no further read, and only one
    /// that acts (or whose order left the venue's open list) is read and asked about again.
    ///
    /// # Errors
    /// `Store` if the intents cannot be listed; a failing intent is reported in the pass.
    pub async fn reconcile_all(&self) -> Result<Pass> {
        let started = std::time::Instant::now();
        // The venue's open orders by client id; without them (a venue that cannot list), each
        // working order is asked about on its own.
        let open = match self.exchange.open_orders(None).await {
            Ok(orders) => Some(
                orders
                    .into_iter()
                    .map(|o| (o.client_order_id.clone(), o))
                    .collect::<HashMap<_, _>>(),
            ),
            Err(e) => {
                tracing::debug!(error = %e, "venue's open orders unavailable; asking per order");
                None
            }
        };
        // Intents and orders are both keyed by intent id: one walk over the two in key
        // order, a page of each at a time.
        // Each side reads its next page while this one is worked on: a key's own action
        // writes only that key, which an earlier page holds.
        let mut intents = Paged::new(self.orders.clone(), |o, after| async move {
            let page = o.intent_page(after.as_deref(), PASS_PAGE).await?;
            Ok(page
                .into_iter()
                .map(|i| (i.intent.intent_id.clone(), i))
                .collect())
        });
        let mut actuals = Paged::new(self.orders.clone(), |o, after| async move {
            o.actual_page(after.as_deref(), PASS_PAGE).await
        });
        let mut pass = Pass::default();
        let mut pending = 0u64;
        loop {
            intents.refill().await?;
            actuals.refill().await?;
            let id = match (intents.next_key(), actuals.next_key()) {
                (None, None) => break,
                (Some(x), Some(y)) => x.min(y).to_owned(),
                (Some(x), None) | (None, Some(x)) => x.to_owned(),
            };
            let (i, a) = (intents.take(&id), actuals.take(&id));
            if self.settled(i.as_ref(), a.as_ref(), open.as_ref()) {
                pending += u64::from(a.is_some_and(|a| a.recon == ReconStatus::Pending));
                continue;
            }
            // The first step works on what the scans read; a later one (or a lost
            // compare-and-swap: the strategy changed the intent meanwhile) re-reads.
            let first = self.step(&id, i.as_ref(), a.as_ref(), open.as_ref()).await;
            let outcome = match first {
                Ok(None) => {
                    pending += u64::from(a.is_some_and(|a| a.recon == ReconStatus::Pending));
                    continue;
                }
                Ok(Some(action)) => {
                    pass.actions.push(action);
                    let once = || self.steps(&id, 3);
                    retry_on_conflict("an order", RetryPolicy::default(), once).await
                }
                Err(e) if e.is_conflict() => {
                    let once = || self.steps(&id, 4);
                    retry_on_conflict("an order", RetryPolicy::default(), once).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(actions) => pass.actions.extend(actions),
                Err(e) => {
                    tracing::warn!(intent = %id, error = %e, "reconciliation failed; retried next pass");
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    pass.errors.push((id.clone(), e));
                }
            }
            // Acted on (or failed): its order as it stands now.
            if let Ok(Some(a)) = self.orders.actual(&id).await {
                pending += u64::from(a.recon == ReconStatus::Pending);
            }
        }
        let m = &self.metrics;
        m.passes.fetch_add(1, Ordering::Relaxed);
        m.pending.store(pending, Ordering::Relaxed);
        m.lag_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        for a in &pass.actions {
            m.actions[a.kind()].fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(
            actions = pass.actions.len(),
            errors = pass.errors.len(),
            pending,
            "reconciliation pass"
        );
        Ok(pass)
    }

    /// Brings one intent's order in line with the intent, acting as needed (see the module
    /// docs). Deterministic: the same intent, actual order and venue give the same actions.
    ///
    /// # Errors
    /// `Exchange` for a venue that is unavailable (nothing is lost: the next call resumes);
    /// `Store` (a `Conflict` if someone changed the order meanwhile).
    pub async fn reconcile_intent(&self, intent_id: &str) -> Result<Vec<Action>> {
        // A few steps at most: resolve, then act on what was found.
        self.steps(intent_id, 4).await
    }

    /// Up to `max` steps, each on a fresh read of the intent and its order.
    async fn steps(&self, intent_id: &str, max: usize) -> Result<Vec<Action>> {
        let mut actions = Vec::new();
        for _ in 0..max {
            let intent = self.orders.intent(intent_id).await?;
            let actual = self.orders.actual(intent_id).await?;
            match self
                .step(intent_id, intent.as_ref(), actual.as_ref(), None)
                .await?
            {
                Some(a) => actions.push(a),
                None => break,
            }
        }
        Ok(actions)
    }

    /// Whether [`Reconciler::step`] would find nothing to do and write nothing, decided from
    /// what the pass read, without I/O: the common case of a pass, kept off the async path.
    fn settled(
        &self,
        intent: Option<&StoredIntent>,
        actual: Option<&StoredActual>,
        open: Option<&HashMap<String, Order>>,
    ) -> bool {
        let wanted = intent.filter(|i| i.intent.status == IntentStatus::Active);
        match (wanted, actual) {
            (_, Some(a)) if a.order.status.is_unresolved() => false,
            (None, Some(a)) => a.order.status.is_terminal(),
            (None, None) => true,
            (Some(_), None) => false,
            (Some(i), Some(a)) => {
                if !a.order.status.is_terminal() {
                    let Some(v) = open.and_then(|m| m.get(&a.order.client_order_id)) else {
                        return false;
                    };
                    if !venue_events(&a.order, v).is_empty() {
                        return false;
                    }
                }
                matches!(self.decide(&i.intent, &a.order), Decision::Hold)
                    && a.recon == hold_recon(&a.order)
            }
        }
    }

    /// One decision and its action; `None` when nothing is left to do. `open`: the venue's
    /// open orders by client id, listed this pass (`None`: ask the venue about the order).
    async fn step(
        &self,
        id: &str,
        intent: Option<&StoredIntent>,
        actual: Option<&StoredActual>,
        open: Option<&HashMap<String, Order>>,
    ) -> Result<Option<Action>> {
        let wanted = intent.filter(|i| i.intent.status == IntentStatus::Active);
        match (wanted, actual) {
            (Some(i), None) => self.place(&i.intent, None).await.map(Some),
            (_, Some(a)) if a.order.status.is_unresolved() => self.resolve(id, wanted, a).await,
            (Some(i), Some(a)) => self.keep(i, a, open).await,
            (None, Some(a)) if !a.order.status.is_terminal() => self.cancel(id, a).await.map(Some),
            (None, _) => Ok(None),
        }
    }

    /// Applies events that leave the order in place (no `Removed`), returning it as stored.
    async fn advance(
        &self,
        id: &str,
        current: Option<&StoredActual>,
        events: &[OrderEvent],
        recon: ReconStatus,
    ) -> Result<StoredActual> {
        self.orders
            .apply(id, current, events, recon, Utc::now())
            .await?
            .ok_or_else(|| {
                OrdersError::invalid("order events", format!("{id}: they removed the order"))
            })
    }

    /// Makes a placement of what the intent may still trade durable (replacing `replaces`, a
    /// terminal placement, whose fills then count as prior), then sends it.
    async fn place(&self, intent: &OrderIntent, replaces: Option<&StoredActual>) -> Result<Action> {
        let id = &intent.intent_id;
        let client = intent.client_order_id();
        let mut spec = intent.spec.clone();
        spec.size = intent.spec.size - filled_toward(intent, replaces.map(|a| &a.order));
        if spec.size <= Decimal::ZERO {
            return Err(OrdersError::invalid(
                "placement",
                format!("{id}: nothing left to trade"),
            ));
        }
        let event = match replaces {
            Some(_) => OrderEvent::Replaced {
                revision: intent.revision,
                client_order_id: client.clone(),
                spec,
            },
            None => OrderEvent::Created {
                revision: intent.revision,
                client_order_id: client.clone(),
                spec,
            },
        };
        let pending = self
            .advance(id, replaces, &[event], ReconStatus::Pending)
            .await?;
        self.send(intent, &pending).await?;
        Ok(Action::Place {
            intent: id.clone(),
            client_order_id: client,
        })
    }

    /// Sends a durable placement and records the answer.
    async fn send(&self, intent: &OrderIntent, pending: &StoredActual) -> Result<()> {
        let id = &intent.intent_id;
        let order = &pending.order;
        let result = self
            .exchange
            .place(&order.client_order_id, &order.spec)
            .await;
        let now = Utc::now();
        match result {
            Ok(v) => {
                let mut events = vec![
                    OrderEvent::Submitted,
                    OrderEvent::Acked {
                        exchange_order_id: venue_id(&v)?,
                    },
                ];
                let acked = fold_all(order, &events)?;
                events.extend(venue_events(&acked, &v));
                self.orders
                    .apply(id, Some(pending), &events, ReconStatus::InSync, now)
                    .await?;
                Ok(())
            }
            Err(ExchangeError::Unknown(why)) => {
                tracing::info!(intent = %id, %why, "send outcome unknown; resolving by client id");
                self.orders
                    .apply(
                        id,
                        Some(pending),
                        &[OrderEvent::Submitted, OrderEvent::Unknown],
                        ReconStatus::Pending,
                        now,
                    )
                    .await?;
                Ok(())
            }
            Err(ExchangeError::Duplicate(_)) => Ok(()), // an earlier send arrived: resolve it
            Err(ExchangeError::Rejected(reason)) => {
                self.orders
                    .apply(
                        id,
                        Some(pending),
                        &[OrderEvent::Submitted, OrderEvent::Rejected { reason }],
                        ReconStatus::Diverged,
                        now,
                    )
                    .await?;
                Ok(())
            }
            Err(e) => Err(e.into()), // unavailable: nothing sent; stays pending
        }
    }

    /// Resolves an unknown outcome by client id: adopt what the venue has, or send again with
    /// the same client id while the intent still wants that placement (or give it up if the
    /// intent no longer wants it).
    async fn resolve(
        &self,
        id: &str,
        wanted: Option<&StoredIntent>,
        a: &StoredActual,
    ) -> Result<Option<Action>> {
        let found = self.exchange.query(&a.order.client_order_id).await?;
        let now = Utc::now();
        match found {
            Some(v) => {
                let adopted = vec![OrderEvent::Adopted {
                    exchange_order_id: venue_id(&v)?,
                }];
                let mut events = adopted.clone();
                events.extend(venue_events(&fold_all(&a.order, &adopted)?, &v));
                self.orders
                    .apply(id, Some(a), &events, ReconStatus::InSync, now)
                    .await?;
                Ok(Some(Action::Adopt {
                    intent: id.to_owned(),
                }))
            }
            None => match wanted {
                Some(i) => {
                    let left = i.intent.spec.size
                        - a.order
                            .prior_filled(&i.intent.spec.symbol, i.intent.spec.side);
                    if left <= Decimal::ZERO || left < self.exchange.min_size(&i.intent.spec.symbol)
                    {
                        // Earlier placements filled it: done. Should this send land after
                        // all, it is adopted and cancelled (the intent no longer wants it).
                        return self.finish(i, a).await.map(Some);
                    }
                    // Send again under the same client order id, as the intent now wants it:
                    // the venue keeps at most one order per client id, so either this send or
                    // the first one lands, never both (a late first one is adopted with the
                    // order it carries, then modified or cancelled).
                    let mut spec = i.intent.spec.clone();
                    spec.size = left;
                    let mut events = Vec::new();
                    if spec != a.order.spec {
                        events.push(OrderEvent::SpecSet { spec });
                    }
                    events.push(OrderEvent::NotFound);
                    let again = self
                        .advance(id, Some(a), &events, ReconStatus::Pending)
                        .await?;
                    self.send(&i.intent, &again).await?;
                    Ok(Some(Action::Place {
                        intent: id.to_owned(),
                        client_order_id: a.order.client_order_id.clone(),
                    }))
                }
                // Not wanted, and not on the venue: yet. "Not found" is no proof the send will
                // never land, so the placement stays pending and is queried again each pass;
                // if it lands, it is adopted, then cancelled.
                None => {
                    if a.order.status == OrderStatus::Submitted {
                        self.orders
                            .apply(
                                id,
                                Some(a),
                                &[OrderEvent::NotFound],
                                ReconStatus::Pending,
                                now,
                            )
                            .await?;
                    }
                    Ok(None)
                }
            },
        }
    }

    /// An active intent with a known order: sync with the venue, then modify, cancel, finish
    /// or replace as the over-trading rule says (see [`Reconciler::decide`]).
    async fn keep(
        &self,
        i: &StoredIntent,
        a: &StoredActual,
        open: Option<&HashMap<String, Order>>,
    ) -> Result<Option<Action>> {
        let id = &i.intent.intent_id;
        let now = Utc::now();
        // An order in the venue's open list is as listed; one missing from it (filled,
        // cancelled or expired since) is asked about.
        let listed = open.and_then(|m| m.get(&a.order.client_order_id)).cloned();
        if !a.order.status.is_terminal()
            && let Some(v) = match listed {
                Some(v) => Some(v),
                None => self.exchange.query(&a.order.client_order_id).await?,
            }
        {
            let events = venue_events(&a.order, &v);
            if !events.is_empty() {
                self.orders
                    .apply(id, Some(a), &events, ReconStatus::InSync, now)
                    .await?;
                return Ok(Some(Action::Sync { intent: id.clone() }));
            }
        }
        match self.decide(&i.intent, &a.order) {
            Decision::Cancel => self.cancel(id, a).await.map(Some),
            Decision::Modify { size } => self.modify(&i.intent, a, size).await.map(Some),
            Decision::Finish => self.finish(i, a).await.map(Some),
            Decision::Replace => {
                if i.intent.revision > a.order.revision {
                    return self.place(&i.intent, Some(a)).await.map(Some);
                }
                let mut next = i.intent.clone();
                next.revision += 1;
                next.updated_at = now;
                let bumped = self.orders.update_intent(i, next).await?;
                self.place(&bumped.intent, Some(a)).await.map(Some)
            }
            Decision::Hold => {
                let recon = hold_recon(&a.order);
                if a.recon != recon {
                    self.orders.apply(id, Some(a), &[], recon, now).await?;
                }
                Ok(None)
            }
        }
    }

    /// The over-trading rule. What the intent may still trade is its size minus everything
    /// filled across all its placements in its direction (market and side). A working order
    /// that the venue cannot modify into the intent's (another market, side, kind or time in
    /// force), or that is no longer needed because nothing is left, is cancelled; one that can
    /// is modified to the intent's price and to a size that leaves exactly the remainder. Once
    /// the order is terminal: nothing left (or less than the venue's minimum) finishes the
    /// intent; an IOC order that ran its course finishes it too (IOC is one shot); otherwise a
    /// replacement is placed for the remainder. A rejected order waits for the intent to
    /// change (the strategy decides).
    fn decide(&self, i: &OrderIntent, a: &Order) -> Decision {
        let left = i.spec.size - filled_toward(i, Some(a));
        let nothing_left = left <= Decimal::ZERO || left < self.exchange.min_size(&i.spec.symbol);
        if !a.status.is_terminal() {
            if nothing_left || !same_kind(&i.spec, &a.spec) || a.exchange_order_id.is_none() {
                return Decision::Cancel;
            }
            if a.status == OrderStatus::CancelRequested {
                // Its cancel went out but the venue still has it: ask again.
                return Decision::Cancel;
            }
            let size = i.spec.size - a.prior_filled(&i.spec.symbol, i.spec.side);
            if self.price_moved(i, a) || a.spec.size != size {
                return Decision::Modify { size };
            }
            return Decision::Hold;
        }
        if nothing_left {
            return Decision::Finish;
        }
        let this_direction = same_kind(&i.spec, &a.spec);
        match a.status {
            OrderStatus::Failed => {
                let as_rejected = this_direction
                    && !self.price_moved(i, a)
                    && a.spec.size == i.spec.size - a.prior_filled(&i.spec.symbol, i.spec.side);
                if as_rejected && i.revision <= a.revision {
                    Decision::Hold
                } else {
                    Decision::Replace
                }
            }
            _ if this_direction && i.spec.tif == TimeInForce::Ioc && i.revision <= a.revision => {
                Decision::Finish
            }
            _ => Decision::Replace,
        }
    }

    fn price_moved(&self, i: &OrderIntent, a: &Order) -> bool {
        match (i.spec.price, a.spec.price) {
            (Some(x), Some(y)) => (x - y).abs() > self.tolerance,
            (x, y) => x != y,
        }
    }

    /// Marks the intent done; if it traded, the rest of its OCO group is no longer wanted.
    async fn finish(&self, i: &StoredIntent, a: &StoredActual) -> Result<Action> {
        let id = &i.intent.intent_id;
        let now = Utc::now();
        let mut done = i.intent.clone();
        done.status = IntentStatus::Done;
        done.updated_at = now;
        self.orders.update_intent(i, done).await?;
        let traded = filled_toward(&i.intent, Some(&a.order)) > Decimal::ZERO;
        if traded && let Some(g) = &i.intent.oco_group {
            for sib in self.orders.group(g).await? {
                if sib.intent.intent_id != *id && sib.intent.status == IntentStatus::Active {
                    let mut c = sib.intent.clone();
                    c.status = IntentStatus::Cancelled;
                    c.updated_at = now;
                    self.orders.update_intent(&sib, c).await?;
                }
            }
        }
        Ok(Action::Done { intent: id.clone() })
    }

    /// Changes the working order's price to the intent's and its size to `size` (its fills
    /// plus the intent's remainder).
    async fn modify(&self, i: &OrderIntent, a: &StoredActual, size: Decimal) -> Result<Action> {
        let id = &i.intent_id;
        let x = a
            .order
            .exchange_order_id
            .clone()
            .ok_or_else(|| OrdersError::invalid("modify", "no exchange id yet"))?;
        let v = self.exchange.modify(&x, i.spec.price, size).await?;
        let modified = vec![OrderEvent::Modified {
            price: v.spec.price,
            size: v.spec.size,
            revision: i.revision,
        }];
        let mut events = modified.clone();
        events.extend(venue_events(&fold_all(&a.order, &modified)?, &v));
        self.orders
            .apply(id, Some(a), &events, ReconStatus::InSync, Utc::now())
            .await?;
        Ok(Action::Modify { intent: id.clone() })
    }

    /// Records the cancel request, then sends it; a lost answer is resolved by the next sync.
    async fn cancel(&self, id: &str, a: &StoredActual) -> Result<Action> {
        let requested = if a.order.status == OrderStatus::CancelRequested {
            a.clone()
        } else {
            self.advance(
                id,
                Some(a),
                &[OrderEvent::CancelRequested],
                ReconStatus::Pending,
            )
            .await?
        };
        let x = requested.order.exchange_order_id.clone();
        let answer = match &x {
            Some(x) => self.exchange.cancel(x).await,
            None => Err(ExchangeError::NotFound(id.to_owned())),
        };
        let v = match answer {
            Ok(v) => Some(v),
            Err(ExchangeError::Unknown(_)) => None,
            Err(ExchangeError::NotFound(_)) => {
                self.exchange
                    .query(&requested.order.client_order_id)
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        let v = match v {
            Some(v) => Some(v),
            None => self
                .exchange
                .query(&requested.order.client_order_id)
                .await
                .ok()
                .flatten(),
        };
        if let Some(v) = v {
            let events = venue_events(&requested.order, &v);
            self.orders
                .apply(
                    id,
                    Some(&requested),
                    &events,
                    ReconStatus::InSync,
                    Utc::now(),
                )
                .await?;
        }
        Ok(Action::Cancel {
            intent: id.to_owned(),
        })
    }

    /// Runs passes every `every` until stopped; a failing pass is retried with jittered
    /// backoff (core's retry helper, capped at `every`). [`Reconciler::status`] says it runs
    /// from here until the loop has ended.
    ///
    /// # Errors
    /// `InvalidInput` if its loop already runs (two loops would send every action twice).
    pub fn start(self: Arc<Self>, every: Duration) -> Result<EngineHandle> {
        if self.metrics.running.swap(true, Ordering::AcqRel) {
            return Err(OrdersError::invalid(
                "engine",
                "its loop is already running; stop that handle first",
            ));
        }
        let running = Running(self.metrics.clone());
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _running = running;
            // Failing passes back off on core's retry helper, capped at `every`; a good pass
            // starts the delays over.
            let policy = tierstate_core::RetryPolicy {
                attempts: u32::MAX,
                min_delay: Duration::from_millis(10),
                max_delay: every,
            };
            let mut backoff = tierstate_core::Backoff::new(policy);
            loop {
                let failed = !matches!(self.reconcile_all().await, Ok(p) if p.errors.is_empty());
                if failed {
                    self.metrics.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        _ = backoff.wait() => {}
                        _ = stop_rx.changed() => return,
                    }
                    continue;
                }
                backoff = tierstate_core::Backoff::new(policy);
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        });
        Ok(EngineHandle {
            stop: stop_tx,
            task,
        })
    }
}

/// A running engine loop.
#[derive(Debug)]
pub struct EngineHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EngineHandle {
    /// Stops the loop after its current pass and waits for it.
    ///
    /// # Errors
    /// The task's join error if it panicked.
    pub async fn stop(self) -> std::result::Result<(), tokio::task::JoinError> {
        let _ = self.stop.send(true);
        self.task.await
    }
}

/// What the engine does next with an active intent's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Nothing: the order matches (or waits for the strategy).
    Hold,
    /// Change the working order's price and total size.
    Modify { size: Decimal },
    /// Cancel the working order.
    Cancel,
    /// Place a new order for the remainder.
    Replace,
    /// The intent is done.
    Finish,
}

/// Whether two orders are the same market, side, kind and time in force: what a venue cannot
/// modify.
/// The reconciliation status of an order the rule holds: a failed one has diverged.
fn hold_recon(a: &Order) -> ReconStatus {
    if a.status == OrderStatus::Failed {
        ReconStatus::Diverged
    } else {
        ReconStatus::InSync
    }
}

/// Records read per page by a pass.
const PASS_PAGE: usize = 1000;

/// A page read in the background: its task, aborted if the pass stops early.
type PageTask<T> = tokio::task::JoinHandle<Result<Vec<(String, T)>>>;

/// One side of a pass's walk: the page in hand, and the next one already being read (on a
/// worker, so reading and decoding overlap with deciding).
struct Paged<T, F> {
    buf: std::collections::VecDeque<(String, T)>,
    ahead: Option<PageTask<T>>,
    orders: OrderStore,
    read: F,
}

impl<T, F, Fut> Paged<T, F>
where
    T: Send + 'static,
    F: Fn(OrderStore, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, T)>>> + Send + 'static,
{
    fn new(orders: OrderStore, read: F) -> Self {
        let ahead = Some(tokio::spawn(read(orders.clone(), None)));
        Self {
            buf: std::collections::VecDeque::new(),
            ahead,
            orders,
            read,
        }
    }

    /// With the page in hand used up, takes the page read ahead and starts the next.
    async fn refill(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            return Ok(());
        }
        let Some(task) = self.ahead.take() else {
            return Ok(());
        };
        let page = match task.await {
            Ok(page) => page?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels it: the pass stops with it.
            Err(e) => {
                let kind = tierstate_core::BackendErrorKind::Closed;
                return Err(tierstate_core::Error::backend("runtime", kind, e).into());
            }
        };
        if page.len() == PASS_PAGE
            && let Some((k, _)) = page.last()
        {
            let next = (self.read)(self.orders.clone(), Some(k.clone()));
            self.ahead = Some(tokio::spawn(next));
        }
        self.buf.extend(page);
        Ok(())
    }

    fn next_key(&self) -> Option<&str> {
        self.buf.front().map(|(k, _)| k.as_str())
    }

    fn take(&mut self, key: &str) -> Option<T> {
        if self.next_key() == Some(key) {
            self.buf.pop_front().map(|(_, v)| v)
        } else {
            None
        }
    }
}

impl<T, F> Drop for Paged<T, F> {
    fn drop(&mut self) {
        if let Some(t) = self.ahead.take() {
            t.abort();
        }
    }
}

fn same_kind(x: &OrderSpec, y: &OrderSpec) -> bool {
    x.symbol == y.symbol && x.side == y.side && x.kind == y.kind && x.tif == y.tif
}

/// What the intent has filled in its direction across every placement (`a`, if any).
fn filled_toward(i: &OrderIntent, a: Option<&Order>) -> Decimal {
    a.map_or(Decimal::ZERO, |a| {
        a.filled_toward(&i.spec.symbol, i.spec.side)
    })
}

/// The venue's id of an order it reported: a report without one is refused, never adopted.
fn venue_id(v: &Order) -> Result<String> {
    v.exchange_order_id.clone().ok_or_else(|| {
        OrdersError::invalid(
            "venue order",
            format!(
                "the venue reported {} without an exchange id",
                v.client_order_id
            ),
        )
    })
}

/// The order after `events`.
fn fold_all(a: &Order, events: &[OrderEvent]) -> Result<Order> {
    let mut next = Some(a.clone());
    for e in events {
        next = fold(next, a.intent_id.as_deref().unwrap_or_default(), e)?;
    }
    next.ok_or_else(|| OrdersError::invalid("order events", "they removed the order"))
}

/// The events that bring `a` up to what the venue reports: its price and size, new fills
/// (each once), and a terminal status (a venue's `Filled` included).
fn venue_events(a: &Order, v: &Order) -> Vec<OrderEvent> {
    let mut out = Vec::new();
    if a.exchange_order_id.is_none()
        && !a.status.is_unresolved()
        && let Some(x) = &v.exchange_order_id
    {
        out.push(OrderEvent::Adopted {
            exchange_order_id: x.clone(),
        });
    }
    if v.spec != a.spec {
        // The venue is the truth about the order it holds (e.g. a late first send of a
        // placement that was resent as the intent changed).
        out.push(OrderEvent::SpecSet {
            spec: v.spec.clone(),
        });
    }
    let mut filled = a.filled();
    let mut new_fills = false;
    for f in &v.fills {
        if !a.fills.iter().any(|x| x.fill_id == f.fill_id) {
            filled += f.size;
            new_fills = true;
            out.push(OrderEvent::Filled { fill: f.clone() });
        }
    }
    // A new fill that reaches the order's size marks it filled by itself.
    let filled_by_fills = new_fills && filled >= v.spec.size;
    match v.status {
        OrderStatus::Cancelled if a.status != OrderStatus::Cancelled => {
            out.push(OrderEvent::Cancelled)
        }
        OrderStatus::Expired if a.status != OrderStatus::Expired => out.push(OrderEvent::Expired),
        OrderStatus::Filled if a.status != OrderStatus::Filled && !filled_by_fills => {
            out.push(OrderEvent::Completed)
        }
        _ => {}
    }
    out
}
