//! The front door: one handle, one commit path. A state changed through a domain (a strategy
//! tick, a batch of the handle) is never served older from HOT, on every backend; the strategy
//! store's loads migrate payloads and refuse newer ones, and its ticks stamp the current
//! schema; every domain's operations are metered under its name.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierstate::strategy::{Holdings, Side, StrategyState, Tick, Trade};
use tierstate::{
    DeploymentId, Error, InMemoryStore, MigrationRegistry, Retention, StateMigration, StateStore,
    StateWrite, Tierstate, WriteBatch,
};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    a_tick_is_never_served_older_from_hot,
    a_domain_batch_is_never_served_older_from_hot,
    old_snapshots_are_cleaned_in_every_deployment,
);

fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn state(n: i64) -> StrategyState {
    StrategyState {
        last_time: Some(Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap()),
        last_event_id: Some(format!("ev-{n}")),
        portfolio: Holdings {
            cash: BTreeMap::from([("USD".into(), Decimal::from(1000 - n))]),
            positions: BTreeMap::new(),
        },
        runtime: Map::new(),
        metrics: BTreeMap::new(),
    }
}

async fn handle(store: Arc<dyn StateStore>) -> Tierstate {
    Tierstate::builder().warm(store).open().await.unwrap()
}

async fn a_tick_is_never_served_older_from_hot(store: Arc<dyn StateStore>) {
    let ts = handle(store).await;
    let d = id("mm");
    let strategy = ts.strategy::<StrategyState>(&d);
    let first = strategy
        .tick(Tick {
            time: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            expected: None,
            state: &state(0),
            trades: &[],
            positions: None,
            metrics: &[],
        })
        .await
        .unwrap();
    // The state calls cache version 1 in HOT.
    assert_eq!(ts.state().load(&d).await.unwrap().unwrap().version, 1);
    assert_eq!(ts.state().load(&d).await.unwrap().unwrap().version, 1);
    for n in 1..=3 {
        let trade = Trade {
            trade_id: format!("t{n}"),
            time: Utc.timestamp_opt(1_800_000_000 + n, 0).unwrap(),
            symbol: "ETH-USD".into(),
            side: Side::Buy,
            price: Decimal::from(100),
            size: Decimal::ONE,
            fee: Decimal::ZERO,
            position_id: None,
        };
        let done = strategy
            .tick(Tick {
                time: trade.time,
                expected: Some(first.version + n as u64 - 1),
                state: &state(n),
                trades: std::slice::from_ref(&trade),
                positions: None,
                metrics: &[("nav", 1000.0)],
            })
            .await
            .unwrap();
        // The next load, through HOT, sees what the tick committed.
        let seen = ts.state().load(&d).await.unwrap().unwrap();
        assert_eq!(seen.version, done.version, "HOT served an older version");
        assert_eq!(
            seen.state["last_event_id"],
            json!(format!("ev-{n}")),
            "HOT served an older state"
        );
    }
}

async fn a_domain_batch_is_never_served_older_from_hot(store: Arc<dyn StateStore>) {
    let ts = handle(store).await;
    let d = id("acct");
    let v1 = ts.state().create(&d, obj(json!({"n": 1}))).await.unwrap();
    assert_eq!(ts.state().load(&d).await.unwrap().unwrap().version, 1);
    // A batch of the handle: the state and a ledger entry together.
    let entry = tierstate::accounting::LedgerEntry::new(
        "e1",
        "acct",
        tierstate::accounting::ExecutionMode::Paper,
        Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
        "DEPOSIT",
        true,
    )
    .unwrap();
    let batch = WriteBatch::new()
        .put(StateWrite::update(
            d.clone(),
            v1.version,
            obj(json!({"n": 2})),
        ))
        .with(
            &ts.ledger(&d)
                .plan_append_batch(std::slice::from_ref(&entry))
                .await
                .unwrap(),
        );
    ts.commit(batch).await.unwrap();
    let seen = ts.state().load(&d).await.unwrap().unwrap();
    assert_eq!((seen.version, &seen.state["n"]), (2, &json!(2)));
    assert_eq!(ts.ledger(&d).stats().await.unwrap().count, 1);
    // A write through a domain's own records (the raw primitive, as a domain of one's own
    // would) is seen too.
    let records = ts.records("mine");
    records
        .put(
            StateWrite::update(d.clone(), 2, obj(json!({"n": 3}))),
            Retention::default(),
        )
        .await
        .unwrap();
    let seen = ts.state().load(&d).await.unwrap().unwrap();
    assert_eq!((seen.version, &seen.state["n"]), (3, &json!(3)));
}

/// v2 renames `qty` to `size`.
fn registry() -> MigrationRegistry {
    let mut r = MigrationRegistry::new();
    r.register(StateMigration::new(2, "rename qty to size", 2, |mut s| {
        let q = s.remove("qty").ok_or("qty is missing")?;
        s.insert("size".into(), q);
        Ok(s)
    }))
    .unwrap();
    r
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct V2 {
    size: String,
}

#[tokio::test]
async fn the_strategy_store_migrates_stamps_and_refuses_newer() {
    let raw = Arc::new(InMemoryStore::new());
    // Written by an older binary at payload schema 1, and one by a newer at schema 3.
    raw.put(
        StateWrite::create(id("old"), obj(json!({"qty": "1.5"}))).with_schema_version(1),
        Retention::default(),
    )
    .await
    .unwrap();
    raw.put(
        StateWrite::create(id("new"), obj(json!({"size": "2"}))).with_schema_version(3),
        Retention::default(),
    )
    .await
    .unwrap();
    let ts = Tierstate::builder()
        .warm(raw.clone())
        .migrations(registry())
        .open()
        .await
        .unwrap();
    let s = ts.strategy::<V2>(&id("old"));
    let cp = s.load().await.unwrap().unwrap();
    assert_eq!(cp.state, V2 { size: "1.5".into() }, "migrated on load");
    let done = s
        .tick(Tick {
            time: Utc::now(),
            expected: Some(cp.version),
            state: &V2 { size: "1.6".into() },
            trades: &[],
            positions: None,
            metrics: &[],
        })
        .await
        .unwrap();
    let stored = raw.get(&id("old")).await.unwrap().unwrap();
    assert_eq!(stored.version, done.version);
    assert_eq!(stored.schema_version, 2, "a tick stamps the current schema");
    match ts.strategy::<V2>(&id("new")).load().await {
        Err(Error::PayloadTooNew { found: 3, .. }) => {}
        other => panic!("a newer payload was read: {other:?}"),
    }
}

#[tokio::test]
async fn every_domain_is_metered_under_its_name() {
    use tierstate::{Fault, FaultSeam};
    let memory = Arc::new(InMemoryStore::new());
    let ts = handle(memory.clone()).await;
    let d = id("m");
    ts.state().create(&d, obj(json!({}))).await.unwrap();
    let entry = tierstate::accounting::LedgerEntry::new(
        "e1",
        "m",
        tierstate::accounting::ExecutionMode::Paper,
        Utc::now(),
        "DEPOSIT",
        true,
    )
    .unwrap();
    ts.ledger(&d).append(&entry).await.unwrap();
    let spec = tierstate::orders::OrderSpec::limit(
        "ETH-USD",
        tierstate::orders::Side::Buy,
        Decimal::from(100),
        Decimal::ONE,
    )
    .unwrap();
    let intent = tierstate::orders::OrderIntent::new("i1", "m", spec, Utc::now()).unwrap();
    ts.orders(&d).create_intent(&intent).await.unwrap();
    ts.orders(&d).intent("i1").await.unwrap();
    ts.portfolio(&d).latest().await.unwrap();
    let seen: Vec<(&str, &str)> = ts
        .metrics()
        .by_operation()
        .iter()
        .map(|o| (o.domain, o.op))
        .collect();
    for want in [
        ("state", "save"),
        ("ledger", "commit"),
        ("ledger", "read_document"),
        ("orders", "commit"),
        ("orders", "read_document"),
        ("portfolio", "scan_documents"),
    ] {
        assert!(seen.contains(&want), "{want:?} not metered: {seen:?}");
    }
    // Newest first, with the mean beside the percentiles.
    let latest = ts.metrics().latest(2);
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].domain, "portfolio");
    let ledger = ts
        .metrics()
        .by_operation()
        .into_iter()
        .find(|o| o.domain == "ledger" && o.op == "commit")
        .unwrap();
    assert!(ledger.count >= 1 && ledger.mean <= ledger.p99 && ledger.errors == 0);
    // A failed domain read is metered as a failure.
    let addr = tierstate::DocAddr::new("m", "orders.intents", "i1").unwrap();
    assert!(memory.inject(Fault::DocumentBody(addr)).await.unwrap());
    assert!(ts.orders(&d).intent("i1").await.is_err());
    let reads = ts
        .metrics()
        .by_operation()
        .into_iter()
        .find(|o| o.domain == "orders" && o.op == "read_document")
        .unwrap();
    assert_eq!(reads.errors, 1, "{reads:?}");
}

#[tokio::test]
async fn a_handle_opens_from_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("u.db").display());
    let ts = Tierstate::open(&url).await.unwrap();
    ts.state()
        .create(&id("a"), obj(json!({"x": 1})))
        .await
        .unwrap();
    assert_eq!(ts.warm().backend(), "sqlite");
    let mem = Tierstate::open("memory:").await.unwrap();
    assert_eq!(mem.warm().backend(), "memory");
    let e = Tierstate::open("mysql://u:hunter2@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
}

/// Seed 000's `cleanup_old_snapshots`: every deployment's snapshots older than the retention
/// (7 days unless told) go, the newer stay, and the count is returned.
async fn old_snapshots_are_cleaned_in_every_deployment(store: Arc<dyn StateStore>) {
    use tierstate::accounting::{ExecutionMode, PortfolioSnapshot, ValueConfidence};
    let ts = handle(store).await;
    let now = Utc::now();
    let snap = |days_ago: i64, v: i64| {
        PortfolioSnapshot::new(
            now - chrono::Duration::days(days_ago),
            Decimal::from(v),
            ValueConfidence::High,
            ExecutionMode::Paper,
        )
        .unwrap()
    };
    for d in ["a", "b"] {
        let p = ts.portfolio(&id(d));
        for (ago, v) in [(30, 100), (10, 90), (3, 120), (1, 110)] {
            p.save_snapshot(&snap(ago, v)).await.unwrap();
        }
    }
    // A deployment with only a state has nothing to clean.
    ts.state()
        .create(&id("c"), obj(json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(tierstate::DEFAULT_SNAPSHOT_RETENTION_DAYS, 7);
    assert_eq!(ts.cleanup_old_snapshots(None).await.unwrap(), 4);
    for d in ["a", "b"] {
        let p = ts.portfolio(&id(d));
        assert_eq!(p.recent(10).await.unwrap().len(), 2);
        // The lifetime fold keeps what was removed: the high-water mark stays 120, the
        // drawdown from 100 to 90 stays counted.
        let fold = p.nav_summary().await.unwrap().fold;
        assert_eq!(fold.high_water_mark, Decimal::from(120));
        assert_eq!(fold.max_drawdown, Decimal::from(10));
    }
    assert_eq!(ts.cleanup_old_snapshots(None).await.unwrap(), 0);
    assert_eq!(ts.cleanup_old_snapshots(2).await.unwrap(), 2);
}

/// `close()` on the front door releases the file: the same file reopens in this process and
/// holds what was written; the closed handle refuses further work with a typed error.
#[tokio::test]
async fn close_releases_the_file_so_it_reopens_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    for scheme in ["sqlite", "redb"] {
        let url = format!(
            "{scheme}:{}",
            dir.path().join(format!("c.{scheme}")).display()
        );
        let ts = Tierstate::open(&url).await.unwrap();
        ts.state()
            .create(&id("a"), obj(json!({"n": 1})))
            .await
            .unwrap();
        // While it is open, a second handle on the same file is refused.
        assert!(
            Tierstate::open(&url).await.is_err(),
            "{scheme}: opened twice"
        );
        let clone = ts.clone();
        ts.close().await;
        let e = clone.state().load(&id("a")).await.unwrap_err();
        assert!(e.to_string().contains("closed"), "{scheme}: {e}");
        assert!(
            clone
                .state()
                .create(&id("b"), obj(json!({})))
                .await
                .is_err()
        );
        let again = Tierstate::open(&url).await.unwrap();
        assert_eq!(
            again.state().load(&id("a")).await.unwrap().unwrap().version,
            1
        );
        // A backup through the handle opens as the original does.
        let copy = dir.path().join(format!("copy.{scheme}"));
        again.warm().backup_to(&copy).await.unwrap();
        again.close().await;
        let copy = Tierstate::open(&format!("{scheme}:{}", copy.display()))
            .await
            .unwrap();
        assert_eq!(
            copy.state().load(&id("a")).await.unwrap().unwrap().version,
            1
        );
        copy.close().await;
    }
}
