//! HOT coherence across StateManagers sharing one PostgreSQL: commits made elsewhere evict stale
//! HOT entries through NOTIFY, and a dropped listener never leaves stale data in HOT.
//!
//! The second writer is a separate store with its own pool and connections, exactly as another
//! process would be; the notification path (server → LISTEN connection) is the same.

use std::time::{Duration, Instant};

use serde_json::json;
use tierstate::{
    PostgresConfig, PostgresStore, Retention, StateManager, StateStore, StateWrite, Tier,
};
use tierstate_tests::{dep, fresh_schema, pg_url};

fn n(v: u64) -> serde_json::Map<String, serde_json::Value> {
    json!({"n": v}).as_object().unwrap().clone()
}

async fn setup(url: &str) -> (StateManager, PostgresStore, String) {
    let schema = fresh_schema("coh");
    // Our own application_name, so a test can find this manager's connections and no others.
    let cfg = PostgresConfig::new(url)
        .schema(&schema)
        .unwrap()
        .application_name(&schema);
    let manager = StateManager::builder()
        .postgres(cfg.clone())
        .build()
        .await
        .unwrap();
    let other = PostgresStore::connect(cfg.listen(false)).await.unwrap();
    // Wait until the manager's listener is live (it starts untrusted).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.hot_is_coherent() {
        assert!(Instant::now() < deadline, "the listener never came up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (manager, other, schema)
}

/// Polls `manager` until it serves `version`; returns how long that took.
async fn until_fresh(manager: &StateManager, version: u64) -> Duration {
    let start = Instant::now();
    loop {
        let d = manager.load(&dep("x")).await.unwrap().unwrap();
        if d.version >= version {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "HOT stayed stale at v{}",
            d.version
        );
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_commits_evict_stale_hot_entries() {
    let Some(url) = pg_url() else { return };
    let (manager, other, _) = setup(&url).await;
    manager.create(&dep("x"), n(0)).await.unwrap();
    let mut windows = Vec::new();
    for v in 1..=200u64 {
        // HOT holds version v; another writer commits v + 1.
        assert_eq!(
            manager.load(&dep("x")).await.unwrap().unwrap().loaded_from,
            Tier::Hot
        );
        other
            .put(StateWrite::update(dep("x"), v, n(v)), Retention::DEFAULT)
            .await
            .unwrap();
        windows.push(until_fresh(&manager, v + 1).await);
    }
    windows.sort();
    let p50 = windows[windows.len() / 2];
    let p99 = windows[windows.len() * 99 / 100];
    eprintln!(
        "HOT staleness window (commit Ok -> manager serves the new version), 200 trials: p50 {p50:?}, p99 {p99:?}, max {:?}",
        windows.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_listener_never_leaves_stale_hot() {
    let Some(url) = pg_url() else { return };
    let (manager, other, app) = setup(&url).await;
    manager.create(&dep("x"), n(0)).await.unwrap();
    assert_eq!(
        manager.load(&dep("x")).await.unwrap().unwrap().loaded_from,
        Tier::Hot
    );
    // Kill the manager's LISTEN connection, then commit while it is down: that NOTIFY is lost.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query ILIKE 'LISTEN%' AND application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&app)
    .fetch_all(other.pool())
    .await
    .unwrap();
    assert!(!killed.is_empty(), "found no listener connection to kill");
    other
        .put(StateWrite::update(dep("x"), 1, n(1)), Retention::DEFAULT)
        .await
        .unwrap();
    // The manager must serve v2 soon: via WARM while the feed is down, and after it resumes.
    let took = until_fresh(&manager, 2).await;
    eprintln!("after a killed listener, fresh data served within {took:?}");
    // And it recovers: coherent again, HOT serving again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.hot_is_coherent() {
        assert!(Instant::now() < deadline, "the listener never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    manager.load(&dep("x")).await.unwrap();
    let d = manager.load(&dep("x")).await.unwrap().unwrap();
    assert_eq!((d.version, d.loaded_from), (2, Tier::Hot));
}

/// Warm-up over a shared store waits for the change feed, so what it caches survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_survives_the_feed_going_live() {
    let Some(url) = pg_url() else { return };
    let cfg = PostgresConfig::new(&url)
        .schema(&fresh_schema("warm"))
        .unwrap();
    let writer = PostgresStore::connect(cfg.clone().listen(false))
        .await
        .unwrap();
    for i in 0..50 {
        writer
            .put(
                StateWrite::create(dep(&format!("d{i}")), n(0)),
                Retention::DEFAULT,
            )
            .await
            .unwrap();
    }
    let manager = StateManager::builder().postgres(cfg).build().await.unwrap();
    assert!(manager.hot_is_coherent());
    assert_eq!(
        manager.hot_len(),
        50,
        "warm-up was wiped by the feed going live"
    );
    assert_eq!(
        manager.load(&dep("d7")).await.unwrap().unwrap().loaded_from,
        Tier::Hot
    );
}

/// Warm-up while the fleet keeps committing: other deployments' commits (heard on the change
/// feed during the scan) do not spoil a page, so every state that nobody touched is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_during_a_busy_fleet_caches_what_nobody_touched() {
    let Some(url) = pg_url() else { return };
    let cfg = PostgresConfig::new(&url)
        .schema(&fresh_schema("busy"))
        .unwrap();
    let writer = PostgresStore::connect(cfg.clone().listen(false))
        .await
        .unwrap();
    for chunk in 0..3 {
        let mut b = tierstate::WriteBatch::new();
        for i in 0..1000 {
            b = b.put(StateWrite::create(dep(&format!("d{chunk}-{i:04}")), n(0)));
        }
        writer.commit(b).await.unwrap();
    }
    // Another process commits to its own deployments for the whole warm-up.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (writer, stop) = (writer.clone(), stop.clone());
        tokio::spawn(async move {
            let mut commits = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let d = dep(&format!("zz-busy-{}", commits % 20));
                writer
                    .put(StateWrite::overwrite(d, n(commits)), Retention::DEFAULT)
                    .await
                    .unwrap();
                commits += 1;
            }
            commits
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let manager = StateManager::builder().postgres(cfg).build().await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = busy.await.unwrap();
    assert!(
        commits > 10,
        "the other process barely committed ({commits})"
    );
    let mut from_hot = 0;
    for chunk in 0..3 {
        for i in (0..1000).step_by(50) {
            let d = manager
                .load(&dep(&format!("d{chunk}-{i:04}")))
                .await
                .unwrap()
                .unwrap();
            from_hot += usize::from(d.loaded_from == Tier::Hot);
        }
    }
    assert_eq!(
        from_hot, 60,
        "untouched states were left out of the warm-up"
    );
}
