//! Behaviour of the HOT tier.

use std::sync::Arc;
use std::time::Duration;

use tierstate_core::{DeploymentId, InMemoryStore, StateData, StateStore, StateWrite};
use tierstate_hot::{HotCache, HotConfig, InsertOutcome, WriteOutcome};

fn d() -> DeploymentId {
    DeploymentId::new("d").unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Real records (verified by a store) at versions 1..=n of one deployment.
fn versions(id: &str, n: u64) -> Vec<StateData> {
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
            out.push(store.put(w, Default::default()).await.unwrap());
        }
        out
    })
}

fn fill(hot: &HotCache, data: &StateData) -> InsertOutcome {
    hot.fill(hot.begin_read(&data.deployment_id), data)
}

fn hot(capacity: usize) -> HotCache {
    HotCache::new(HotConfig {
        capacity,
        ttl: None,
    })
}

#[test]
fn never_replaces_newer_with_older() {
    let hot = hot(10);
    let v = versions("d", 3);
    assert_eq!(fill(&hot, &v[2]), InsertOutcome::Stored);
    assert_eq!(fill(&hot, &v[0]), InsertOutcome::KeptNewer);
    assert_eq!(fill(&hot, &v[2]), InsertOutcome::KeptNewer);
    let got = hot.get(&d()).unwrap();
    assert_eq!(got.version, 3);
    assert_eq!(got.loaded_from, tierstate_core::Tier::Hot);
    // Shared, not copied, on every get.
    assert!(Arc::ptr_eq(&got, &hot.get(&d()).unwrap()));
    assert_eq!(
        hot.in_flight(),
        0,
        "finished operations leave no bookkeeping"
    );
}

#[test]
fn invalidation_and_delete_refuse_fills_read_before_them() {
    let hot = hot(10);
    let v = versions("d", 2);
    let t = hot.begin_read(&d());
    hot.invalidate(&d());
    assert_eq!(hot.fill(t, &v[1]), InsertOutcome::Invalidated);
    assert!(hot.get(&d()).is_none());
    let t = hot.begin_read(&d());
    hot.forget(&d());
    assert_eq!(hot.fill(t, &v[1]), InsertOutcome::Invalidated);
    let t = hot.begin_read(&d());
    hot.invalidate_all();
    assert_eq!(hot.fill(t, &v[1]), InsertOutcome::Invalidated);
    assert_eq!(fill(&hot, &v[0]), InsertOutcome::Stored);
    hot.observe(&d(), 1);
    assert!(hot.get(&d()).is_some(), "the same version is not older");
    hot.observe(&d(), 2);
    assert!(hot.get(&d()).is_none(), "an older copy is dropped");
    assert_eq!(hot.in_flight(), 0);
}

#[test]
fn a_write_in_flight_hides_the_old_copy_and_refuses_fills() {
    let hot = hot(10);
    let v = versions("d", 3);
    fill(&hot, &v[0]);
    let w = hot.begin_write(&d());
    assert!(hot.get(&d()).is_none(), "old copy served during a write");
    // A reader that saw WARM before or after the commit must not cache either version.
    assert_eq!(fill(&hot, &v[0]), InsertOutcome::Invalidated);
    assert_eq!(fill(&hot, &v[1]), InsertOutcome::Invalidated);
    assert_eq!(
        hot.finish_write(w, WriteOutcome::Written(&v[1])),
        InsertOutcome::Stored
    );
    assert_eq!(hot.get(&d()).unwrap().version, 2);
    // Two writes in flight: only the last one to finish may cache, and never below the floor.
    let a = hot.begin_write(&d());
    let b = hot.begin_write(&d());
    assert_eq!(
        hot.finish_write(b, WriteOutcome::Written(&v[2])),
        InsertOutcome::Invalidated
    );
    assert_eq!(
        hot.finish_write(a, WriteOutcome::Written(&v[1])),
        InsertOutcome::BelowFloor
    );
    assert!(hot.get(&d()).is_none());
    assert_eq!(hot.in_flight(), 0);
}

#[test]
fn an_abandoned_write_invalidates() {
    let hot = hot(10);
    let v = versions("d", 2);
    let r = hot.begin_read(&d());
    let w = hot.begin_write(&d());
    drop(w); // the caller stopped waiting; the write may still commit
    assert_eq!(hot.fill(r, &v[0]), InsertOutcome::Invalidated);
    let w = hot.begin_write(&d());
    let r = hot.begin_read(&d());
    assert_eq!(
        hot.finish_write(w, WriteOutcome::Unknown),
        InsertOutcome::Invalidated
    );
    assert_eq!(hot.fill(r, &v[0]), InsertOutcome::Invalidated);
    assert!(hot.get(&d()).is_none());
}

/// The race behind "reads go backwards": a reader is handed v2 but its fill is refused by an
/// invalidation; a write that committed v1 earlier finishes afterwards. v1 must not be cached.
#[test]
fn a_version_handed_out_is_a_floor_for_late_results() {
    let hot = hot(10);
    let v = versions("d", 2);
    let r = hot.begin_read(&d());
    hot.invalidate(&d());
    let w = hot.begin_write(&d());
    assert_eq!(hot.fill(r, &v[1]), InsertOutcome::Invalidated);
    assert_eq!(
        hot.finish_write(w, WriteOutcome::Written(&v[0])),
        InsertOutcome::BelowFloor
    );
    assert!(hot.get(&d()).is_none());
    // A read that finishes after a newer one was handed out is refused the same way.
    let slow = hot.begin_read(&d());
    let fast = hot.begin_read(&d());
    assert_eq!(hot.fill(fast, &v[1]), InsertOutcome::Stored);
    hot.invalidate(&d());
    assert_eq!(hot.fill(slow, &v[0]), InsertOutcome::Invalidated);
    assert!(hot.get(&d()).is_none());
}

#[test]
fn ttl_expires_on_monotonic_clock() {
    let ttl = Duration::from_millis(100);
    let hot = HotCache::new(HotConfig {
        capacity: 10,
        ttl: Some(ttl),
    });
    let v = versions("d", 2);
    // Served while fresh. A loaded 2-core machine can stall this thread past the TTL between
    // the fill and the read; such a try proves nothing, so it is repeated, and a stall cannot
    // turn the test red. Five stalls in a row fail it.
    let fresh = (0..5).any(|_| {
        hot.invalidate_all();
        let filled = std::time::Instant::now();
        fill(&hot, &v[0]);
        let hit = hot.get(&d()).is_some();
        if filled.elapsed() < ttl {
            assert!(hit, "entry younger than its TTL not served");
            true
        } else {
            false
        }
    });
    assert!(fresh, "never read within the TTL");
    std::thread::sleep(ttl + Duration::from_millis(10));
    assert!(hot.get(&d()).is_none(), "expired entry served");
    assert_eq!(hot.len(), 0, "expired entry removed when touched");
    assert_eq!(fill(&hot, &v[0]), InsertOutcome::Stored);
}

/// `capacity` is the most entries the cache ever holds, for small and large capacities; small
/// caches (one shard) hold all `capacity` entries.
#[test]
fn never_holds_more_than_capacity() {
    let recs = versions("r", 1);
    for capacity in [1usize, 3, 10, 31, 100, 1000, 5000] {
        let hot = hot(capacity);
        for i in 0..capacity * 4 {
            let mut r = recs[0].clone();
            r.deployment_id = DeploymentId::new(format!("k{i}")).unwrap();
            fill(&hot, &r);
            assert!(
                hot.len() <= capacity,
                "capacity {capacity}: holds {} after {} inserts",
                hot.len(),
                i + 1
            );
        }
        assert!(
            hot.len() >= capacity * 3 / 4,
            "capacity {capacity}: keeps only {}",
            hot.len()
        );
        if capacity < 64 {
            let hot = self::hot(capacity);
            for i in 0..capacity {
                let mut r = recs[0].clone();
                r.deployment_id = DeploymentId::new(format!("k{i}")).unwrap();
                fill(&hot, &r);
            }
            assert_eq!(hot.len(), capacity, "a small cache holds its capacity");
        }
        hot.invalidate_all();
        assert!(hot.is_empty());
    }
}

#[test]
fn concurrent_fills_keep_the_newest_and_stay_bounded() {
    let hot = Arc::new(hot(64));
    let v = Arc::new(versions("d", 50));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let hot = hot.clone();
            let v = v.clone();
            std::thread::spawn(move || {
                let mut order: Vec<usize> = (0..v.len()).collect();
                order.rotate_left(t * 13);
                if t % 2 == 1 {
                    order.reverse();
                }
                for i in order {
                    fill(&hot, &v[i]);
                    let mut other = v[i].clone();
                    other.deployment_id = DeploymentId::new(format!("t{t}-{i}")).unwrap();
                    fill(&hot, &other);
                    assert!(hot.len() <= 64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    if let Some(cached) = hot.get(&d()) {
        assert_eq!(cached.version, 50, "an older version replaced the newest");
    }
    assert_eq!(hot.in_flight(), 0);
}

#[test]
fn bulk_fills_are_refused_for_what_changed_during_them() {
    let hot = hot(10);
    let a = versions("a", 1);
    let b = versions("b", 1);
    let c = versions("c", 1);
    let t = hot.begin_bulk();
    assert_eq!(hot.fill_bulk(&t, a[0].clone()), InsertOutcome::Stored);
    // Another deployment's change does not spoil the page...
    hot.forget(&DeploymentId::new("z").unwrap());
    hot.observe(&DeploymentId::new("y").unwrap(), 3);
    assert_eq!(hot.fill_bulk(&t, b[0].clone()), InsertOutcome::Stored);
    // ...but its own does, whatever the kind, and so does a write in flight.
    hot.observe(&DeploymentId::new("c").unwrap(), 2);
    assert_eq!(hot.fill_bulk(&t, c[0].clone()), InsertOutcome::Invalidated);
    drop(t);
    hot.invalidate_all();
    let t = hot.begin_bulk();
    let w = hot.begin_write(&DeploymentId::new("b").unwrap());
    assert_eq!(hot.fill_bulk(&t, b[0].clone()), InsertOutcome::Invalidated);
    drop(w);
    assert_eq!(
        hot.fill_bulk(&t, b[0].clone()),
        InsertOutcome::Invalidated,
        "b changed during the read"
    );
    assert_eq!(hot.fill_bulk(&t, c[0].clone()), InsertOutcome::Stored);
    hot.invalidate_all();
    assert_eq!(
        hot.fill_bulk(&t, a[0].clone()),
        InsertOutcome::Invalidated,
        "everything was dropped"
    );
    drop(t);
    // A later bulk read starts clean.
    let t = hot.begin_bulk();
    assert_eq!(hot.fill_bulk(&t, b[0].clone()), InsertOutcome::Stored);
}
