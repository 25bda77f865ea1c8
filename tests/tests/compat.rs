//! Records every domain wrote at 6e4015a (`fixtures/domains-6e4015a.db`: CLOB orders, portfolio
//! snapshots, a registry row and its ledger entry, a position event, a positions book, a
//! strategy tick) open through the front door, read as today's models, and move on to today's
//! shapes when written again.

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use tierstate::accounting::RowFilter;
use tierstate::orders::{OrderStatus, Side, TimeInForce};
use tierstate::{DeploymentId, Tierstate};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 123_456_000).unwrap()
}

async fn open_copy() -> (tempfile::TempDir, Tierstate) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("domains.db");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/domains-6e4015a.db"),
        &path,
    )
    .unwrap();
    let ts = Tierstate::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    (dir, ts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clob_orders_of_6e4015a_read_as_the_one_order_model() {
    let (_dir, ts) = open_copy().await;
    let fx = DeploymentId::new("fx").unwrap();
    let clob = ts.clob(&fx);
    let p = clob.get("o-partial").await.unwrap().unwrap();
    assert_eq!(p.order.status, OrderStatus::PartiallyFilled);
    assert_eq!(p.order.spec.symbol, "tok-no");
    assert_eq!(p.order.spec.side, Side::Sell);
    assert_eq!(p.order.spec.tif, TimeInForce::Ioc);
    assert_eq!(p.order.market_id, "mkt-1");
    assert_eq!(p.order.intent_id.as_deref(), Some("int-1"));
    assert_eq!(p.order.submitted_at, Some(t(2)));
    let f = &p.order.fills[0];
    assert_eq!((f.price, f.size, f.fee), (d("0.55"), d("4"), d("0.01")));
    assert_eq!(
        (f.time, f.counterparty.as_deref()),
        (Some(t(4)), Some("cp-9"))
    );
    let filled = clob.get("o-filled").await.unwrap().unwrap();
    assert_eq!(filled.order.status, OrderStatus::Filled);
    assert_eq!(filled.order.average_fill_price(), d("0.396"));
    assert_eq!(filled.order.spec.tif, TimeInForce::Fok);
    let failed = clob.get("o-failed").await.unwrap().unwrap();
    assert_eq!(
        (failed.order.status, failed.order.error.as_deref()),
        (OrderStatus::Failed, Some("venue said no"))
    );
    let pending = clob.get("o-pending").await.unwrap().unwrap();
    assert_eq!(pending.order.metadata["note"], "kept");
    // Open orders, the intent index and the closed journal as they were written.
    let open: Vec<String> = clob
        .open_orders(None)
        .await
        .unwrap()
        .iter()
        .map(|o| o.order_id().to_owned())
        .collect();
    assert_eq!(open, ["o-partial", "o-pending"]);
    assert_eq!(clob.by_intent("int-1").await.unwrap().len(), 2);
    let closed = clob.recently_closed(None, 10).await.unwrap();
    assert_eq!(closed.orders.len(), 2);
    // Written again, the order is today's shape and reads back the same.
    let live = clob
        .update_status(&pending, OrderStatus::Submitted, t(60), None)
        .await
        .unwrap();
    assert_eq!(clob.get("o-pending").await.unwrap().unwrap(), live);
    assert_eq!(live.order.metadata["note"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_domain_record_of_6e4015a_reads() {
    let (_dir, ts) = open_copy().await;
    let fx = DeploymentId::new("fx").unwrap();
    // Snapshots held positions as raw JSON; both shapes written then read as position records.
    let snaps = ts.portfolio(&fx).recent(10).await.unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0].total_value, d("10250.50"));
    let demo = &snaps[0].positions[0];
    assert_eq!((demo.id.as_str(), demo.amount), ("ETH-USD", d("-0.25")));
    assert_eq!(demo.entry_price, Some(d("2563.47")));
    let book_shaped = &snaps[1].positions[0];
    assert_eq!(
        (book_shaped.chain.as_str(), book_shaped.value_usd),
        ("ethereum", d("4800.00"))
    );
    let rows = ts
        .registry(&fx)
        .open_rows(&RowFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].payload["liquidity"], "123.45");
    assert!(ts.ledger(&fx).get("tx-1").await.unwrap().is_some());
    let ev = ts
        .events(&fx)
        .position_event("ev-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event.position_id, "nft-1");
    let book = ts.positions(&fx).unwrap().load().await.unwrap().unwrap();
    let eth = book.book.get("eth", "ethereum").unwrap().unwrap();
    assert_eq!(eth.amount.to_string(), "1.50");
    let fy = DeploymentId::new("fy").unwrap();
    let strategy = ts.strategy::<tierstate::strategy::StrategyState>(&fy);
    let cp = strategy.load().await.unwrap().unwrap();
    assert_eq!(cp.state.portfolio.cash["USD"], d("1000"));
    assert_eq!(strategy.trades(0, 10).await.unwrap().len(), 1);
    let pos = strategy.positions(None).await.unwrap().unwrap();
    assert_eq!(pos.positions.len(), 1);
    let p = &pos.positions[0];
    assert_eq!((p.token.as_str(), p.amount), ("ETH-USD", d("0.5")));
    assert_eq!(p.entry_price, Some(d("2500")));
}
