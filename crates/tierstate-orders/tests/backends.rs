//! Orders on every backend (memory, SQLite, redb, PostgreSQL): the stores, their indexes and
//! journals, and the engine against the simulated exchange with injected faults.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use tierstate_core::{DeploymentId, DocAddr, Error, Retention, StateStore};
use tierstate_orders::{
    Action, Exchange, FaultPlan, IntentStatus, OrderEvent, OrderIntent, OrderSpec, OrderStatus,
    OrderStore, OrdersError, ReconStatus, Reconciler, RetryPolicy, Side, SimExchange,
    retry_on_conflict,
};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    intents_are_cas_indexed_and_journaled,
    actual_orders_are_found_by_exchange_id_and_sync_time,
    placement_fills_and_oco_cancel_converge,
    unknown_outcomes_are_adopted_never_resent_blindly,
    delayed_delivery_never_makes_a_second_order,
    modify_beyond_tolerance_and_cancel_with_lost_answers,
    passes_are_deterministic,
    the_loop_places_backs_off_and_stops,
    a_pass_reads_in_bulk_and_acts_only_where_something_differs,
);

fn dep() -> DeploymentId {
    DeploymentId::new("mm-1").unwrap()
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn bid(id: &str, price: &str) -> OrderIntent {
    let spec = OrderSpec::limit("ETH-USD", Side::Buy, d(price), d("1")).unwrap();
    OrderIntent::new(id, "mm-1", spec, t(0)).unwrap()
}

fn engine(store: &Arc<dyn StateStore>, venue: &Arc<SimExchange>) -> Reconciler {
    Reconciler::new(
        OrderStore::new(store.clone(), &dep()),
        venue.clone(),
        d("0.5"),
    )
}

async fn intents_are_cas_indexed_and_journaled(store: Arc<dyn StateStore>) {
    let o = OrderStore::new(store.clone(), &dep());
    let a = o
        .create_intent(&bid("a", "2500").in_group("g1").unwrap())
        .await
        .unwrap();
    o.create_intent(&bid("b", "2400").in_group("g1").unwrap())
        .await
        .unwrap();
    let mut other = bid("c", "100");
    other.spec.symbol = "BTC-USD".into();
    o.create_intent(&other).await.unwrap();
    assert!(matches!(
        o.create_intent(&bid("a", "1")).await.unwrap_err(),
        OrdersError::Store(Error::AlreadyExists { .. })
    ));
    // The same create again (a retry after a lost answer) returns what is stored and writes
    // nothing: no second event, the version unchanged.
    let events = o.events("c").await.unwrap().len();
    let again = o.create_intent(&other).await.unwrap();
    assert_eq!((again.version, &again.intent), (1, &other));
    assert_eq!(o.events("c").await.unwrap().len(), events);
    let ids = |v: Vec<tierstate_orders::StoredIntent>| {
        v.into_iter()
            .map(|i| i.intent.intent_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(o.intents(Some("ETH-USD"), None).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(ids(o.intents(None, Some("g1")).await.unwrap()), ["a", "b"]);
    assert_eq!(ids(o.group("g1").await.unwrap()), ["a", "b"]);
    // CAS: two updates from the same read, one wins.
    let mut moved = a.intent.clone();
    moved.spec.price = Some(d("2501"));
    let a2 = o.update_intent(&a, moved.clone()).await.unwrap();
    assert_eq!(a2.version, 2);
    assert!(matches!(
        o.update_intent(&a, moved.clone()).await.unwrap_err(),
        OrdersError::Store(Error::Conflict {
            expected: 1,
            actual: Some(2),
            ..
        })
    ));
    // Leaving the group updates its index in the same batch.
    let mut solo = a2.intent.clone();
    solo.oco_group = None;
    let a3 = o.update_intent(&a2, solo).await.unwrap();
    assert_eq!(ids(o.group("g1").await.unwrap()), ["b"]);
    // An intent keeps its current document only (its journal is its history), unless the
    // store is told to keep more.
    let versions = async |key: &str| -> Vec<u64> {
        let addr = DocAddr::new(dep().as_str(), "orders.intents", key).unwrap();
        let kept = store.document_history(&addr, 10).await.unwrap();
        kept.iter().map(|d| d.version).collect()
    };
    assert_eq!(versions("a").await, [3]);
    let keeping = OrderStore::new(store.clone(), &dep()).with_doc_retention(Retention::KeepAll);
    let b = keeping.intent("b").await.unwrap().unwrap();
    let mut b2 = b.intent.clone();
    b2.spec.price = Some(d("2401"));
    keeping.update_intent(&b, b2).await.unwrap();
    assert_eq!(versions("b").await, [2, 1]);
    o.delete_intent(&a3, t(1)).await.unwrap();
    assert!(o.intent("a").await.unwrap().is_none());
    // The journal holds every change, contiguous, and folds to what is stored.
    let ev = o.events("a").await.unwrap();
    assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(matches!(ev[3].1, OrderEvent::IntentDeleted));
    for id in ["a", "b", "c"] {
        o.verify(id).await.unwrap();
    }
    // Bad input changes nothing.
    let mut bad = bid("z", "1");
    bad.spec.size = d("-1");
    assert!(matches!(
        o.create_intent(&bad).await.unwrap_err(),
        OrdersError::InvalidInput { .. }
    ));
    assert!(o.intent("z").await.unwrap().is_none());
    assert!(matches!(
        o.intent("").await.unwrap_err(),
        OrdersError::InvalidInput { .. }
    ));
}

async fn actual_orders_are_found_by_exchange_id_and_sync_time(store: Arc<dyn StateStore>) {
    let o = OrderStore::new(store.clone(), &dep());
    let i = bid("a", "2500");
    let created = OrderEvent::Created {
        revision: 1,
        client_order_id: i.client_order_id(),
        spec: i.spec.clone(),
    };
    let p = o
        .apply("a", None, &[created], ReconStatus::Pending, t(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.order.status, OrderStatus::Pending);
    let acked = [
        OrderEvent::Submitted,
        OrderEvent::Acked {
            exchange_order_id: "x-77".into(),
        },
    ];
    let a = o
        .apply("a", Some(&p), &acked, ReconStatus::InSync, t(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        o.by_exchange_id("x-77").await.unwrap().unwrap().order,
        a.order
    );
    assert!(o.by_exchange_id("x-78").await.unwrap().is_none());
    // A stale read conflicts; nothing is written.
    assert!(matches!(
        o.apply(
            "a",
            Some(&p),
            &[OrderEvent::Cancelled],
            ReconStatus::InSync,
            t(30)
        )
        .await
        .unwrap_err(),
        OrdersError::Store(Error::Conflict { .. })
    ));
    // Stale orders come from the sync-time index.
    let b = o
        .apply(
            "b",
            None,
            &[OrderEvent::Created {
                revision: 1,
                client_order_id: "c-b".into(),
                spec: i.spec.clone(),
            }],
            ReconStatus::Pending,
            t(5),
        )
        .await
        .unwrap();
    assert!(b.is_some());
    let stale = o.stale(t(15), 10).await.unwrap();
    assert_eq!(
        stale
            .iter()
            .map(|s| s.order.intent_id.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["b"]
    );
    let stale = o.stale(t(25), 10).await.unwrap();
    assert_eq!(stale.len(), 2);
    assert_eq!(
        o.actuals(None, Some(ReconStatus::Pending))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(o.actuals(Some("ETH-USD"), None).await.unwrap().len(), 2);
    o.verify("a").await.unwrap();
    o.verify("b").await.unwrap();
    // An event that needs an order, before there is one, is refused.
    assert!(
        o.apply(
            "c",
            None,
            &[OrderEvent::Cancelled],
            ReconStatus::InSync,
            t(1)
        )
        .await
        .is_err()
    );
}

async fn placement_fills_and_oco_cancel_converge(store: Arc<dyn StateStore>) {
    let venue = Arc::new(SimExchange::new(FaultPlan::none()));
    let e = engine(&store, &venue);
    let o = e.orders().clone();
    // A bracket: buy at 2500 or at 2400, whichever fills first cancels the other.
    o.create_intent(&bid("hi", "2500").in_group("bracket").unwrap())
        .await
        .unwrap();
    o.create_intent(&bid("lo", "2400").in_group("bracket").unwrap())
        .await
        .unwrap();
    let pass = e.reconcile_all().await.unwrap();
    assert_eq!(pass.actions.len(), 2);
    assert!(
        pass.actions
            .iter()
            .all(|a| matches!(a, Action::Place { .. }))
    );
    assert_eq!(venue.open_orders(None).await.unwrap().len(), 2);
    // Half fills at 2500: partially filled, still open.
    venue
        .maker("ETH-USD", Side::Sell, d("2500"), d("0.4"))
        .unwrap();
    e.reconcile_all().await.unwrap();
    let hi = o.actual("hi").await.unwrap().unwrap();
    assert_eq!(
        (hi.order.status, hi.order.filled()),
        (OrderStatus::PartiallyFilled, d("0.4"))
    );
    // The rest fills: done, and the other leg is cancelled on the venue.
    venue
        .maker("ETH-USD", Side::Sell, d("2499"), d("5"))
        .unwrap();
    for _ in 0..3 {
        e.reconcile_all().await.unwrap();
    }
    let hi = o.actual("hi").await.unwrap().unwrap();
    assert_eq!(
        (hi.order.status, hi.order.filled()),
        (OrderStatus::Filled, d("1"))
    );
    assert_eq!(
        o.intent("hi").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
    assert_eq!(
        o.intent("lo").await.unwrap().unwrap().intent.status,
        IntentStatus::Cancelled
    );
    assert_eq!(
        o.actual("lo").await.unwrap().unwrap().order.status,
        OrderStatus::Cancelled
    );
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    // Every fill reached the store once, as the venue reported it.
    for v in venue.client_orders() {
        let a = o
            .actuals(None, None)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.order.client_order_id == v.client_order_id)
            .unwrap();
        assert_eq!(a.order.fills, v.fills);
    }
    assert!(venue.accepted().values().all(|&n| n == 1));
    // A settled book: the next pass does nothing.
    assert!(e.reconcile_all().await.unwrap().actions.is_empty());
    o.verify("hi").await.unwrap();
    o.verify("lo").await.unwrap();
}

async fn unknown_outcomes_are_adopted_never_resent_blindly(store: Arc<dyn StateStore>) {
    let mut plan = FaultPlan::none();
    plan.timeout_after_accept = 1.0;
    let venue = Arc::new(SimExchange::new(plan));
    let e = engine(&store, &venue);
    let o = e.orders().clone();
    o.create_intent(&bid("a", "2500")).await.unwrap();
    e.reconcile_all().await.unwrap();
    // The venue took it but the answer was lost; the engine resolved it by client id.
    let a = o.actual("a").await.unwrap().unwrap();
    assert_eq!(a.order.status, OrderStatus::Live);
    assert!(a.order.exchange_order_id.is_some());
    let ev: Vec<_> = o
        .events("a")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert!(ev.contains(&OrderEvent::Unknown));
    assert!(ev.iter().any(|e| matches!(e, OrderEvent::Adopted { .. })));
    assert_eq!(venue.accepted().len(), 1);
    assert!(venue.accepted().values().all(|&n| n == 1));
    // An outage: nothing sent, nothing lost; the next pass (venue back) places it.
    venue.set_faults(FaultPlan {
        outage: 1.0,
        ..FaultPlan::none()
    });
    o.create_intent(&bid("b", "2400")).await.unwrap();
    let pass = e.reconcile_all().await.unwrap();
    assert!(!pass.errors.is_empty());
    assert_eq!(
        o.actual("b").await.unwrap().unwrap().order.status,
        OrderStatus::Pending
    );
    venue.set_faults(FaultPlan::none());
    e.reconcile_all().await.unwrap();
    assert_eq!(
        o.actual("b").await.unwrap().unwrap().order.status,
        OrderStatus::Live
    );
    assert!(venue.accepted().values().all(|&n| n == 1));
    o.verify("a").await.unwrap();
    o.verify("b").await.unwrap();
}

async fn delayed_delivery_never_makes_a_second_order(store: Arc<dyn StateStore>) {
    let mut plan = FaultPlan::none();
    plan.delayed = 1.0;
    let venue = Arc::new(SimExchange::new(plan));
    let e = engine(&store, &venue);
    let o = e.orders().clone();
    o.create_intent(&bid("a", "2500")).await.unwrap();
    // The send is in flight; the query finds nothing, the engine resends with the same client
    // id (also delayed); when they land, the venue keeps one.
    e.reconcile_intent("a").await.unwrap();
    venue.set_faults(FaultPlan::none());
    venue.deliver().unwrap();
    for _ in 0..3 {
        e.reconcile_all().await.unwrap();
    }
    assert_eq!(venue.accepted().values().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(venue.open_orders(None).await.unwrap().len(), 1);
    assert_eq!(
        o.actual("a").await.unwrap().unwrap().order.status,
        OrderStatus::Live
    );
    o.verify("a").await.unwrap();
}

async fn modify_beyond_tolerance_and_cancel_with_lost_answers(store: Arc<dyn StateStore>) {
    let venue = Arc::new(SimExchange::new(FaultPlan::none()));
    let e = engine(&store, &venue);
    let o = e.orders().clone();
    let i = o.create_intent(&bid("a", "2500")).await.unwrap();
    e.reconcile_all().await.unwrap();
    // Within tolerance (0.5): nothing to do.
    let mut near = i.intent.clone();
    near.spec.price = Some(d("2500.4"));
    let i = o.update_intent(&i, near).await.unwrap();
    assert!(e.reconcile_intent("a").await.unwrap().is_empty());
    // Beyond: modified in place, same client id.
    let mut far = i.intent.clone();
    far.spec.price = Some(d("2490"));
    let i = o.update_intent(&i, far).await.unwrap();
    assert_eq!(
        e.reconcile_intent("a").await.unwrap(),
        [Action::Modify { intent: "a".into() }]
    );
    let open = venue.open_orders(None).await.unwrap();
    assert_eq!((open.len(), open[0].spec.price), (1, Some(d("2490"))));
    // No longer wanted, and the cancel's answer is lost: cancelled all the same.
    venue.set_faults(FaultPlan {
        drop_cancel_response: 1.0,
        ..FaultPlan::none()
    });
    let mut off = i.intent.clone();
    off.status = IntentStatus::Cancelled;
    o.update_intent(&i, off).await.unwrap();
    e.reconcile_all().await.unwrap();
    venue.set_faults(FaultPlan::none());
    e.reconcile_all().await.unwrap();
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    assert_eq!(
        o.actual("a").await.unwrap().unwrap().order.status,
        OrderStatus::Cancelled
    );
    assert_eq!(venue.client_orders()[0].status, OrderStatus::Cancelled);
    o.verify("a").await.unwrap();
}

async fn passes_are_deterministic(store: Arc<dyn StateStore>) {
    // The same intents against two fresh venues: the same actions in the same order.
    let o = OrderStore::new(store.clone(), &dep());
    for (k, p) in [("c", "2300"), ("a", "2500"), ("b", "2400")] {
        o.create_intent(&bid(k, p)).await.unwrap();
    }
    let v1 = Arc::new(SimExchange::new(FaultPlan::none()));
    let first = engine(&store, &v1).reconcile_all().await.unwrap().actions;
    assert_eq!(
        first
            .iter()
            .map(|a| match a {
                Action::Place { intent, .. } => intent.as_str(),
                _ => "?",
            })
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    // Retry helper: a conflict is retried, the attempts are reported.
    let mut n = 0;
    let r: Result<(), OrdersError> = retry_on_conflict(
        "a test record",
        RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        },
        || {
            n += 1;
            async {
                Err(OrdersError::Store(Error::Conflict {
                    deployment_id: dep(),
                    target: tierstate_core::Target::State,
                    expected: 1,
                    actual: Some(2),
                }))
            }
        },
    )
    .await;
    assert!(matches!(r, Err(OrdersError::Contended { attempts: 3, .. })));
    assert_eq!(n, 3);
}

async fn the_loop_places_backs_off_and_stops(store: Arc<dyn StateStore>) {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let venue = Arc::new(SimExchange::new(FaultPlan {
        outage: 1.0,
        ..FaultPlan::none()
    }));
    let e = Arc::new(engine(&store, &venue));
    let metrics = e.metrics();
    let o = e.orders().clone();
    o.create_intent(&bid("a", "2500")).await.unwrap();
    assert!(!e.status().running);
    let handle = e.clone().start(Duration::from_millis(20)).unwrap();
    // Running is observable, and a second loop on the same engine is refused.
    assert!(e.status().running);
    assert!(matches!(
        e.clone().start(Duration::from_millis(20)),
        Err(OrdersError::InvalidInput {
            field: "engine",
            ..
        })
    ));
    // The venue is down: passes fail and are retried with backoff, counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metrics.retries.load(Ordering::Relaxed) < 2 {
        assert!(std::time::Instant::now() < deadline, "no retries counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(metrics.errors.load(Ordering::Relaxed) >= 2);
    // It comes back: the loop places the order on its own.
    venue.set_faults(FaultPlan::none());
    loop {
        if o.actual("a")
            .await
            .unwrap()
            .is_some_and(|a| a.order.status == OrderStatus::Live)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the loop never placed the order"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.stop().await.unwrap();
    let status = e.status();
    assert!(!status.running, "stopped, yet it says it runs");
    assert!(status.retries >= 2 && status.errors >= 2, "{status:?}");
    let passes = metrics.passes.load(Ordering::Relaxed);
    assert!(metrics.actions[0].load(Ordering::Relaxed) >= 1); // a place
    assert_eq!(metrics.pending.load(Ordering::Relaxed), 0);
    // Stopped means stopped: no more passes.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(metrics.passes.load(Ordering::Relaxed), passes);
    assert_eq!(venue.accepted().len(), 1);
}

/// A venue that counts what it is asked, around the simulated one.
struct Counting {
    inner: Arc<SimExchange>,
    queries: std::sync::atomic::AtomicU64,
    lists: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl Exchange for Counting {
    async fn place(
        &self,
        client_order_id: &str,
        spec: &OrderSpec,
    ) -> Result<tierstate_orders::Order, tierstate_orders::ExchangeError> {
        self.inner.place(client_order_id, spec).await
    }
    async fn modify(
        &self,
        exchange_order_id: &str,
        price: Option<Decimal>,
        size: Decimal,
    ) -> Result<tierstate_orders::Order, tierstate_orders::ExchangeError> {
        self.inner.modify(exchange_order_id, price, size).await
    }
    async fn cancel(
        &self,
        exchange_order_id: &str,
    ) -> Result<tierstate_orders::Order, tierstate_orders::ExchangeError> {
        self.inner.cancel(exchange_order_id).await
    }
    async fn query(
        &self,
        client_order_id: &str,
    ) -> Result<Option<tierstate_orders::Order>, tierstate_orders::ExchangeError> {
        self.queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.query(client_order_id).await
    }
    async fn open_orders(
        &self,
        symbol: Option<&str>,
    ) -> Result<Vec<tierstate_orders::Order>, tierstate_orders::ExchangeError> {
        self.lists
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.open_orders(symbol).await
    }
}

/// More intents than a page: a pass with nothing to do lists the venue once, asks it about no
/// order and writes nothing; a pass after a few changes acts on exactly those, asking the
/// venue only about the orders that left its open list or that it changed.
async fn a_pass_reads_in_bulk_and_acts_only_where_something_differs(store: Arc<dyn StateStore>) {
    use std::sync::atomic::Ordering::Relaxed;
    const N: usize = 1_003;
    let sim = Arc::new(SimExchange::new(FaultPlan::none()));
    let venue = Arc::new(Counting {
        inner: sim.clone(),
        queries: 0.into(),
        lists: 0.into(),
    });
    let o = OrderStore::new(store.clone(), &dep());
    let e = Reconciler::new(o.clone(), venue.clone(), d("0.5"));
    let name = |i: usize| format!("q-{i:05}");
    for i in 0..N {
        o.create_intent(&bid(&name(i), &format!("{}", 2000 + i % 100)))
            .await
            .unwrap();
    }
    let placed = e.reconcile_all().await.unwrap();
    assert_eq!((placed.actions.len(), placed.errors.len()), (N, 0));
    let versions = |v: Vec<tierstate_orders::StoredActual>| {
        v.into_iter()
            .map(|a| (a.order.intent_id.clone(), a.version))
            .collect::<Vec<_>>()
    };
    let before = versions(o.actuals(None, None).await.unwrap());

    let (q0, l0) = (venue.queries.load(Relaxed), venue.lists.load(Relaxed));
    let idle = e.reconcile_all().await.unwrap();
    assert!(
        idle.actions.is_empty() && idle.errors.is_empty(),
        "{idle:?}"
    );
    assert_eq!(venue.queries.load(Relaxed) - q0, 0, "no order asked about");
    assert_eq!(
        venue.lists.load(Relaxed) - l0,
        1,
        "the open orders listed once"
    );
    assert_eq!(
        versions(o.actuals(None, None).await.unwrap()),
        before,
        "nothing written"
    );
    assert_eq!(e.metrics().pending.load(Relaxed), 0);

    // One re-priced (on the second page), one filled at the venue, one intent deleted.
    let moved = o.intent(&name(1_001)).await.unwrap().unwrap();
    let mut next = moved.intent.clone();
    next.spec.price = Some(d("2300"));
    o.update_intent(&moved, next).await.unwrap();
    sim.maker("ETH-USD", Side::Sell, d("2099"), d("1")).unwrap();
    let filled_client: Vec<String> = sim
        .client_orders()
        .into_iter()
        .filter(|v| v.status == OrderStatus::Filled)
        .map(|v| v.client_order_id)
        .collect();
    let filled: Vec<String> = o
        .actuals(None, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| filled_client.contains(&a.order.client_order_id))
        .filter_map(|a| a.order.intent_id)
        .collect();
    assert_eq!(filled.len(), 1, "one order filled");
    let gone = o.intent(&name(7)).await.unwrap().unwrap();
    o.delete_intent(&gone, t(1)).await.unwrap();
    let q0 = venue.queries.load(Relaxed);
    let busy = e.reconcile_all().await.unwrap();
    assert!(busy.errors.is_empty(), "{:?}", busy.errors);
    let mut touched: Vec<&str> = busy
        .actions
        .iter()
        .map(|a| match a {
            Action::Place { intent, .. }
            | Action::Adopt { intent, .. }
            | Action::Sync { intent, .. }
            | Action::Modify { intent, .. }
            | Action::Cancel { intent, .. }
            | Action::Done { intent, .. } => intent.as_str(),
        })
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let mut want = vec![name(7), name(1_001), filled[0].clone()];
    want.sort();
    assert_eq!(touched, want, "{:?}", busy.actions);
    assert_eq!(
        venue.queries.load(Relaxed) - q0,
        2,
        "asked about: the order that left the open list, and the modified one once after its \
         modify; none of the other 1,000"
    );
    assert_eq!(
        o.actual(&name(7)).await.unwrap().unwrap().order.status,
        OrderStatus::Cancelled
    );
    assert!(
        e.reconcile_all().await.unwrap().actions.is_empty(),
        "settled"
    );
}
