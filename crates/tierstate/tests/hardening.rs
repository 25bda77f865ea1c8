//! Regression tests for what an outside probe of the manager broke: abandoned saves leaving HOT
//! stale, reads going backwards under concurrency, HOT above its capacity, reserved ids reachable
//! by callers, and states too deep to read back. Each runs on every embedded backend.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tierstate::{
    DeploymentId, Error, HotConfig, InMemoryStore, MAX_STATE_DEPTH, SqliteConfig, SqliteStore,
    StateManager, StateStore, StateWrite,
};
use tierstate_redb::{RedbConfig, RedbStore};

fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The stores under test; the guard keeps a temporary directory alive.
async fn stores() -> Vec<(&'static str, Arc<dyn StateStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(SqliteConfig::new(dir.path().join("s.db")))
        .await
        .unwrap();
    let redb = RedbStore::open(RedbConfig::new(dir.path().join("r.redb")))
        .await
        .unwrap();
    vec![
        (
            "memory",
            Arc::new(InMemoryStore::new()),
            tempfile::tempdir().unwrap(),
        ),
        ("sqlite", Arc::new(sqlite), tempfile::tempdir().unwrap()),
        ("redb", Arc::new(redb), dir),
    ]
}

async fn manager(store: Arc<dyn StateStore>) -> StateManager {
    StateManager::builder().warm(store).build().await.unwrap()
}

/// Polls `fut` once, then drops it: a caller that gave up (a timeout, a cancelled task).
async fn poll_once_then_drop<F: Future>(fut: F) {
    let mut fut = Box::pin(fut);
    std::future::poll_fn(|cx| {
        let _ = fut.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

/// Waits until WARM holds at least `version` (bounded).
async fn warm_reaches(store: &Arc<dyn StateStore>, d: &DeploymentId, version: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = store.get(d).await.unwrap().map_or(0, |s| s.version);
        if v >= version || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Item 6: a save whose future is dropped after its first poll still commits; the next load
/// must not return a version older than WARM's (it used to, in 86 of 200 trials on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_save_never_leaves_hot_stale() {
    for (name, store, _guard) in stores().await {
        let m = manager(store.clone()).await;
        let d = id("cancelled");
        m.create(&d, obj(json!({"n": 0}))).await.unwrap();
        for n in 1..=200u64 {
            let cur = m.load(&d).await.unwrap().unwrap();
            assert_eq!(
                cur.version, n,
                "{name}: trial {n} starts from the wrong version"
            );
            let w = StateWrite::update(d.clone(), cur.version, obj(json!({"n": n})));
            poll_once_then_drop(m.save(w)).await;
            let warm = warm_reaches(&store, &d, n + 1).await;
            assert_eq!(warm, n + 1, "{name}: the abandoned write did not commit");
            let loaded = m.load(&d).await.unwrap().unwrap();
            assert!(
                loaded.version >= warm,
                "{name}: trial {n}: load returned v{} from {:?} while WARM holds v{warm}",
                loaded.version,
                loaded.loaded_from
            );
        }
    }
}

/// Item 11: with 3 tasks updating one deployment and 6 loading it (half of them mixing `load`
/// and `load_warm`), no task ever sees a version below one it saw before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_never_go_backwards_in_one_process() {
    for (name, store, _guard) in stores().await {
        let m = manager(store).await;
        let d = id("mono");
        m.create(&d, obj(json!({"n": 0}))).await.unwrap();
        let stop = Instant::now() + Duration::from_millis(1500);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let (m, d) = (m.clone(), d.clone());
            tasks.spawn(async move {
                let mut last = 0;
                while Instant::now() < stop {
                    let done = m
                        .update_with(&d, 1000, |s| {
                            let n = s["n"].as_u64().unwrap();
                            Ok(obj(json!({"n": n + 1})))
                        })
                        .await
                        .unwrap();
                    assert!(done.version > last, "a writer's own save went backwards");
                    last = done.version;
                    let seen = m.load(&d).await.unwrap().unwrap().version;
                    assert!(
                        seen >= last,
                        "load after own save returned v{seen} < v{last}"
                    );
                    last = seen;
                }
                0u64
            });
        }
        for r in 0..6 {
            let (m, d) = (m.clone(), d.clone());
            tasks.spawn(async move {
                let (mut last, mut reads) = (0u64, 0u64);
                while Instant::now() < stop {
                    let got = if r % 2 == 1 && reads % 2 == 1 {
                        m.load_warm(&d).await
                    } else {
                        m.load(&d).await
                    };
                    let got = got.unwrap().unwrap();
                    assert!(
                        got.version >= last,
                        "read went backwards: v{last} then v{} from {:?}",
                        got.version,
                        got.loaded_from
                    );
                    last = got.version;
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            });
        }
        let mut reads = 0;
        while let Some(r) = tasks.join_next().await {
            reads += r.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(
            reads > 100,
            "{name}: the readers barely ran ({reads} reads)"
        );
    }
}

/// Item 12: HOT never holds more than its capacity, through saves, loads and warm-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_never_exceeds_its_capacity() {
    let ten = |store: Arc<dyn StateStore>| {
        StateManager::builder().warm(store).hot(HotConfig {
            capacity: 10,
            ttl: None,
        })
    };
    for (name, store, _guard) in stores().await {
        let m = ten(store.clone()).build().await.unwrap();
        for i in 0..30 {
            let d = id(&format!("d{i}"));
            m.create(&d, obj(json!({"i": i}))).await.unwrap();
            m.load(&d).await.unwrap();
            assert!(m.hot_len() <= 10, "{name}: HOT holds {}", m.hot_len());
        }
        let again = ten(store).build().await.unwrap();
        assert_eq!(
            again.hot_len(),
            10,
            "{name}: warm-up fills exactly the capacity"
        );
    }
}

/// Item 5: the payload marker is tierstate's: callers cannot name it, listing hides it, and the
/// bulk migration tool never sees it.
#[tokio::test]
async fn reserved_records_are_out_of_callers_reach() {
    for (name, store, _guard) in stores().await {
        let registry = tierstate::MigrationRegistry::new();
        let m = StateManager::builder()
            .warm(store.clone())
            .migrations(registry)
            .build()
            .await
            .unwrap();
        m.create(&id("a"), obj(json!({}))).await.unwrap();
        let marker = DeploymentId::from_stored(tierstate::PAYLOAD_MARKER).unwrap();
        assert!(
            store.get(&marker).await.unwrap().is_some(),
            "{name}: the marker exists"
        );
        let err = DeploymentId::new(tierstate::PAYLOAD_MARKER).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidInput {
                field: "deployment_id",
                ..
            }
        ));
        assert_eq!(store.list(None, 10).await.unwrap(), vec![id("a")], "{name}");
        assert_eq!(store.scan(None, 10).await.unwrap().len(), 1, "{name}");
        let report = tierstate::migrate_states(
            &store,
            &tierstate::MigrationRegistry::new(),
            10,
            Default::default(),
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(
            report.already_current, 1,
            "{name}: only the caller's state is seen"
        );
    }
}

/// Item 2: a state deeper than the limit is refused before it reaches WARM or HOT.
#[tokio::test]
async fn deep_states_are_refused_before_anything_is_cached() {
    for (name, store, _guard) in stores().await {
        let m = manager(store).await;
        let mut v = json!(1);
        for _ in 0..MAX_STATE_DEPTH {
            v = Value::Array(vec![v]);
        }
        let err = m
            .create(&id("deep"), obj(json!({ "v": v })))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field: "state", .. }),
            "{name}: {err}"
        );
        assert_eq!(m.hot_len(), 0, "{name}");
        assert!(m.load(&id("deep")).await.unwrap().is_none(), "{name}");
    }
}

/// Decimal text that does not fit a `Decimal` exactly (a token amount with 18 decimals and a
/// large integer part) is refused by `load_as`, naming the field, on every backend; it was
/// rounded to 28 digits before. The same text in a `String` field loads unchanged.
#[tokio::test]
async fn decimal_text_is_never_rounded_on_the_way_in() {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Holding {
        amount: rust_decimal::Decimal,
        memo: String,
    }
    let long = "123456789012.123456789012345678"; // 30 significant digits
    for (name, store, _guard) in stores().await {
        let m = manager(store).await;
        let d = id("token-amounts");
        m.create(&d, obj(json!({"amount": long, "memo": "x"})))
            .await
            .unwrap();
        match m.load_as::<Holding>(&d).await {
            Err(Error::Serialization { source, .. }) => {
                let e = source.to_string();
                assert!(e.contains("$.amount") && e.contains(long), "{name}: {e}");
            }
            other => panic!("{name}: read as {other:?}"),
        }
        let fits = "1234567890.123456789012345678"; // 28 digits: exact
        let d2 = id("fits");
        m.create(&d2, obj(json!({"amount": fits, "memo": long})))
            .await
            .unwrap();
        let h = m.load_as::<Holding>(&d2).await.unwrap().unwrap().value;
        assert_eq!(h.amount.to_string(), fits, "{name}");
        assert_eq!(h.memo, long, "{name}");
    }
}
