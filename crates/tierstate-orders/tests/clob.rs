//! The CLOB collection (seed 000's order calls) on every backend, on the one order model: the
//! status machine, fills, open orders, intents and the step from the schema-1 documents.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierstate_core::{
    DeploymentId, DocAddr, DocWrite, Error, PutMode, StateStore, StateWrite, WriteBatch,
};
use tierstate_orders::{
    ClobOrder, ClobOrders, Fill, FillOutcome, OrderStatus, OrdersError, Side, TimeInForce,
};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    an_order_lives_through_the_status_machine_and_every_query_finds_it,
    concurrent_status_updates_one_wins_the_other_conflicts,
    fills_are_idempotent_bounded_and_exact_under_concurrency,
    an_order_change_commits_with_the_strategy_state_or_not_at_all,
    order_ids_are_unique_open_or_closed,
    concurrent_creates_for_one_intent_are_all_stored_and_indexed,
    stored_orders_that_do_not_decode_are_refused_by_name,
);

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn dep() -> DeploymentId {
    DeploymentId::new("eth-basis").unwrap()
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn new_order(id: &str, market: &str, at: i64) -> ClobOrder {
    ClobOrder::new(
        id,
        "eth-basis",
        market,
        "ETH",
        Side::Buy,
        TimeInForce::Gtc,
        d("2500"),
        d("2"),
        t(at),
    )
    .unwrap()
}

fn fill(id: &str, size: &str) -> Fill {
    Fill::new(id, d("2499.5"), d(size))
        .unwrap()
        .with_fee(d("0.10"))
        .at(t(100))
}

async fn an_order_lives_through_the_status_machine_and_every_query_finds_it(
    store: Arc<dyn StateStore>,
) {
    let orders = ClobOrders::new(store.clone(), &dep());
    let a = orders
        .create(new_order("a", "ETH-USD", 1).with_intent("i-1").unwrap())
        .await
        .unwrap();
    assert_eq!(a.version, 1);
    orders
        .create(new_order("b", "BTC-USD", 2).with_intent("i-1").unwrap())
        .await
        .unwrap();
    orders.create(new_order("c", "ETH-USD", 3)).await.unwrap();
    let a = orders
        .update_status(&a, OrderStatus::Submitted, t(4), None)
        .await
        .unwrap();
    let a = orders
        .update_status(&a, OrderStatus::Live, t(5), None)
        .await
        .unwrap();
    assert_eq!(a.version, 3);
    assert_eq!(a.order.submitted_at, Some(t(4)));
    let r = orders.record_fill("a", fill("f1", "0.5")).await.unwrap();
    assert_eq!(r.outcome, FillOutcome::Applied);
    assert_eq!(r.order.order.status, OrderStatus::PartiallyFilled);
    // Loaded back exactly, derived figures included; 0 stays 0 on an unfilled order.
    let got = orders.get("a").await.unwrap().unwrap();
    assert_eq!(got, r.order);
    assert_eq!(got.order.filled(), d("0.5"));
    assert_eq!(
        orders
            .get("c")
            .await
            .unwrap()
            .unwrap()
            .order
            .average_fill_price(),
        Decimal::ZERO
    );
    // Open orders: newest first, by market.
    let open: Vec<String> = orders
        .open_orders(None)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.order_id().to_owned())
        .collect();
    assert_eq!(open, ["c", "b", "a"]);
    let eth: Vec<String> = orders
        .open_orders(Some("ETH-USD"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.order_id().to_owned())
        .collect();
    assert_eq!(eth, ["c", "a"]);
    // Filling the rest closes it: gone from the open list, still found by id and intent,
    // first among the recently closed.
    orders.record_fill("a", fill("f2", "1.5")).await.unwrap();
    let c = orders.get("c").await.unwrap().unwrap();
    orders
        .update_status(
            &c,
            OrderStatus::Failed,
            t(7),
            Some("rejected: price band".into()),
        )
        .await
        .unwrap();
    let open: Vec<String> = orders
        .open_orders(None)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.order_id().to_owned())
        .collect();
    assert_eq!(open, ["b"]);
    let a = orders.get("a").await.unwrap().unwrap();
    assert_eq!(
        (a.order.status, a.order.filled()),
        (OrderStatus::Filled, d("2"))
    );
    let by_intent: Vec<(String, OrderStatus)> = orders
        .by_intent("i-1")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.order.order_id().to_owned(), o.order.status))
        .collect();
    assert_eq!(
        by_intent,
        [
            ("a".to_string(), OrderStatus::Filled),
            ("b".to_string(), OrderStatus::Pending)
        ]
    );
    assert!(orders.by_intent("i-none").await.unwrap().is_empty());
    let page = orders.recently_closed(None, 1).await.unwrap();
    assert_eq!(page.orders.len(), 1);
    assert_eq!(page.orders[0].order_id(), "c");
    assert_eq!(
        page.orders[0].error.as_deref(),
        Some("rejected: price band")
    );
    let page2 = orders.recently_closed(page.next, 10).await.unwrap();
    assert_eq!(page2.orders.len(), 1);
    assert_eq!(page2.orders[0], a.order);
    assert!(page2.next.is_none());
    // A terminal order never reopens.
    let c = orders.get("c").await.unwrap().unwrap();
    assert!(matches!(
        orders
            .update_status(&c, OrderStatus::Live, t(8), None)
            .await,
        Err(OrdersError::InvalidTransition { .. })
    ));
    assert!(orders.get("nope").await.unwrap().is_none());
    // A bad id is an error, not "not stored".
    for bad in ["", "a\nb"] {
        assert!(matches!(
            orders.get(bad).await,
            Err(OrdersError::InvalidInput { .. })
        ));
        assert!(matches!(
            orders.by_intent(bad).await,
            Err(OrdersError::InvalidInput { .. })
        ));
    }
    assert!(matches!(
        orders.recently_closed(None, 0).await,
        Err(OrdersError::InvalidInput { .. })
    ));
}

async fn concurrent_status_updates_one_wins_the_other_conflicts(store: Arc<dyn StateStore>) {
    let orders = ClobOrders::new(store.clone(), &dep());
    let o = orders.create(new_order("x", "ETH-USD", 1)).await.unwrap();
    let o = orders
        .update_status(&o, OrderStatus::Submitted, t(2), None)
        .await
        .unwrap();
    // Two updaters read the same version; both go at once.
    let (a, b) = tokio::join!(
        orders.update_status(&o, OrderStatus::Live, t(3), None),
        orders.update_status(&o, OrderStatus::Cancelled, t(3), None),
    );
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one must win: {other:?}"),
    };
    match &lost {
        OrdersError::Store(Error::Conflict {
            expected, actual, ..
        }) => {
            assert_eq!((*expected, *actual), (2, Some(3)));
        }
        other => panic!("the loser gets a conflict: {other:?}"),
    }
    assert!(lost.is_conflict());
    // The loser re-reads and decides again.
    let now = orders.get("x").await.unwrap().unwrap();
    assert_eq!(now, won);
    if now.order.status == OrderStatus::Live {
        orders
            .update_status(&now, OrderStatus::Cancelled, t(4), None)
            .await
            .unwrap();
    }
    // A refused transition writes nothing.
    let before = orders.get("x").await.unwrap().unwrap();
    assert!(
        orders
            .update_status(&before, OrderStatus::Live, t(5), None)
            .await
            .is_err()
    );
    assert_eq!(orders.get("x").await.unwrap().unwrap(), before);
}

async fn fills_are_idempotent_bounded_and_exact_under_concurrency(store: Arc<dyn StateStore>) {
    let orders = ClobOrders::new(store.clone(), &dep());
    let o = ClobOrder::new(
        "big",
        "eth-basis",
        "m",
        "t",
        Side::Sell,
        TimeInForce::Gtc,
        d("1"),
        d("100"),
        t(0),
    )
    .unwrap();
    let o = orders.create(o).await.unwrap();
    orders
        .update_status(&o, OrderStatus::Submitted, t(1), None)
        .await
        .unwrap();
    // 4 tasks each record the same 25 fills of 1: every fill lands exactly once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            let mut applied = 0;
            for i in 0..25 {
                let f = Fill::new(format!("f{i}"), d("1"), d("1")).unwrap().at(t(i));
                if orders.record_fill("big", f).await.unwrap().outcome == FillOutcome::Applied {
                    applied += 1;
                }
            }
            applied
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap();
    }
    assert_eq!(applied, 25, "each fill applied once across all tasks");
    let got = orders.get("big").await.unwrap().unwrap();
    assert_eq!((got.order.filled(), got.order.fills.len()), (d("25"), 25));
    assert_eq!(got.version, 2 + 25);
    // Duplicate: no write. Conflicting content, overfill, other order, unknown order: typed.
    let again = Fill::new("f3", d("1"), d("1")).unwrap().at(t(3));
    assert_eq!(
        orders.record_fill("big", again).await.unwrap().outcome,
        FillOutcome::Duplicate
    );
    let forged = Fill::new("f3", d("2"), d("1")).unwrap().at(t(3));
    assert!(matches!(
        orders.record_fill("big", forged).await,
        Err(OrdersError::FillConflict { .. })
    ));
    let over = Fill::new("g", d("1"), d("75.5")).unwrap().at(t(3));
    assert!(matches!(
        orders.record_fill("big", over).await,
        Err(OrdersError::Overfill { .. })
    ));
    let ghost = Fill::new("g", d("1"), d("1")).unwrap().at(t(3));
    assert!(matches!(
        orders.record_fill("ghost", ghost).await,
        Err(OrdersError::OrderNotFound { .. })
    ));
    assert_eq!(
        orders.get("big").await.unwrap().unwrap(),
        got,
        "nothing changed"
    );
}

async fn an_order_change_commits_with_the_strategy_state_or_not_at_all(store: Arc<dyn StateStore>) {
    let orders = ClobOrders::new(store.clone(), &dep());
    let o = orders.create(new_order("s", "m", 1)).await.unwrap();
    let state = |n: u64| json!({"tick": n}).as_object().unwrap().clone();
    store
        .put(StateWrite::create(dep(), state(1)), Default::default())
        .await
        .unwrap();
    let change = orders
        .plan_status(&o, OrderStatus::Submitted, t(2), None)
        .unwrap();
    let batch = WriteBatch::new()
        .put(StateWrite::update(dep(), 1, state(2)))
        .with(&change);
    store.write(batch).await.unwrap();
    assert_eq!(store.get(&dep()).await.unwrap().unwrap().version, 2);
    let now = orders.get("s").await.unwrap().unwrap();
    assert_eq!(now, change.stored());
    // A stale state version fails the batch: the order change is not written either.
    let change = orders
        .plan_status(&now, OrderStatus::Cancelled, t(3), None)
        .unwrap();
    let batch = WriteBatch::new()
        .put(StateWrite::update(dep(), 1, state(3)))
        .with(&change);
    assert!(store.write(batch).await.unwrap_err().is_conflict());
    assert_eq!(orders.get("s").await.unwrap().unwrap(), now);
    assert_eq!(orders.open_orders(None).await.unwrap().len(), 1);
    assert!(
        orders
            .recently_closed(None, 10)
            .await
            .unwrap()
            .orders
            .is_empty()
    );
}

async fn order_ids_are_unique_open_or_closed(store: Arc<dyn StateStore>) {
    let orders = ClobOrders::new(store.clone(), &dep());
    let o = orders.create(new_order("u", "m", 1)).await.unwrap();
    assert!(matches!(
        orders.create(new_order("u", "m", 2)).await,
        Err(OrdersError::Store(Error::AlreadyExists { .. }))
    ));
    orders
        .update_status(&o, OrderStatus::Cancelled, t(2), None)
        .await
        .unwrap();
    assert!(matches!(
        orders.create(new_order("u", "m", 3)).await,
        Err(OrdersError::Store(Error::AlreadyExists { .. }))
    ));
    assert!(orders.open_orders(None).await.unwrap().is_empty());
    // An order of another deployment, or one that is not new, is refused before any write.
    let alien = ClobOrder::new(
        "v",
        "other",
        "m",
        "t",
        Side::Buy,
        TimeInForce::Gtc,
        d("1"),
        d("1"),
        t(0),
    )
    .unwrap();
    assert!(matches!(
        orders.create(alien).await,
        Err(OrdersError::InvalidInput { .. })
    ));
    let mut live = new_order("w", "m", 1);
    live.set_status(OrderStatus::Submitted, t(1), None).unwrap();
    assert!(matches!(
        orders.create(live).await,
        Err(OrdersError::InvalidInput { .. })
    ));
    assert!(orders.get("v").await.unwrap().is_none());
    assert!(orders.get("w").await.unwrap().is_none());
}

async fn concurrent_creates_for_one_intent_are_all_stored_and_indexed(store: Arc<dyn StateStore>) {
    // Eight orders for one intent at once: each create extends the intent's index, which the
    // callers never read; every distinct order id is stored and indexed.
    let orders = ClobOrders::new(store.clone(), &dep());
    let mut tasks = Vec::new();
    for k in 0..8 {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            let o = new_order(&format!("o{k}"), "m", k)
                .with_intent("intent-1")
                .unwrap();
            orders.create(o).await
        }));
    }
    for (k, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        let stored = orders.get(&format!("o{k}")).await.unwrap().is_some();
        assert!(
            r.is_ok(),
            "create o{k} failed ({:?}); order stored: {stored}",
            r.unwrap_err()
        );
    }
    let mut ids: Vec<String> = orders
        .by_intent("intent-1")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.order.order_id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..8).map(|k| format!("o{k}")).collect::<Vec<_>>());
    // A taken order id is still the caller's error.
    assert!(matches!(
        orders
            .create(new_order("o3", "m", 9).with_intent("intent-1").unwrap())
            .await,
        Err(OrdersError::Store(Error::AlreadyExists { .. }))
    ));
    assert_eq!(orders.by_intent("intent-1").await.unwrap().len(), 8);
}

fn raw_order(status: &str) -> Map<String, Value> {
    json!({
        "schema": 1, "order_id": "r", "deployment_id": "eth-basis", "market_id": "m",
        "token_id": "t", "side": "buy", "order_type": "GTC", "price": "1", "size": "2",
        "status": status, "filled_size": "0", "average_fill_price": "0", "fills": [],
        "intent_id": null, "created_at": "2026-11-21T00:00:00Z", "submitted_at": null,
        "updated_at": "2026-11-21T00:00:00Z", "error": null, "metadata": {}
    })
    .as_object()
    .unwrap()
    .clone()
}

async fn stored_orders_that_do_not_decode_are_refused_by_name(store: Arc<dyn StateStore>) {
    let orders = ClobOrders::new(store.clone(), &dep());
    let at = DocAddr::new("eth-basis", "clob.orders", "r").unwrap();
    let put = |v: Map<String, Value>| {
        let store = store.clone();
        let at = at.clone();
        async move {
            store
                .put_document(DocWrite::new(at, PutMode::Overwrite, v))
                .await
                .unwrap()
        }
    };
    // Schema 1 (6e4015a's own shape) reads through the step into the one order model.
    put(raw_order("pending")).await;
    let got = orders.get("r").await.unwrap().unwrap();
    assert_eq!(got.order.status, OrderStatus::Pending);
    assert_eq!(got.order.spec.symbol, "t");
    assert_eq!(got.order.spec.tif, TimeInForce::Gtc);
    // Read back and written again, it is schema 2 and reads the same.
    let again = orders
        .update_status(&got, OrderStatus::Submitted, t(1), None)
        .await
        .unwrap();
    let raw = store.get_document(&at).await.unwrap().unwrap();
    assert_eq!(raw.value["schema"], json!(2));
    assert_eq!(orders.get("r").await.unwrap().unwrap(), again);
    for (field, bad) in [
        ("status", json!("opened")),
        ("side", json!("long")),
        ("order_type", json!("GTD")),
        ("filled_size", json!("1")),
        ("price", json!("-1")),
    ] {
        let mut v = raw_order("pending");
        v.insert(field.into(), bad.clone());
        put(v).await;
        assert!(
            matches!(orders.get("r").await, Err(OrdersError::InvalidInput { .. })),
            "{field} = {bad}"
        );
    }
    let mut v = raw_order("pending");
    v.insert("schema".into(), json!(3));
    put(v).await;
    assert!(matches!(
        orders.get("r").await,
        Err(OrdersError::NewerSchema { found: 3, .. })
    ));
}
