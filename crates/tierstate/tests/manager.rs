//! StateManager behaviour: tiers, write-through, eviction, warm-up, metrics, failure modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tierstate::{
    DeploymentId, Error, HotConfig, InMemoryStore, PutMode, Retention, SqliteConfig, SqliteStore,
    StateManager, StateStore, StateWrite, Tier, WriteBatch,
};

fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn over(store: Arc<dyn StateStore>) -> StateManager {
    StateManager::builder().warm(store).build().await.unwrap()
}

#[tokio::test]
async fn save_writes_through_and_load_hits_hot() {
    let m = over(Arc::new(InMemoryStore::new())).await;
    let saved = m.create(&id("a"), obj(json!({"n": 1}))).await.unwrap();
    assert_eq!(saved.loaded_from, Tier::Warm);
    let loaded = m.load(&id("a")).await.unwrap().unwrap();
    assert_eq!(loaded.loaded_from, Tier::Hot);
    assert_eq!((loaded.version, &loaded.state), (1, &saved.state));
    let hot = m.metrics().tier(Tier::Hot);
    assert_eq!((hot.hits, hot.misses), (1, 0));
    // The WARM copy is really there: a fresh manager over the same store sees it.
    assert!(m.warm().get(&id("a")).await.unwrap().is_some());
}

#[tokio::test]
async fn miss_fills_hot_then_hits() {
    let store = Arc::new(InMemoryStore::new());
    store
        .put(
            StateWrite::create(id("a"), obj(json!({"n": 1}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap();
    let m = StateManager::builder()
        .warm(store)
        .warm_up(false)
        .build()
        .await
        .unwrap();
    assert_eq!(
        m.load(&id("a")).await.unwrap().unwrap().loaded_from,
        Tier::Warm
    );
    assert_eq!(
        m.load(&id("a")).await.unwrap().unwrap().loaded_from,
        Tier::Hot
    );
    assert!(m.load(&id("missing")).await.unwrap().is_none());
    let hot = m.metrics().tier(Tier::Hot);
    assert_eq!((hot.hits, hot.misses), (1, 2));
    assert_eq!(hot.hit_rate, Some(1.0 / 3.0));
    assert_eq!(m.metrics().tier(Tier::Warm).not_found, 1);
}

/// Two managers over one store: a conflict evicts the stale HOT entry, so the next load is fresh.
#[tokio::test]
async fn conflict_evicts_stale_hot_entry() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let a = over(store.clone()).await;
    let b = over(store.clone()).await;
    a.create(&id("x"), obj(json!({"n": 1}))).await.unwrap();
    assert_eq!(b.load(&id("x")).await.unwrap().unwrap().version, 1);
    a.update(&id("x"), 1, obj(json!({"n": 2}))).await.unwrap();
    // b's HOT still holds v1 (no cross-process coherence in this tier); its CAS is refused.
    let stale = b.load(&id("x")).await.unwrap().unwrap();
    assert_eq!(stale.version, 1);
    let err = b
        .update(&id("x"), stale.version, obj(json!({"n": 99})))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Conflict {
            expected: 1,
            actual: Some(2),
            ..
        }
    ));
    let fresh = b.load(&id("x")).await.unwrap().unwrap();
    assert_eq!((fresh.version, fresh.loaded_from), (2, Tier::Warm));
    assert_eq!(b.metrics().tier(Tier::Warm).conflicts, 1);
}

/// Flips a bit of `name`'s newest stored state through the store's fault seam.
async fn damage(store: &InMemoryStore, name: &str) -> bool {
    use tierstate::{Fault, FaultSeam};
    store
        .inject(Fault::StateBytes {
            id: id(name),
            version: None,
            offset: 0,
            mask: 0x20,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn damaged_warm_record_is_never_cached() {
    let store = Arc::new(InMemoryStore::new());
    let m = over(store.clone()).await;
    m.create(&id("a"), obj(json!({"n": 1}))).await.unwrap();
    m.invalidate(&id("a"));
    assert!(damage(&store, "a").await);
    for _ in 0..2 {
        let err = m.load(&id("a")).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Integrity {
                    tier: Tier::Warm,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(m.hot_len(), 0, "a damaged record reached HOT");
    assert_eq!(m.metrics().tier(Tier::Warm).errors, 2);
}

/// Warm-up pages step over damaged records on a page's edge: they are skipped, the pages after
/// them still load, and nothing is cached twice.
async fn warm_up_steps_over_damaged_records_on_page_edges() {
    let store = Arc::new(InMemoryStore::new());
    let mut b = WriteBatch::new();
    for i in 0..2500 {
        b = b.put(StateWrite::create(
            id(&format!("d{i:04}")),
            obj(json!({"i": i})),
        ));
    }
    store.write(b).await.unwrap();
    // The last record of the first page of 1000 and the first of the third.
    for i in [999, 2000] {
        assert!(damage(&store, &format!("d{i:04}")).await);
    }
    let m = StateManager::builder()
        .warm(store.clone())
        .hot(HotConfig {
            capacity: 10_000,
            ttl: None,
        })
        .warm_up(false)
        .build()
        .await
        .unwrap();
    assert_eq!(m.warm_up().await.unwrap(), 2498);
    assert_eq!(m.hot_len(), 2498);
    for i in [0, 998, 1000, 1999, 2001, 2499] {
        let d = m.load(&id(&format!("d{i:04}"))).await.unwrap().unwrap();
        assert_eq!((d.loaded_from, d.state["i"].clone()), (Tier::Hot, json!(i)));
    }
    assert!(m.load(&id("d0999")).await.is_err());
}

#[tokio::test]
async fn warm_up_steps_over_damaged_records_on_a_current_thread_runtime() {
    warm_up_steps_over_damaged_records_on_page_edges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_steps_over_damaged_records_on_a_multi_thread_runtime() {
    warm_up_steps_over_damaged_records_on_page_edges().await;
}

#[tokio::test]
async fn delete_propagates_warm_errors_and_never_deletes_hot_only() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(SqliteConfig::new(dir.path().join("d.db")))
        .await
        .unwrap();
    let m = over(Arc::new(sqlite.clone())).await;
    m.create(&id("a"), obj(json!({"n": 1}))).await.unwrap();
    sqlite.stop_writer().await; // the writer stops; reads still work
    let err = m.delete(&id("a")).await.unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let still = m
        .load(&id("a"))
        .await
        .unwrap()
        .expect("state must still be there");
    assert_eq!(
        still.loaded_from,
        Tier::Warm,
        "HOT must be evicted after an unknown outcome"
    );
    // A save that fails in WARM never reaches HOT.
    assert!(m.update(&id("a"), 1, obj(json!({"n": 2}))).await.is_err());
    assert_eq!(m.load(&id("a")).await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn delete_removes_from_both_tiers() {
    let m = over(Arc::new(InMemoryStore::new())).await;
    m.create(&id("a"), obj(json!({}))).await.unwrap();
    assert!(m.delete(&id("a")).await.unwrap());
    assert!(m.load(&id("a")).await.unwrap().is_none());
    assert!(!m.delete(&id("a")).await.unwrap());
}

#[tokio::test]
async fn initialize_fails_loudly() {
    let err = StateManager::builder().build().await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let err = StateManager::builder()
        .sqlite("/nonexistent-dir/x/state.db")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_loads_everything_in_bulk_bounded_by_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    {
        let s = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
        for chunk in 0..10 {
            let mut b = WriteBatch::new();
            for i in 0..1000 {
                b = b.put(StateWrite::create(
                    id(&format!("d{chunk}-{i:04}")),
                    obj(json!({"i": i})),
                ));
            }
            s.commit(b).await.unwrap();
        }
        s.close().await;
    }
    let m = StateManager::builder()
        .sqlite(&path)
        .hot(HotConfig {
            capacity: 20_000,
            ttl: None,
        })
        .build()
        .await
        .unwrap();
    assert_eq!(m.hot_len(), 10_000);
    for i in [0, 500, 999] {
        let d = m.load(&id(&format!("d7-{i:04}"))).await.unwrap().unwrap();
        assert_eq!(d.loaded_from, Tier::Hot);
    }
    // A file belongs to one store at a time (Sharing::Exclusive): close the first one.
    drop(m);
    let small = StateManager::builder()
        .sqlite(&path)
        .hot(HotConfig {
            capacity: 2500,
            ttl: None,
        })
        .build()
        .await
        .unwrap();
    assert!(
        small.hot_len() <= 2500 && small.hot_len() >= 2000,
        "{}",
        small.hot_len()
    );
    assert_eq!(small.warm_up().await.unwrap(), 2500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn update_with_is_exact_under_contention() {
    let dir = tempfile::tempdir().unwrap();
    let m = StateManager::builder()
        .sqlite(dir.path().join("u.db"))
        .retention(Retention::KeepAll)
        .build()
        .await
        .unwrap();
    m.create(&id("c"), obj(json!({"count": 0}))).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let m = m.clone();
        tasks.spawn(async move {
            for _ in 0..200 {
                m.update_with(&id("c"), 1000, |s| {
                    let n = s["count"].as_u64().unwrap();
                    Ok(obj(json!({"count": n + 1})))
                })
                .await
                .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let fin = m.load_warm(&id("c")).await.unwrap().unwrap();
    assert_eq!(
        (fin.state["count"].as_u64(), fin.version),
        (Some(1600), 1601)
    );
    let hist = m.history(&id("c"), 2000).await.unwrap();
    assert!(
        hist.windows(2).all(|w| w[0].version == w[1].version + 1),
        "history has gaps"
    );
    assert_eq!(hist.len(), 1601);
    assert_eq!(
        m.load(&id("c")).await.unwrap().unwrap().version,
        1601,
        "HOT ends at the newest"
    );
}

#[tokio::test]
async fn update_with_missing_is_not_found() {
    let m = over(Arc::new(InMemoryStore::new())).await;
    let err = m
        .update_with(&id("nope"), 3, |s| Ok(s.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
}

#[tokio::test]
async fn typed_state_and_version_history() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Book {
        symbol: String,
        qty: String,
    }
    let m = over(Arc::new(InMemoryStore::new())).await;
    let b1 = Book {
        symbol: "ETH".into(),
        qty: "1.5".into(),
    };
    m.save_as(&id("t"), PutMode::Create, &b1).await.unwrap();
    let got = m.load_as::<Book>(&id("t")).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (b1, 1));
    let b2 = Book {
        symbol: "ETH".into(),
        qty: "2".into(),
    };
    m.save_as(&id("t"), PutMode::Update { expected: 1 }, &b2)
        .await
        .unwrap();
    assert_eq!(
        m.load_version(&id("t"), 1)
            .await
            .unwrap()
            .unwrap()
            .to_typed::<Book>()
            .unwrap()
            .qty,
        "1.5"
    );
    assert_eq!(m.history(&id("t"), 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn ttl_expiry_falls_back_to_warm() {
    let ttl = Duration::from_millis(100);
    let m = StateManager::builder()
        .warm(Arc::new(InMemoryStore::new()))
        .hot(HotConfig {
            capacity: 10,
            ttl: Some(ttl),
        })
        .build()
        .await
        .unwrap();
    // Served from HOT while fresh. A loaded machine can stall this task past the TTL between
    // the save and the load; such a try proves nothing and is repeated (five stalls fail it).
    let mut fresh = false;
    for n in 0..5 {
        let saved = std::time::Instant::now();
        if n == 0 {
            m.create(&id("a"), obj(json!({}))).await.unwrap();
        } else {
            m.update(&id("a"), n, obj(json!({"try": n}))).await.unwrap();
        }
        let from = m.load(&id("a")).await.unwrap().unwrap().loaded_from;
        if saved.elapsed() < ttl {
            assert_eq!(
                from,
                Tier::Hot,
                "a state younger than its TTL not served from HOT"
            );
            fresh = true;
            break;
        }
    }
    assert!(fresh, "never loaded within the TTL");
    tokio::time::sleep(ttl + Duration::from_millis(10)).await;
    assert_eq!(
        m.load(&id("a")).await.unwrap().unwrap().loaded_from,
        Tier::Warm
    );
}

#[tokio::test]
async fn without_hot_every_load_reads_warm_and_callback_sees_ops() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let m = StateManager::builder()
        .warm(Arc::new(InMemoryStore::new()))
        .without_hot()
        .on_metric(move |_| {
            s.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .await
        .unwrap();
    m.create(&id("a"), obj(json!({}))).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            m.load(&id("a")).await.unwrap().unwrap().loaded_from,
            Tier::Warm
        );
    }
    assert_eq!(m.metrics().tier(Tier::Hot).total, 0);
    assert_eq!(m.metrics().tier(Tier::Warm).total, 4);
    assert_eq!(seen.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn failed_batch_leaves_hot_consistent() {
    let m = over(Arc::new(InMemoryStore::new())).await;
    m.create(&id("a"), obj(json!({"n": 1}))).await.unwrap();
    let batch = WriteBatch::new()
        .put(StateWrite::update(id("a"), 1, obj(json!({"n": 2}))))
        .put(StateWrite::update(id("b"), 1, obj(json!({}))));
    assert!(m.commit(batch).await.is_err());
    let a = m.load(&id("a")).await.unwrap().unwrap();
    assert_eq!((a.version, a.state["n"].as_u64()), (1, Some(1)));
    let ok = WriteBatch::new()
        .put(StateWrite::update(id("a"), 1, obj(json!({"n": 2}))))
        .put(StateWrite::create(id("b"), obj(json!({}))));
    let done = m.commit(ok).await.unwrap();
    assert_eq!(
        done.iter().map(|d| d.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(
        m.load(&id("a")).await.unwrap().unwrap().loaded_from,
        Tier::Hot
    );
}

/// Every public future is `Send`, so the manager works from `tokio::spawn` (compile-time check).
#[allow(dead_code)]
fn futures_are_send(m: StateManager, d: DeploymentId, batch: WriteBatch) {
    fn send<T: Send>(_: T) {}
    send(m.load(&d));
    send(m.load_warm(&d));
    send(m.save(StateWrite::create(d.clone(), Map::new())));
    send(m.update_with(&d, 3, |s| Ok(s.clone())));
    send(m.commit(batch));
    send(m.delete(&d));
    send(m.history(&d, 1));
    send(m.load_version(&d, 1));
    send(m.warm_up());
}

/// Every HOT hit is counted, but only the timed sample (one in `HIT_SAMPLE` per thread) goes
/// to the ring buffer and the callback: the hit path takes no lock and reads no clock.
#[tokio::test]
async fn hot_hits_are_all_counted_and_sampled_into_the_ring() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let m = StateManager::builder()
        .warm(Arc::new(InMemoryStore::new()))
        .on_metric(move |r| {
            if r.outcome == tierstate::Outcome::Hit {
                s.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .await
        .unwrap();
    m.create(&id("a"), obj(json!({"n": 1}))).await.unwrap();
    let n = 10 * tierstate::metrics::HIT_SAMPLE as usize;
    for _ in 0..n {
        assert_eq!(
            m.load(&id("a")).await.unwrap().unwrap().loaded_from,
            Tier::Hot
        );
    }
    assert_eq!(m.metrics().tier(Tier::Hot).hits, n as u64);
    let sampled = m
        .metrics()
        .recent()
        .iter()
        .filter(|r| r.tier == Tier::Hot && r.outcome == tierstate::Outcome::Hit)
        .count();
    assert_eq!(sampled, 10);
    assert_eq!(seen.load(Ordering::Relaxed), 10);
    assert!(m.metrics().tier(Tier::Hot).p50.is_some());
}

/// A tier's summary gives mean, p50 and p99 over the buffered records (seed 000's summary),
/// and `latest(n)` lists the newest first.
#[test]
fn tier_summaries_give_mean_and_percentiles_and_latest_is_newest_first() {
    use std::time::Duration;
    use tierstate::{Metrics, Op, Outcome};
    let m = Metrics::new(100, None);
    assert_eq!(m.tier(Tier::Warm).mean, None);
    for ms in [1, 2, 6] {
        m.record(Tier::Warm, Op::Load, Duration::from_millis(ms), Outcome::Ok);
    }
    m.record(
        Tier::Warm,
        Op::Save,
        Duration::from_millis(3),
        Outcome::Error,
    );
    let w = m.tier(Tier::Warm);
    assert_eq!(w.mean, Some(Duration::from_millis(3)));
    assert_eq!(w.p50, Some(Duration::from_millis(3)));
    assert_eq!(w.p99, Some(Duration::from_millis(6)));
    assert_eq!((w.total, w.errors), (4, 1));
    assert!(w.to_string().contains("mean"), "{w}");
    let latest = m.latest(2);
    assert_eq!(latest.len(), 2);
    assert_eq!(
        (latest[0].op, latest[0].latency),
        (Op::Save, Duration::from_millis(3))
    );
    assert_eq!(latest[1].latency, Duration::from_millis(6));
}
