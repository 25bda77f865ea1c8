//! Behaviour of the HOT tier.

use std::sync::Arc;
use std::time::Duration;

use tierstate_core::{DeploymentId, InMemoryStore, StateData, StateStore, StateWrite};
use tierstate_hot::{HotCache, HotConfig, InsertOutcome};

fn d() -> DeploymentId {
    DeploymentId::new("d").unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Real records (verified by a store) at versions 1..=n of one deployment.
fn versions(id: &str, n: u64) -> Vec<Arc<StateData>> {
    rt().block_on(async {
        let store = InMemoryStore::new();
        let id = DeploymentId::new(id).unwrap();
        let mut out = Vec::new();
        for v in 1..=n {
            let mut map = serde_json::Map::new();
            map.insert("v".into(), v.into());
            let w = if v == 1 {
                StateWrite::create(id.clone(), map)
            } else {
                StateWrite::update(id.clone(), v - 1, map)
            };
            out.push(Arc::new(store.put(w, Default::default()).await.unwrap()));
        }
        out
    })
}

#[test]
fn never_replaces_newer_with_older() {
    let hot = HotCache::new(HotConfig::default());
    let v = versions("d", 3);
    assert_eq!(
        hot.insert(v[2].clone(), hot.ticket()),
        InsertOutcome::Stored
    );
    assert_eq!(
        hot.insert(v[0].clone(), hot.ticket()),
        InsertOutcome::KeptNewer
    );
    assert_eq!(
        hot.insert(v[2].clone(), hot.ticket()),
        InsertOutcome::KeptNewer
    );
    assert_eq!(hot.get(&d()).unwrap().version, 3);
    // Shared, not copied.
    assert!(Arc::ptr_eq(&hot.get(&d()).unwrap(), &v[2]));
}

#[test]
fn invalidation_after_ticket_wins() {
    let hot = HotCache::new(HotConfig::default());
    let v = versions("d", 2);
    let ticket = hot.ticket();
    hot.invalidate(&d());
    assert_eq!(hot.insert(v[1].clone(), ticket), InsertOutcome::Invalidated);
    assert!(hot.get(&d()).is_none());
    let ticket = hot.ticket();
    assert_eq!(hot.insert(v[0].clone(), ticket), InsertOutcome::Stored);
    hot.invalidate_older_than(&d(), 1);
    assert!(hot.get(&d()).is_some(), "same version is not older");
    hot.invalidate_older_than(&d(), 2);
    assert!(hot.get(&d()).is_none());
    assert_eq!(
        hot.insert(v[1].clone(), ticket),
        InsertOutcome::Invalidated,
        "stale ticket"
    );
}

#[test]
fn ttl_expires_on_monotonic_clock() {
    let hot = HotCache::new(HotConfig {
        capacity: 10,
        ttl: Some(Duration::from_millis(30)),
    });
    let v = versions("d", 2);
    hot.insert(v[0].clone(), hot.ticket());
    assert!(hot.get(&d()).is_some());
    std::thread::sleep(Duration::from_millis(40));
    assert!(hot.get(&d()).is_none(), "expired entry served");
    // An expired entry is replaced even by the same version.
    assert_eq!(
        hot.insert(v[0].clone(), hot.ticket()),
        InsertOutcome::Stored
    );
}

#[test]
fn bounded_and_invalidate_all() {
    let hot = HotCache::new(HotConfig {
        capacity: 100,
        ttl: None,
    });
    for i in 0..1000 {
        let v = versions(&format!("d{i}"), 1);
        hot.insert(v[0].clone(), hot.ticket());
    }
    // Bound: capacity + 1/4 + 32, each shard rounded up (at most 8 shards here).
    assert!(hot.len() <= 165, "cache grew past its bound: {}", hot.len());
    assert!(hot.len() >= 90, "cache kept too little: {}", hot.len());
    hot.invalidate_all();
    assert!(hot.is_empty());
}

#[test]
fn capacity_entries_always_fit() {
    let hot = HotCache::new(HotConfig {
        capacity: 5000,
        ttl: None,
    });
    let store = InMemoryStore::new();
    let recs: Vec<Arc<StateData>> = rt().block_on(async {
        let mut out = Vec::new();
        for i in 0..5000 {
            let w = StateWrite::create(
                DeploymentId::new(format!("k{i}")).unwrap(),
                Default::default(),
            );
            out.push(Arc::new(store.put(w, Default::default()).await.unwrap()));
        }
        out
    });
    for r in &recs {
        assert_eq!(hot.insert(r.clone(), hot.ticket()), InsertOutcome::Stored);
    }
    let present = recs
        .iter()
        .filter(|r| hot.get(&r.deployment_id).is_some())
        .count();
    assert_eq!(present, 5000, "a full-capacity fill lost entries");
}

#[test]
fn concurrent_inserts_keep_the_newest() {
    let hot = Arc::new(HotCache::new(HotConfig::default()));
    let v = versions("d", 50);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let hot = hot.clone();
            let v = v.clone();
            std::thread::spawn(move || {
                // Each thread inserts all versions in a different order.
                let mut order: Vec<usize> = (0..v.len()).collect();
                order.rotate_left(t * 13);
                if t % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    hot.insert(v[i].clone(), hot.ticket());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hot.get(&d()).unwrap().version, 50);
}
