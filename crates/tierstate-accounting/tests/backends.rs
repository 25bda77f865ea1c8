//! Accounting on every backend: the same tests run on the in-memory store, SQLite, redb and
//! PostgreSQL (when `TEST_DATABASE_URL` is set; `cargo xtask test` starts one).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use tierstate_accounting::{
    AccountingError, Amount, Degraded, ExecutionMode, Flows, NavFold, Portfolio, PortfolioMetrics,
    PortfolioSnapshot, Saved, ValueConfidence,
};
use tierstate_core::{
    DeploymentId, DocAddr, DocWrite, Error, PutMode, StateStore, StateWrite, WriteBatch,
};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    snapshot_saves_are_idempotent_and_replace_only_by_upsert,
    snapshot_time_queries_mean_what_they_say_across_offsets,
    nav_header_stays_equal_to_a_full_recomputation,
    retention_deletes_by_snapshot_time_in_one_transaction,
    metrics_are_cas_and_commit_with_a_snapshot,
    graceful_reads_count_their_failures,
    bulk_saves_append_in_one_transaction,
    a_planned_snapshot_commits_in_the_callers_batch_or_not_at_all,
    schema_1_snapshots_read_through_their_step,
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

/// The total value of a snapshot a query must have found.
fn value(found: tierstate_accounting::Result<Option<PortfolioSnapshot>>) -> Decimal {
    found.unwrap().expect("a snapshot").total_value
}

fn snap(at: DateTime<Utc>, value: &str) -> PortfolioSnapshot {
    PortfolioSnapshot::new(at, d(value), ValueConfidence::High, ExecutionMode::Paper).unwrap()
}

async fn snapshot_saves_are_idempotent_and_replace_only_by_upsert(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    let s = snap(t(10), "1000.50")
        .with_cash(Amount::Measured(d("250")))
        .with_positions(vec![
            tierstate_positions::PositionRecord::new(
                "eth",
                "ethereum",
                tierstate_positions::PositionType::Token,
                "ETH",
                d("0.4"),
                d("1000.50"),
            )
            .unwrap()
            .with_times(t(10), t(10))
            .unwrap(),
        ])
        .with_cycle("c-1")
        .unwrap();
    assert_eq!(p.save_snapshot(&s).await.unwrap(), Saved::Stored(1));
    assert_eq!(p.save_snapshot(&s).await.unwrap(), Saved::Unchanged);
    assert_eq!(p.latest().await.unwrap().unwrap(), s);
    let other = snap(t(10), "999");
    match p.save_snapshot(&other).await {
        Err(AccountingError::SnapshotExists { time, .. }) => assert_eq!(time, t(10)),
        r => panic!("{r:?}"),
    }
    assert_eq!(p.latest().await.unwrap().unwrap(), s, "save never replaces");
    assert_eq!(p.upsert_snapshot(&other).await.unwrap(), Saved::Replaced(2));
    assert_eq!(p.upsert_snapshot(&other).await.unwrap(), Saved::Unchanged);
    assert_eq!(p.latest().await.unwrap().unwrap(), other);
    // Unmeasured cash is not zero, and stays unmeasured.
    let unmeasured = snap(t(20), "1");
    p.save_snapshot(&unmeasured).await.unwrap();
    assert_eq!(
        p.latest().await.unwrap().unwrap().available_cash,
        Amount::Unmeasured
    );
    let zero = snap(t(30), "1").with_cash(Amount::Measured(Decimal::ZERO));
    p.save_snapshot(&zero).await.unwrap();
    assert_eq!(
        p.latest().await.unwrap().unwrap().available_cash,
        Amount::Measured(Decimal::ZERO)
    );
    // Bad snapshots are refused before anything is stored.
    assert!(
        PortfolioSnapshot::new(t(40), d("-1"), ValueConfidence::Low, ExecutionMode::Live).is_err()
    );
    let before_1970 = Utc.timestamp_opt(-5, 0).unwrap();
    assert!(matches!(
        p.save_snapshot(&snap(before_1970, "1")).await,
        Err(AccountingError::InvalidTime { .. })
    ));
    assert_eq!(p.nav_summary().await.unwrap().stored, 3);
}

async fn snapshot_time_queries_mean_what_they_say_across_offsets(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    // Saved out of order, with mixed offsets. As text "10:00+02:00" sorts after "09:00Z";
    // as instants 08:00Z comes first.
    let texts = [
        ("2026-11-21T09:00:00Z", "3"),
        ("2026-11-21T10:00:00+02:00", "1"), // 08:00Z
        ("2026-11-21T04:30:00-05:00", "4"), // 09:30Z
        ("2026-11-21T08:30:00.000001Z", "2"),
        ("2026-11-21T12:00:00+01:00", "5"), // 11:00Z
    ];
    for (text, v) in texts {
        let s = PortfolioSnapshot::at_text(text, d(v), ValueConfidence::High, ExecutionMode::Live)
            .unwrap();
        p.save_snapshot(&s).await.unwrap();
    }
    assert!(matches!(
        PortfolioSnapshot::at_text(
            "2026-11-21T09:00:00",
            d("1"),
            ValueConfidence::High,
            ExecutionMode::Live
        ),
        Err(AccountingError::InvalidTime { .. })
    ));
    let at = |s: &str| tierstate_accounting::parse_utc("t", s).unwrap();
    let values = |v: Vec<PortfolioSnapshot>| {
        v.iter()
            .map(|s| s.total_value.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(value(p.first().await), d("1"));
    assert_eq!(value(p.latest().await), d("5"));
    assert_eq!(
        values(p.recent(3).await.unwrap()),
        ["3", "4", "5"],
        "oldest first, [-1] is the latest"
    );
    assert_eq!(
        values(p.recent(99).await.unwrap()),
        ["1", "2", "3", "4", "5"]
    );
    assert_eq!(
        values(p.since(at("2026-11-21T09:00:00Z"), 2).await.unwrap()),
        ["3", "4"]
    );
    let w = p
        .window(
            at("2026-11-21T08:30:00.000001Z"),
            at("2026-11-21T09:30:00Z"),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        (values(w.snapshots), w.truncated),
        (vec!["2".into(), "3".into(), "4".into()], false)
    );
    let w = p
        .window(at("2026-11-21T08:00:00Z"), at("2026-11-21T11:00:00Z"), 2)
        .await
        .unwrap();
    assert_eq!(
        (values(w.snapshots), w.truncated),
        (vec!["1".into(), "2".into()], true)
    );
    // Open ends and the default cap (seed 000's window).
    let w = p
        .window(None, at("2026-11-21T09:00:00Z"), None)
        .await
        .unwrap();
    assert_eq!(
        (values(w.snapshots), w.truncated),
        (vec!["1".into(), "2".into(), "3".into()], false)
    );
    let w = p
        .window(at("2026-11-21T09:00:00Z"), None, None)
        .await
        .unwrap();
    assert_eq!(values(w.snapshots), ["3", "4", "5"]);
    let w = p.window(None, None, 4).await.unwrap();
    assert_eq!(
        (values(w.snapshots), w.truncated),
        (vec!["1".into(), "2".into(), "3".into(), "4".into()], true)
    );
    // At-or-before never looks ahead; nearest looks both ways (ties go to the earlier).
    let q = at("2026-11-21T09:20:00Z");
    assert_eq!(value(p.at_or_before(q).await), d("3"));
    assert_eq!(value(p.nearest(q).await), d("4"));
    assert_eq!(value(p.nearest(at("2026-11-21T09:15:00Z")).await), d("3"));
    assert_eq!(
        value(p.at_or_before(at("2026-11-21T09:00:00Z")).await),
        d("3")
    );
    assert!(
        p.at_or_before(at("2026-11-21T07:59:59Z"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(value(p.nearest(at("2026-11-21T07:00:00Z")).await), d("1"));
    assert_eq!(value(p.nearest(at("2027-01-01T00:00:00Z")).await), d("5"));
    // Bad windows and limits are typed errors.
    for r in [
        p.window(at("2026-11-21T10:00:00Z"), at("2026-11-21T09:00:00Z"), 10)
            .await
            .map(drop),
        p.window(at("2026-11-21T08:00:00Z"), at("2026-11-21T09:00:00Z"), 0)
            .await
            .map(drop),
        p.recent(0).await.map(drop),
        p.since(at("2026-11-21T08:00:00Z"), 0).await.map(drop),
    ] {
        assert!(
            matches!(r, Err(AccountingError::InvalidInput { .. })),
            "{r:?}"
        );
    }
}

async fn nav_header_stays_equal_to_a_full_recomputation(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    let series = ["100", "120", "90", "130", "65", "140"];
    for (i, v) in series.iter().enumerate() {
        p.save_snapshot(&snap(t(i as i64 * 10), v)).await.unwrap();
    }
    let s = p.nav_summary().await.unwrap();
    assert_eq!(s.fold, NavFold::over(series.iter().map(|v| d(v))));
    assert_eq!(s.fold.high_water_mark, d("140"));
    assert_eq!(s.fold.max_drawdown, d("65"));
    assert_eq!(s.fold.max_drawdown_pct, d("50"));
    assert_eq!(s.fold, p.recompute_nav().await.unwrap());
    // Incremental reads: a full page, then only what is new.
    let page = p.nav_series(None, 4).await.unwrap();
    assert!(page.truncated);
    let page2 = p.nav_series(page.cursor, 100).await.unwrap();
    let mut fold = NavFold::over(page.points.iter().map(|x| x.value));
    fold = fold.extended(page2.points.iter().map(|x| x.value));
    assert_eq!(fold, s.fold);
    p.save_snapshot(&snap(t(60), "70")).await.unwrap();
    let page3 = p.nav_series(page2.cursor, 100).await.unwrap();
    assert_eq!(page3.points.len(), 1);
    fold = fold.extended(page3.points.iter().map(|x| x.value));
    assert_eq!(fold, p.nav_summary().await.unwrap().fold);
    // A back-fill rewrites the series: the header is refolded, old cursors are refused.
    p.save_snapshot(&snap(t(5), "10")).await.unwrap();
    let s = p.nav_summary().await.unwrap();
    assert_eq!(s.epoch, 1);
    assert_eq!(s.fold, p.recompute_nav().await.unwrap());
    assert_eq!(
        s.fold.max_drawdown_pct,
        d("90"),
        "100 then the back-filled 10"
    );
    assert!(matches!(
        p.nav_series(page3.cursor, 10).await,
        Err(AccountingError::SeriesRewritten {
            cursor: 0,
            current: 1
        })
    ));
    // Replacing the newest one also refolds.
    p.upsert_snapshot(&snap(t(60), "200")).await.unwrap();
    let s = p.nav_summary().await.unwrap();
    assert_eq!(s.fold.high_water_mark, d("200"));
    assert_eq!(s.fold, p.recompute_nav().await.unwrap());
    // Points carry the snapshot's components (seed 000's rows); no cap means the default.
    let mut parts = snap(t(70), "210");
    parts.available_cash = Amount::Measured(d("12.50"));
    parts.value_confidence = ValueConfidence::Medium;
    parts.flows = Some(Flows {
        deposits: d("100"),
        withdrawals: d("40"),
    });
    p.save_snapshot(&parts).await.unwrap();
    let all = p.nav_series(None, None).await.unwrap();
    assert!(!all.truncated);
    let last = all.points.last().unwrap();
    assert_eq!(
        (last.value, last.available_cash, last.value_confidence),
        (
            d("210"),
            Amount::Measured(d("12.50")),
            ValueConfidence::Medium
        )
    );
    assert_eq!(last.flows.map(Flows::net), Some(d("60")));
    assert_eq!(all.points[0].available_cash, Amount::Unmeasured);
}

async fn retention_deletes_by_snapshot_time_in_one_transaction(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    // Saved newest first, so insert order and snapshot time disagree.
    for i in (0..10).rev() {
        p.save_snapshot(&snap(t(i * 60), &format!("{}", 100 + i * 7 % 5)))
            .await
            .unwrap();
    }
    let before = p.nav_summary().await.unwrap();
    assert_eq!(p.delete_before(t(240)).await.unwrap(), 4);
    assert_eq!(p.delete_before(t(240)).await.unwrap(), 0);
    assert_eq!(p.first().await.unwrap().unwrap().time, t(240));
    let after = p.nav_summary().await.unwrap();
    assert_eq!(after.stored, 6);
    assert_eq!(
        after.fold, before.fold,
        "lifetime figures survive retention"
    );
    assert_eq!(after.cut, Some(t(240)));
    assert_eq!(after.fold, p.recompute_nav().await.unwrap());
    assert!(matches!(
        p.save_snapshot(&snap(t(100), "1")).await,
        Err(AccountingError::BeforeRetention { .. })
    ));
    assert_eq!(
        p.window(t(0), t(10_000), 100)
            .await
            .unwrap()
            .snapshots
            .len(),
        6
    );
}

async fn metrics_are_cas_and_commit_with_a_snapshot(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    let mut m = PortfolioMetrics::new(d("10000"), t(0), ExecutionMode::Paper).unwrap();
    let v1 = p.save_metrics(&m, None).await.unwrap();
    assert!(matches!(
        p.save_metrics(&m, None).await,
        Err(AccountingError::Store(Error::AlreadyExists { .. }))
    ));
    // Snapshot and metrics in one batch; the snapshot carries the flows to date.
    m.deposit(d("5000")).unwrap();
    m.observe(Amount::Measured(d("15200")), t(60)).unwrap();
    let (saved, v2) = p
        .save_snapshot_and_metrics(&snap(t(60), "15200"), &m, Some(v1))
        .await
        .unwrap();
    assert_eq!((saved, v2), (Saved::Stored(1), v1 + 1));
    let loaded = p.load_metrics().await.unwrap().unwrap();
    assert_eq!((loaded.metrics.clone(), loaded.version), (m.clone(), v2));
    assert_eq!(
        loaded.metrics.pnl_since_inception(),
        Amount::Measured(d("200"))
    );
    assert_eq!(
        p.latest().await.unwrap().unwrap().flows.unwrap().deposits,
        d("5000")
    );
    // A stale metrics version fails the whole batch: the snapshot is not stored either.
    m.withdraw(d("1000")).unwrap();
    let stale = p
        .save_snapshot_and_metrics(&snap(t(120), "14300"), &m, Some(v1))
        .await;
    match stale {
        Err(AccountingError::Store(Error::Conflict {
            expected, actual, ..
        })) => {
            assert_eq!((expected, actual), (v1, Some(v2)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.latest().await.unwrap().unwrap().time, t(60));
    let (_, v3) = p
        .save_snapshot_and_metrics(&snap(t(120), "14300"), &m, Some(v2))
        .await
        .unwrap();
    assert_eq!(v3, v2 + 1);
    // PnL over the window: 14300 - 15200 + 1000 withdrawn = 100.
    assert_eq!(
        p.pnl_over(t(60), t(120)).await.unwrap(),
        Amount::Measured(d("100"))
    );
    assert_eq!(
        p.pnl_over(t(-600), t(120)).await.unwrap(),
        Amount::Unmeasured,
        "no snapshot then"
    );
    assert!(p.pnl_over(t(120), t(60)).await.is_err());
    // Unmeasured last value: PnL since inception is unmeasured, never zero.
    m.observe(Amount::Unmeasured, t(180)).unwrap();
    assert_eq!(m.pnl_since_inception(), Amount::Unmeasured);
    assert!(m.deposit(d("-1")).is_err());
    assert!(m.deposit(Decimal::ZERO).is_err());
}

async fn graceful_reads_count_their_failures(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    p.save_snapshot(&snap(t(0), "1")).await.unwrap();
    // A stored snapshot that does not decode (a field from the future): the loud read fails,
    // the graceful one serves empty and counts it.
    let addr = DocAddr::new("eth-basis", "portfolio.snapshots", "0001800000060000000").unwrap();
    let mut v = serde_json::to_value(snap(t(60), "2"))
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    v.insert("schema".into(), json!(1));
    v.insert("seq".into(), json!(9));
    v.insert("leverage".into(), json!("3"));
    store
        .put_document(DocWrite::new(addr, PutMode::Create, v))
        .await
        .unwrap();
    assert!(p.recent(5).await.is_err());
    let degraded = Degraded::new();
    let got = degraded.or_default("recent snapshots", p.recent(5).await);
    assert!(got.is_empty());
    assert_eq!(degraded.failures(), 1);
    assert!(
        degraded
            .last_failure()
            .unwrap()
            .contains("recent snapshots")
    );
    let ok = degraded.or_default(
        "first",
        p.first().await.map(|s| s.into_iter().collect::<Vec<_>>()),
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(degraded.failures(), 1, "successes are not counted");
}

async fn bulk_saves_append_in_one_transaction(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    p.save_snapshot(&snap(t(0), "100")).await.unwrap();
    let batch: Vec<_> = [(30, "90"), (10, "120"), (20, "80")]
        .iter()
        .map(|(s, v)| snap(t(*s), v))
        .collect();
    assert_eq!(
        p.save_snapshots(&batch).await.unwrap(),
        [2, 3, 4],
        "numbered in time order"
    );
    let s = p.nav_summary().await.unwrap();
    assert_eq!(s.fold, NavFold::over(["100", "120", "80", "90"].map(d)));
    assert_eq!(s.fold, p.recompute_nav().await.unwrap());
    // Not after the newest, duplicates, empty: refused, nothing stored.
    for bad in [
        vec![snap(t(40), "1"), snap(t(25), "1")],
        vec![snap(t(50), "1"), snap(t(50), "2")],
        vec![],
    ] {
        assert!(matches!(
            p.save_snapshots(&bad).await,
            Err(AccountingError::InvalidInput { .. })
        ));
    }
    assert_eq!(p.nav_summary().await.unwrap().stored, 4);
    assert_eq!(p.latest().await.unwrap().unwrap().time, t(30));
}

async fn a_planned_snapshot_commits_in_the_callers_batch_or_not_at_all(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    p.save_snapshot(&snap(t(0), "100")).await.unwrap();
    let state = |v: i64| json!({"tick": v}).as_object().unwrap().clone();
    // Planned with the strategy's state: both commit.
    let change = p.plan_snapshot(&snap(t(10), "80")).await.unwrap();
    assert_eq!(change.fold, NavFold::over([d("100"), d("80")]));
    let batch = WriteBatch::new()
        .put(StateWrite::create(dep(), state(1)))
        .with(&change);
    store.write(batch).await.unwrap();
    let s = p.nav_summary().await.unwrap();
    assert_eq!((s.stored, s.fold), (2, change.fold));
    assert_eq!(s.fold, p.recompute_nav().await.unwrap());
    // The caller's batch fails (a stale state version): the snapshot is not there either.
    let change = p.plan_snapshot(&snap(t(20), "90")).await.unwrap();
    let stale = WriteBatch::new().put(StateWrite::update(dep(), 7, state(2)));
    assert!(store.write(stale.with(&change)).await.is_err());
    assert_eq!(p.nav_summary().await.unwrap().stored, 2);
    assert!(p.at_or_before(t(25)).await.unwrap().unwrap().time == t(10));
    // Two plans from one header: the second to commit loses its compare-and-swap.
    let a = p.plan_snapshot(&snap(t(30), "95")).await.unwrap();
    let b = p.plan_snapshot(&snap(t(31), "96")).await.unwrap();
    store.write(WriteBatch::new().with(&a)).await.unwrap();
    assert!(matches!(
        store.write(WriteBatch::new().with(&b)).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        p.nav_summary().await.unwrap().fold,
        p.recompute_nav().await.unwrap()
    );
    // Only a snapshot newer than the newest can be planned.
    assert!(matches!(
        p.plan_snapshot(&snap(t(30), "1")).await,
        Err(AccountingError::InvalidInput { .. })
    ));
}

/// A snapshot stored at schema 1 held any JSON as positions: a list of position rows reads as
/// position records, anything else is kept as written in `legacy_positions`.
async fn schema_1_snapshots_read_through_their_step(store: Arc<dyn StateStore>) {
    let p = Portfolio::new(store.clone(), &dep());
    p.save_snapshot(&snap(t(10), "100")).await.unwrap();
    let at = p.latest().await.unwrap().unwrap().time;
    let addr = {
        let docs = store
            .list_documents(
                &dep(),
                &tierstate_core::Name::collection(tierstate_accounting::SNAPSHOTS).unwrap(),
                None,
                10,
            )
            .await
            .unwrap();
        docs.into_iter().next().unwrap().unwrap().address
    };
    let rewrite = |positions: serde_json::Value| {
        let store = store.clone();
        let addr = addr.clone();
        async move {
            let mut v = store.get_document(&addr).await.unwrap().unwrap().value;
            v.insert("schema".into(), json!(1));
            v.insert("positions".into(), positions);
            store
                .put_document(DocWrite::new(addr, PutMode::Overwrite, v))
                .await
                .unwrap();
        }
    };
    rewrite(json!([{"symbol": "ETH-USD", "size": "-0.25", "avg_price": "2563.47"}])).await;
    let got = p.latest().await.unwrap().unwrap();
    assert_eq!(got.time, at);
    assert_eq!(got.legacy_positions, None);
    assert_eq!(got.positions.len(), 1);
    assert_eq!(got.positions[0].amount, d("-0.25"));
    assert_eq!(got.positions[0].entry_price, Some(d("2563.47")));
    let free = json!({"eth": {"qty": 1}, "note": "kept"});
    rewrite(free.clone()).await;
    let got = p.latest().await.unwrap().unwrap();
    assert!(got.positions.is_empty());
    assert_eq!(got.legacy_positions, Some(free));
}
