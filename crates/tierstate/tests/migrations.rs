//! Payload migrations through the StateManager: applied on load, written back by CAS (or not),
//! newer data refused, failures leave storage untouched, rollback safety enforced at open.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tierstate::{
    DeploymentId, Error, InMemoryStore, MigrationRegistry, Retention, StateManager, StateMigration,
    StateStore, StateWrite, Tier,
};

fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// v2 renames `qty` to `size` (breaking: only v2 binaries read v2 data).
fn rename_qty() -> StateMigration {
    StateMigration::new(2, "rename qty to size", 2, |mut s| {
        let q = s.remove("qty").ok_or("qty is missing")?;
        s.insert("size".into(), q);
        Ok(s)
    })
}

/// v3 adds an optional `venue` (additive: v2 binaries can still read v3 data).
fn add_venue() -> StateMigration {
    StateMigration::new(3, "add venue", 2, |mut s| {
        s.entry("venue").or_insert(json!("default"));
        Ok(s)
    })
}

fn registry(steps: Vec<StateMigration>) -> MigrationRegistry {
    let mut r = MigrationRegistry::new();
    for s in steps {
        r.register(s).unwrap();
    }
    r
}

async fn seed(store: &Arc<InMemoryStore>, name: &str, state: Value, schema: u32) {
    let w = StateWrite::create(id(name), obj(state)).with_schema_version(schema);
    store.put(w, Retention::KeepAll).await.unwrap();
}

#[tokio::test]
async fn old_state_is_migrated_on_load_and_written_back() {
    let store = Arc::new(InMemoryStore::new());
    seed(&store, "a", json!({"qty": "1.5"}), 1).await;
    let m = StateManager::builder()
        .warm(store.clone())
        .migrations(registry(vec![rename_qty()]))
        .build()
        .await
        .unwrap();
    let d = m.load(&id("a")).await.unwrap().unwrap();
    assert_eq!(
        (d.schema_version, d.version, &d.state),
        (2, 2, &obj(json!({"size": "1.5"})))
    );
    // Written back as a new version; the original stays in history.
    let stored = store.get(&id("a")).await.unwrap().unwrap();
    assert_eq!((stored.schema_version, stored.version), (2, 2));
    assert_eq!(
        store.get_version(&id("a"), 1).await.unwrap().unwrap().state,
        obj(json!({"qty": "1.5"}))
    );
    // Next load is a HOT hit of the migrated record; new writes are stamped with v2.
    assert_eq!(
        m.load(&id("a")).await.unwrap().unwrap().loaded_from,
        Tier::Hot
    );
    let w = m
        .update(&id("a"), 2, obj(json!({"size": "2"})))
        .await
        .unwrap();
    assert_eq!(w.schema_version, 2);
}

#[tokio::test]
async fn without_write_back_storage_is_untouched() {
    let store = Arc::new(InMemoryStore::new());
    seed(&store, "a", json!({"qty": "3"}), 1).await;
    let m = StateManager::builder()
        .warm(store.clone())
        .migrations(registry(vec![rename_qty(), add_venue()]))
        .migration_write_back(false)
        .build()
        .await
        .unwrap();
    let d = m.load(&id("a")).await.unwrap().unwrap();
    assert_eq!((d.schema_version, d.version), (3, 1));
    assert_eq!(d.state, obj(json!({"size": "3", "venue": "default"})));
    assert_eq!(
        d.checksum,
        tierstate::Checksum::of(&tierstate_core::canonical_json(&d.state).unwrap())
    );
    let stored = store.get(&id("a")).await.unwrap().unwrap();
    assert_eq!((stored.schema_version, stored.version), (1, 1));
}

#[tokio::test]
async fn failing_step_reports_and_leaves_the_state_untouched() {
    let store = Arc::new(InMemoryStore::new());
    seed(&store, "broken", json!({"no_qty": true}), 1).await;
    let m = StateManager::builder()
        .warm(store.clone())
        .migrations(registry(vec![rename_qty()]))
        .build()
        .await
        .unwrap();
    let err = m.load(&id("broken")).await.unwrap_err();
    match &err {
        Error::MigrationFailed {
            deployment_id,
            from: 1,
            reason,
        } => {
            assert_eq!(deployment_id.as_str(), "broken");
            assert!(
                reason.contains("version 2") && reason.contains("qty is missing"),
                "{reason}"
            );
        }
        other => panic!("expected MigrationFailed, got {other:?}"),
    }
    let stored = store.get(&id("broken")).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.schema_version), (1, 1));
    assert_eq!(
        m.hot_len(),
        0,
        "a state that failed to migrate must not be cached"
    );
}

#[tokio::test]
async fn newer_state_is_refused() {
    let store = Arc::new(InMemoryStore::new());
    seed(&store, "future", json!({"x": 1}), 7).await;
    let m = StateManager::builder()
        .warm(store.clone())
        .migrations(registry(vec![rename_qty()]))
        .build()
        .await
        .unwrap();
    let err = m.load(&id("future")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PayloadTooNew {
                found: 7,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get(&id("future")).await.unwrap().unwrap().version,
        1,
        "never rewritten"
    );
}

#[tokio::test]
async fn rollback_below_rollback_safe_until_fails_to_open() {
    let store = Arc::new(InMemoryStore::new());
    let warm: Arc<dyn StateStore> = store.clone();
    // A v3 binary (oldest reader: v2) opens the store and writes.
    let v3 = StateManager::builder()
        .warm(warm.clone())
        .migrations(registry(vec![rename_qty(), add_venue()]))
        .build()
        .await
        .unwrap();
    v3.create(&id("a"), obj(json!({"size": "1", "venue": "x"})))
        .await
        .unwrap();
    drop(v3);
    // Rolling back to v1 (below rollback_safe_until 2) is refused at open.
    let err = StateManager::builder()
        .warm(warm.clone())
        .migrations(MigrationRegistry::new())
        .build()
        .await
        .unwrap_err();
    match &err {
        Error::RollbackUnsafe {
            data_version: 3,
            oldest_reader: 2,
            binary_version: 1,
        } => {
            assert!(err.to_string().contains("rollback_safe_until"), "{err}")
        }
        other => panic!("expected RollbackUnsafe, got {other:?}"),
    }
    // Rolling back to v2 is allowed (v3 was additive), but v2 never rewrites v3 data.
    let v2 = StateManager::builder()
        .warm(warm.clone())
        .migrations(registry(vec![rename_qty()]))
        .build()
        .await
        .unwrap();
    assert!(matches!(
        v2.load(&id("a")).await.unwrap_err(),
        Error::PayloadTooNew { found: 3, .. }
    ));
    let err = v2
        .update(&id("a"), 1, obj(json!({"size": "9"})))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PayloadTooNew {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.get(&id("a")).await.unwrap().unwrap().state["venue"],
        json!("x")
    );
    // v2 still works on its own data.
    v2.create(&id("b"), obj(json!({"size": "2"})))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_migration_is_idempotent_resumable_and_counts() {
    let store = Arc::new(InMemoryStore::new());
    let warm: Arc<dyn StateStore> = store.clone();
    for i in 0..1000 {
        seed(
            &store,
            &format!("d{i:04}"),
            json!({"qty": i.to_string()}),
            1,
        )
        .await;
    }
    seed(&store, "already", json!({"size": "1", "venue": "v"}), 3).await;
    seed(&store, "broken", json!({"nothing": 0}), 1).await;
    let reg = registry(vec![rename_qty(), add_venue()]);
    let mut pages = 0;
    let report = tierstate::migrate_states(&warm, &reg, 128, Retention::DEFAULT, |_, _| pages += 1)
        .await
        .unwrap();
    assert_eq!(
        (report.migrated, report.already_current, report.failed),
        (1000, 1, 1)
    );
    assert_eq!(
        report.failures[0].0.as_ref().map(|d| d.as_str()),
        Some("broken")
    );
    assert!(pages >= 8);
    let d = store.get(&id("d0042")).await.unwrap().unwrap();
    assert_eq!((d.schema_version, d.version), (3, 2));
    assert_eq!(d.state, obj(json!({"size": "42", "venue": "default"})));
    // Running again (as after a crash) changes nothing and counts everything as current.
    let again = tierstate::migrate_states(&warm, &reg, 128, Retention::DEFAULT, |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (again.migrated, again.already_current, again.failed),
        (0, 1001, 1)
    );
    assert_eq!(store.get(&id("d0042")).await.unwrap().unwrap().version, 2);
}
