//! The strategy store on every backend: one tick = one transaction, trades idempotent by id,
//! typed state round-trips exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tierstate::strategy::{
    Holdings, PositionRecord, Side, StrategyState, StrategyStore, Tick, Trade,
};
use tierstate_core::{
    DeploymentId, DocAddr, DocWrite, Error, InMemoryStore, PutMode, StateStore, WriteBatch,
};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    a_tick_commits_everything_or_nothing,
    replayed_ticks_write_nothing_and_bad_input_changes_nothing,
    extra_records_ride_in_the_ticks_transaction,
    non_finite_numbers_in_a_tick_state_are_refused_by_field_path,
    writes_outside_a_tick_and_reads_by_time_and_name,
);

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn trade(id: &str, at: i64, price: &str) -> Trade {
    Trade {
        trade_id: id.into(),
        time: t(at),
        symbol: "ETH-USD".into(),
        side: Side::Buy,
        price: d(price),
        size: d("0.50"),
        fee: d("0.10"),
        position_id: None,
    }
}

fn state(at: i64, cash: &str) -> StrategyState {
    StrategyState {
        last_time: Some(t(at)),
        last_event_id: Some(format!("ev-{at}")),
        portfolio: Holdings {
            cash: BTreeMap::from([("USD".into(), d(cash))]),
            positions: BTreeMap::from([("ETH".into(), d("1.50"))]),
        },
        runtime: json!({"regime": "calm", "n": at})
            .as_object()
            .unwrap()
            .clone(),
        metrics: BTreeMap::from([("pnl".into(), d("12.30"))]),
    }
}

fn pos() -> Vec<PositionRecord> {
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let mut p = PositionRecord::perp("ETH-USD", "sim", "ETH-USD")
        .unwrap()
        .with_times(at, at)
        .unwrap();
    p.apply_trade(Side::Buy, d("1.50"), d("2500.00")).unwrap();
    p.mark(d("2510")).unwrap();
    vec![p]
}

async fn a_tick_commits_everything_or_nothing(store: Arc<dyn StateStore>) {
    let s = StrategyStore::<StrategyState>::new(store.clone(), &DeploymentId::new("mm").unwrap());
    assert!(s.load().await.unwrap().is_none());
    let first = s
        .tick(Tick {
            time: t(1),
            expected: None,
            state: &state(1, "1000.00"),
            trades: &[trade("tr-1", 1, "2500.00")],
            positions: Some(&pos()),
            metrics: &[("pnl", 1.5), ("exposure", 0.25)],
        })
        .await
        .unwrap();
    assert_eq!((first.version, first.new_trades), (1, 1));
    // A tick with a conflicting trade (same id, other content) writes nothing at all.
    let e = s
        .tick(Tick {
            time: t(2),
            expected: Some(1),
            state: &state(2, "900.00"),
            trades: &[trade("tr-2", 2, "2510.00"), trade("tr-1", 1, "2400.00")],
            positions: Some(&[]),
            metrics: &[("pnl", 2.0)],
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::KeyReused { .. }), "{e}");
    let cp = s.load().await.unwrap().unwrap();
    assert_eq!((cp.version, cp.state), (1, state(1, "1000.00")));
    assert_eq!(
        s.trades(1, 10).await.unwrap(),
        [trade("tr-1", 1, "2500.00")]
    );
    assert_eq!(s.positions(None).await.unwrap().unwrap().positions, pos());
    assert_eq!(s.metric("pnl", t(0), t(10), 10).await.unwrap().len(), 1);
    // A stale checkpoint conflicts, with both versions; nothing written.
    s.tick(Tick {
        time: t(3),
        expected: Some(1),
        state: &state(3, "800.00"),
        trades: &[trade("tr-3", 3, "2490.00")],
        positions: None,
        metrics: &[("pnl", 3.0)],
    })
    .await
    .unwrap();
    let stale = s
        .tick(Tick {
            time: t(4),
            expected: Some(1),
            state: &state(4, "700.00"),
            trades: &[trade("tr-4", 4, "2480.00")],
            positions: None,
            metrics: &[],
        })
        .await
        .unwrap_err();
    assert!(matches!(
        stale,
        Error::Conflict {
            expected: 1,
            actual: Some(2),
            ..
        }
    ));
    assert_eq!(s.trades(1, 10).await.unwrap().len(), 2);
    // Series and snapshots by time.
    let pnl = s.metric("pnl", t(0), t(10), 10).await.unwrap();
    assert_eq!(pnl.iter().map(|p| p.value).collect::<Vec<_>>(), [1.5, 3.0]);
    assert_eq!(
        s.metric("exposure", t(2), t(10), 10).await.unwrap().len(),
        0
    );
    assert_eq!(s.positions(Some(t(2))).await.unwrap().unwrap().time, t(1));
}

/// A tick's trades and metrics that must be refused.
type BadTick<'a> = (&'a [Trade], &'a [(&'a str, f64)]);

async fn replayed_ticks_write_nothing_and_bad_input_changes_nothing(store: Arc<dyn StateStore>) {
    let s = StrategyStore::<StrategyState>::new(store.clone(), &DeploymentId::new("mm").unwrap());
    let tr = [trade("tr-1", 1, "2500.00"), trade("tr-2", 1, "2501.00")];
    s.tick(Tick {
        time: t(1),
        expected: None,
        state: &state(1, "1000.00"),
        trades: &tr,
        positions: None,
        metrics: &[],
    })
    .await
    .unwrap();
    // The same trades again (a tick retried after a crash): replayed, not doubled.
    let again = s
        .tick(Tick {
            time: t(1),
            expected: Some(1),
            state: &state(1, "1000.00"),
            trades: &tr,
            positions: None,
            metrics: &[],
        })
        .await
        .unwrap();
    assert_eq!((again.new_trades, again.replayed_trades), (0, 2));
    assert_eq!(s.trades(1, 10).await.unwrap().len(), 2);
    // Non-finite metrics, bad names, non-positive sizes: refused, nothing written.
    let mut zero = trade("tr-9", 2, "1");
    zero.size = Decimal::ZERO;
    let bad: [BadTick<'_>; 4] = [
        (&[], &[("pnl", f64::NAN)]),
        (&[], &[("pnl", f64::INFINITY)]),
        (&[], &[("no spaces", 1.0)]),
        (std::slice::from_ref(&zero), &[]),
    ];
    for (trades, metrics) in bad {
        let e = s
            .tick(Tick {
                time: t(2),
                expected: Some(2),
                state: &state(2, "1.00"),
                trades,
                positions: None,
                metrics,
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    }
    assert_eq!(s.load().await.unwrap().unwrap().version, 2);
    assert!(s.metric("pnl", t(0), t(10), 10).await.unwrap().is_empty());
}

/// A state with the shapes that trip naive stores: sets, times, nested structs, decimals whose
/// scale matters ("1.50" is not "1.5").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rich {
    tags: BTreeSet<String>,
    at: DateTime<Utc>,
    nested: Holdings,
    prices: Vec<Decimal>,
    note: Option<String>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn typed_state_round_trips_exactly(
        tags in prop::collection::btree_set("[a-z]{1,6}", 0..5),
        micros in 0i64..4_000_000_000_000_000,
        amounts in prop::collection::vec((any::<i64>(), 0u32..12), 0..6),
        note in prop::option::of("\\PC{0,12}"),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let s = StrategyStore::<Rich>::new(Arc::new(InMemoryStore::new()), &DeploymentId::new("r").unwrap());
            let prices: Vec<Decimal> = amounts.iter().map(|(m, sc)| Decimal::new(*m, *sc)).collect();
            let nested = Holdings {
                cash: prices.iter().enumerate().map(|(i, p)| (format!("c{i}"), *p)).collect(),
                positions: BTreeMap::new(),
            };
            let rich = Rich { tags, at: DateTime::from_timestamp_micros(micros).unwrap(), nested, prices, note };
            s.tick(Tick { time: rich.at, expected: None, state: &rich, trades: &[], positions: None, metrics: &[] })
                .await
                .unwrap();
            let back = s.load().await.unwrap().unwrap().state;
            assert_eq!(&back, &rich);
            // Scale survives, not just value.
            for (a, b) in back.prices.iter().zip(&rich.prices) {
                assert_eq!(a.scale(), b.scale());
            }
        });
    }
}

async fn extra_records_ride_in_the_ticks_transaction(store: Arc<dyn StateStore>) {
    let s = StrategyStore::<StrategyState>::new(store.clone(), &DeploymentId::new("mm").unwrap());
    let book = DocAddr::new("mm", "book", "quotes").unwrap();
    let quotes = |v: i64| json!({"bid": v}).as_object().unwrap().clone();
    let (s1, s2) = (state(1, "1000.00"), state(2, "990.00"));
    let (tr1, tr2) = ([trade("tr-1", 1, "2500.00")], [trade("tr-2", 2, "2501.00")]);
    let tick = |at: i64, expected, state, trades| Tick {
        time: t(at),
        expected,
        state,
        trades,
        positions: None,
        metrics: &[],
    };
    let extra = WriteBatch::new().document(DocWrite::new(book.clone(), PutMode::Create, quotes(1)));
    let plan = s.plan_tick(tick(1, None, &s1, &tr1)).unwrap();
    let done = plan.committed(&store.write(extra.with(&plan)).await.unwrap());
    assert_eq!((done.version, done.new_trades), (1, 1));
    assert_eq!(store.get_document(&book).await.unwrap().unwrap().version, 1);
    // A failing extra member (a stale document version) fails the whole tick.
    let stale = WriteBatch::new().document(DocWrite::new(
        book.clone(),
        PutMode::Update { expected: 7 },
        quotes(2),
    ));
    let plan = s.plan_tick(tick(2, Some(1), &s2, &tr2)).unwrap();
    let e = store.write(stale.with(&plan)).await.unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e}");
    assert_eq!(s.load().await.unwrap().unwrap().version, 1);
    assert_eq!(s.trades(1, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.get_document(&book).await.unwrap().unwrap().value,
        quotes(1)
    );
}

/// A state with floats, as a strategy may keep one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Signals {
    z_scores: Vec<f64>,
    last: f64,
}

async fn non_finite_numbers_in_a_tick_state_are_refused_by_field_path(store: Arc<dyn StateStore>) {
    let s = StrategyStore::<Signals>::new(store.clone(), &DeploymentId::new("sig").unwrap());
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let state = Signals {
            z_scores: vec![0.5, bad],
            last: 1.0,
        };
        let e = s
            .tick(Tick {
                time: t(1),
                expected: None,
                state: &state,
                trades: &[],
                positions: None,
                metrics: &[],
            })
            .await
            .unwrap_err();
        match &e {
            Error::InvalidInput { reason, .. } => {
                assert!(reason.contains("$.z_scores[1]"), "{e}")
            }
            other => panic!("{bad}: stored or failed otherwise: {other:?}"),
        }
        // Nothing was written (on main it was stored as null).
        assert!(
            store
                .get(&DeploymentId::new("sig").unwrap())
                .await
                .unwrap()
                .is_none()
        );
    }
    // Finite values round-trip bit-exactly.
    let ok = Signals {
        z_scores: vec![0.1 + 0.2, -1e-300],
        last: f64::MAX,
    };
    s.tick(Tick {
        time: t(1),
        expected: None,
        state: &ok,
        trades: &[],
        positions: None,
        metrics: &[],
    })
    .await
    .unwrap();
    assert_eq!(s.load().await.unwrap().unwrap().state, ok);
}

/// Seed 003's calls outside a tick (each its own transaction, idempotent on replay) and its
/// reads: trades by time range with a cursor, positions over a range, several metrics at
/// once, the metric names.
async fn writes_outside_a_tick_and_reads_by_time_and_name(store: Arc<dyn StateStore>) {
    use tierstate_core::Error as E;
    let s = StrategyStore::<StrategyState>::new(store.clone(), &DeploymentId::new("mm").unwrap());
    for (i, at) in [10, 20, 20, 30, 40].into_iter().enumerate() {
        let mut tr = trade(&format!("t{i}"), at, "2500");
        tr.position_id = Some("eth-perp".into());
        assert!(s.append_trade(&tr).await.unwrap(), "t{i} is new");
    }
    // A replay writes nothing; the same id with other content is refused.
    let mut again = trade("t0", 10, "2500");
    again.position_id = Some("eth-perp".into());
    assert!(!s.append_trade(&again).await.unwrap());
    assert!(matches!(
        s.append_trade(&trade("t0", 10, "1")).await,
        Err(E::KeyReused { .. })
    ));
    let mut bad = trade("t9", 10, "1");
    bad.position_id = Some(String::new());
    assert!(matches!(
        s.append_trade(&bad).await,
        Err(E::InvalidInput { .. })
    ));
    assert_eq!(s.trades(1, 100).await.unwrap().len(), 5);

    // By time: [20, 40) in pages of two, oldest first, continuing by cursor.
    let ids = |p: &tierstate::strategy::TradePage| {
        p.trades
            .iter()
            .map(|t| t.trade_id.clone())
            .collect::<Vec<_>>()
    };
    let p1 = s.trades_between(t(20), t(40), 2, None).await.unwrap();
    assert_eq!(ids(&p1), ["t1", "t2"]);
    assert_eq!(p1.trades[0].position_id.as_deref(), Some("eth-perp"));
    let p2 = s.trades_between(t(20), t(40), 2, p1.next).await.unwrap();
    assert_eq!((ids(&p2), p2.next), (vec!["t3".to_owned()], None));
    assert!(s.trades_between(t(40), t(20), 2, None).await.is_err());

    // Positions once per time: a replay is a no-op, another snapshot at that time refused.
    assert!(s.upsert_positions(t(20), &pos()).await.unwrap());
    assert!(!s.upsert_positions(t(20), &pos()).await.unwrap());
    let mut other = pos();
    other[0].mark(d("2600")).unwrap();
    assert!(matches!(
        s.upsert_positions(t(20), &other).await,
        Err(E::KeyReused { .. })
    ));
    assert!(s.upsert_positions(t(30), &other).await.unwrap());
    let hist = s.position_history(t(0), t(100), 10).await.unwrap();
    assert_eq!(
        hist.iter().map(|h| h.time).collect::<Vec<_>>(),
        [t(20), t(30)]
    );
    assert_eq!(hist[1].positions[0].mark_price, Some(d("2600")));

    // Metrics once per (time, name); several by name; the names.
    assert_eq!(
        s.append_metrics(t(20), &[("pnl", 1.5), ("inventory.eth", 0.25)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.append_metrics(t(20), &[("pnl", 1.5)]).await.unwrap(), 0);
    assert!(matches!(
        s.append_metrics(t(20), &[("pnl", 2.0)]).await,
        Err(E::KeyReused { .. })
    ));
    // A bad point refuses the whole call: nothing of it is written.
    assert!(
        s.append_metrics(t(30), &[("pnl", 3.0), ("x", f64::NAN)])
            .await
            .is_err()
    );
    assert_eq!(s.append_metrics(t(30), &[("pnl", 3.0)]).await.unwrap(), 1);
    let m = s
        .metrics(&["pnl", "inventory.eth", "never"], t(0), t(100), 10)
        .await
        .unwrap();
    let values = |n: &str| m[n].iter().map(|p| p.value).collect::<Vec<_>>();
    assert_eq!(values("pnl"), [1.5, 3.0]);
    assert_eq!(values("inventory.eth"), [0.25]);
    assert!(m["never"].is_empty());
    assert_eq!(s.metric_names().await.unwrap(), ["inventory.eth", "pnl"]);
    // The newest point of each, as a dashboard shows it.
    let latest = s.latest_metric("pnl").await.unwrap().unwrap();
    assert_eq!((latest.time, latest.value), (t(30), 3.0));
    assert_eq!(
        s.latest_metric("inventory.eth")
            .await
            .unwrap()
            .unwrap()
            .value,
        0.25
    );
    assert!(s.latest_metric("never").await.unwrap().is_none());
}
