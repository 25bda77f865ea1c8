//! The rule that keeps an intent from over-trading: what it may still buy or sell is its size
//! minus everything filled across all its placements in its direction; a replacement is placed
//! for that remainder; what cannot be modified on the venue (side, symbol, kind, time in force)
//! is cancelled and replaced; an intent with nothing left is done and its OCO siblings are
//! cancelled. Each scenario is a strategy's real edit, on every backend.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use tierstate_core::{DeploymentId, Error, StateStore};
use tierstate_orders::{
    Exchange, FaultPlan, IntentStatus, Order, OrderIntent, OrderSpec, OrderStatus, OrderStore,
    OrdersError, Reconciler, Side, SimExchange, TimeInForce,
};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    a_side_change_cancels_the_old_order_and_places_the_new_side,
    a_symbol_change_cancels_and_replaces,
    an_ioc_intent_is_sent_once,
    a_size_cut_below_the_filled_size_stops_buying,
    a_venue_cancel_of_a_partly_filled_order_is_replaced_for_the_remainder,
    an_intent_trimmed_to_its_filled_size_is_done_and_cancels_its_group,
    the_venue_reporting_filled_completes_the_order,
    an_exchange_id_resolves_to_the_placement_that_carries_it,
    concurrent_intents_joining_one_new_group_all_succeed,
    concurrent_updates_moving_intents_between_groups_all_succeed,
    a_remainder_below_the_venue_minimum_is_done,
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

fn limit(id: &str, side: Side, price: &str, size: &str) -> OrderIntent {
    let spec = OrderSpec::limit("ETH-USD", side, d(price), d(size)).unwrap();
    OrderIntent::new(id, "mm-1", spec, t(0)).unwrap()
}

fn setup(store: &Arc<dyn StateStore>) -> (Arc<SimExchange>, Reconciler, OrderStore) {
    let venue = Arc::new(SimExchange::new(FaultPlan::none()));
    let e = Reconciler::new(
        OrderStore::new(store.clone(), &dep()),
        venue.clone(),
        Decimal::ZERO,
    );
    let o = e.orders().clone();
    (venue, e, o)
}

/// Runs passes until one does nothing, failing on any pass error.
async fn settle(e: &Reconciler) {
    for _ in 0..10 {
        let pass = e.reconcile_all().await.unwrap();
        assert!(pass.errors.is_empty(), "pass failed: {:?}", pass.errors);
        if pass.actions.is_empty() {
            return;
        }
    }
    panic!("the engine did not settle");
}

/// The venue's orders of one intent (every placement), oldest first.
fn placements(venue: &SimExchange) -> Vec<Order> {
    let mut v = venue.client_orders();
    v.sort_by_key(|o| {
        o.exchange_order_id.as_deref().unwrap_or_default()[2..]
            .parse::<u64>()
            .unwrap_or(0)
    });
    v
}

/// Size filled on the venue across every placement, per side.
fn filled(venue: &SimExchange, side: Side) -> Decimal {
    venue
        .client_orders()
        .iter()
        .filter(|o| o.spec.side == side)
        .map(Order::filled)
        .sum()
}

async fn edit(o: &OrderStore, id: &str, f: impl FnOnce(&mut OrderIntent)) {
    let cur = o.intent(id).await.unwrap().unwrap();
    let mut next = cur.intent.clone();
    f(&mut next);
    o.update_intent(&cur, next).await.unwrap();
}

async fn a_side_change_cancels_the_old_order_and_places_the_new_side(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1"))
        .await
        .unwrap();
    settle(&e).await;
    edit(&o, "a", |i| {
        i.spec.side = Side::Sell;
        i.spec.price = Some(d("110"));
    })
    .await;
    settle(&e).await;
    // A seller at 100 would have filled the old buy.
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("1"))
        .unwrap();
    settle(&e).await;
    assert_eq!(filled(&venue, Side::Buy), Decimal::ZERO, "it bought");
    let open = venue.open_orders(None).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        (open[0].spec.side, open[0].spec.price),
        (Side::Sell, Some(d("110")))
    );
    let a = o.actual("a").await.unwrap().unwrap();
    assert_eq!(a.order.spec.side, Side::Sell);
    assert_eq!(a.order.status, OrderStatus::Live);
    // The buy was cancelled on the venue before the sell went out.
    let all = placements(&venue);
    assert_eq!(all[0].status, OrderStatus::Cancelled);
    o.verify("a").await.unwrap();
    // A buyer at 110 fills the sell, and the intent is done.
    venue.maker("ETH-USD", Side::Buy, d("110"), d("3")).unwrap();
    settle(&e).await;
    assert_eq!(filled(&venue, Side::Sell), d("1"));
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
}

async fn a_symbol_change_cancels_and_replaces(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1"))
        .await
        .unwrap();
    settle(&e).await;
    edit(&o, "a", |i| i.spec.symbol = "BTC-USD".into()).await;
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("1"))
        .unwrap();
    settle(&e).await;
    let eth: Decimal = venue
        .client_orders()
        .iter()
        .filter(|o| o.spec.symbol == "ETH-USD")
        .map(Order::filled)
        .sum();
    assert_eq!(
        eth,
        Decimal::ZERO,
        "it bought the symbol it no longer wants"
    );
    let open = venue.open_orders(None).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].spec.symbol, "BTC-USD");
    o.verify("a").await.unwrap();
}

async fn an_ioc_intent_is_sent_once(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.4"))
        .unwrap();
    let mut ioc = limit("a", Side::Buy, "100", "1");
    ioc.spec.tif = TimeInForce::Ioc;
    o.create_intent(&ioc).await.unwrap();
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("5"))
        .unwrap();
    for _ in 0..4 {
        settle(&e).await;
    }
    assert_eq!(
        venue.client_orders().len(),
        1,
        "an IOC intent was sent again"
    );
    assert_eq!(filled(&venue, Side::Buy), d("0.4"));
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
    o.verify("a").await.unwrap();
}

async fn a_size_cut_below_the_filled_size_stops_buying(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1"))
        .await
        .unwrap();
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.6"))
        .unwrap();
    settle(&e).await;
    edit(&o, "a", |i| i.spec.size = d("0.5")).await;
    settle(&e).await; // every pass succeeds
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("1"))
        .unwrap();
    settle(&e).await;
    assert_eq!(filled(&venue, Side::Buy), d("0.6"));
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
    o.verify("a").await.unwrap();
}

async fn a_venue_cancel_of_a_partly_filled_order_is_replaced_for_the_remainder(
    store: Arc<dyn StateStore>,
) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1"))
        .await
        .unwrap();
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.4"))
        .unwrap();
    settle(&e).await;
    // The venue cancels the rest (a venue-side cancel: maintenance, self-trade prevention).
    let x = o
        .actual("a")
        .await
        .unwrap()
        .unwrap()
        .order
        .exchange_order_id
        .unwrap();
    venue.cancel(&x).await.unwrap();
    settle(&e).await;
    let open = venue.open_orders(None).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].spec.size, d("0.6"), "the replacement's size");
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("5"))
        .unwrap();
    settle(&e).await;
    assert_eq!(filled(&venue, Side::Buy), d("1"));
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
    o.verify("a").await.unwrap();
}

async fn an_intent_trimmed_to_its_filled_size_is_done_and_cancels_its_group(
    store: Arc<dyn StateStore>,
) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1").in_group("g").unwrap())
        .await
        .unwrap();
    o.create_intent(&limit("b", Side::Buy, "90", "1").in_group("g").unwrap())
        .await
        .unwrap();
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.6"))
        .unwrap();
    settle(&e).await;
    edit(&o, "a", |i| i.spec.size = d("0.6")).await;
    settle(&e).await;
    let a = o.actual("a").await.unwrap().unwrap();
    assert!(a.order.status.is_terminal(), "{:?}", a.order.status);
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
    assert_eq!(
        o.intent("b").await.unwrap().unwrap().intent.status,
        IntentStatus::Cancelled
    );
    assert!(venue.open_orders(None).await.unwrap().is_empty());
    assert_eq!(filled(&venue, Side::Buy), d("0.6"));
    o.verify("a").await.unwrap();
    o.verify("b").await.unwrap();
}

async fn the_venue_reporting_filled_completes_the_order(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1").in_group("g").unwrap())
        .await
        .unwrap();
    o.create_intent(&limit("b", Side::Buy, "90", "1").in_group("g").unwrap())
        .await
        .unwrap();
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.6"))
        .unwrap();
    settle(&e).await;
    // Someone trims the order on the venue to what has filled: the venue calls it filled.
    let x = o
        .actual("a")
        .await
        .unwrap()
        .unwrap()
        .order
        .exchange_order_id
        .unwrap();
    let v = venue.modify(&x, Some(d("100")), d("0.6")).await.unwrap();
    assert_eq!(v.status, OrderStatus::Filled);
    edit(&o, "a", |i| i.spec.size = d("0.6")).await;
    settle(&e).await;
    let a = o.actual("a").await.unwrap().unwrap();
    assert_eq!(a.order.status, OrderStatus::Filled);
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
    assert_eq!(
        o.intent("b").await.unwrap().unwrap().intent.status,
        IntentStatus::Cancelled
    );
    o.verify("a").await.unwrap();
}

async fn an_exchange_id_resolves_to_the_placement_that_carries_it(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    o.create_intent(&limit("a", Side::Buy, "100", "1"))
        .await
        .unwrap();
    settle(&e).await;
    let old = o
        .actual("a")
        .await
        .unwrap()
        .unwrap()
        .order
        .exchange_order_id
        .unwrap();
    venue.cancel(&old).await.unwrap();
    settle(&e).await;
    let new = o
        .actual("a")
        .await
        .unwrap()
        .unwrap()
        .order
        .exchange_order_id
        .unwrap();
    assert_ne!(old, new);
    let found = o.by_exchange_id(&new).await.unwrap().unwrap();
    assert_eq!(found.order.exchange_order_id.as_deref(), Some(new.as_str()));
    // The old id is not the new placement: a late callback for it must not land there.
    if let Some(p) = o.by_exchange_id(&old).await.unwrap() {
        assert_eq!(
            p.order.exchange_order_id.as_deref(),
            Some(old.as_str()),
            "the old exchange id resolved to another placement"
        );
    }
}

async fn concurrent_intents_joining_one_new_group_all_succeed(store: Arc<dyn StateStore>) {
    let o = OrderStore::new(store.clone(), &dep());
    let mut tasks = Vec::new();
    for k in 0..8 {
        let o = o.clone();
        tasks.push(tokio::spawn(async move {
            let i = limit(&format!("leg{k}"), Side::Buy, "100", "1")
                .in_group("new-group")
                .unwrap();
            o.create_intent(&i).await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.is_ok(), "a create failed: {:?}", r.unwrap_err());
    }
    assert_eq!(o.group("new-group").await.unwrap().len(), 8);
    // The caller's own conflict still is one: the same id twice.
    assert!(matches!(
        o.create_intent(&limit("leg0", Side::Buy, "1", "1"))
            .await
            .unwrap_err(),
        OrdersError::Store(Error::AlreadyExists { .. })
    ));
}

async fn concurrent_updates_moving_intents_between_groups_all_succeed(store: Arc<dyn StateStore>) {
    // Eight intents leave one group for another at once: each update rewrites both groups'
    // indexes, which the callers never read. None of that contention is the caller's.
    let o = OrderStore::new(store.clone(), &dep());
    let mut read = Vec::new();
    for k in 0..8 {
        let i = limit(&format!("leg{k}"), Side::Buy, "100", "1")
            .in_group("old")
            .unwrap();
        read.push(o.create_intent(&i).await.unwrap());
    }
    let mut tasks = Vec::new();
    for cur in read.clone() {
        let o = o.clone();
        tasks.push(tokio::spawn(async move {
            let next = cur.intent.clone().in_group("new").unwrap();
            o.update_intent(&cur, next).await
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.is_ok(), "an update failed: {:?}", r.unwrap_err());
    }
    assert!(o.group("old").await.unwrap().is_empty());
    assert_eq!(o.group("new").await.unwrap().len(), 8);
    // A stale intent read is still the caller's conflict, with both versions.
    let mut again = read[0].intent.clone();
    again.spec.price = Some(d("98"));
    assert!(matches!(
        o.update_intent(&read[0], again).await.unwrap_err(),
        OrdersError::Store(Error::Conflict {
            expected: 1,
            actual: Some(2),
            ..
        })
    ));
    for k in 0..8 {
        o.verify(&format!("leg{k}")).await.unwrap();
    }
}

async fn a_remainder_below_the_venue_minimum_is_done(store: Arc<dyn StateStore>) {
    let (venue, e, o) = setup(&store);
    venue.set_min_size(d("0.1"));
    o.create_intent(&limit("a", Side::Buy, "100", "1"))
        .await
        .unwrap();
    settle(&e).await;
    venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.95"))
        .unwrap();
    settle(&e).await;
    // 0.05 left, below the venue's minimum of 0.1: the intent is done, the rest cancelled.
    let x = o
        .actual("a")
        .await
        .unwrap()
        .unwrap()
        .order
        .exchange_order_id
        .unwrap();
    venue.cancel(&x).await.unwrap();
    settle(&e).await;
    assert_eq!(venue.client_orders().len(), 1, "a dust order was placed");
    assert_eq!(
        o.intent("a").await.unwrap().unwrap().intent.status,
        IntentStatus::Done
    );
}
