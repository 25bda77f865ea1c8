//! 1,000 seeded byte-flip trials per backend on stored rows (body or checksum): every load is
//! either the correct record or an `Integrity` error — never a wrong value, never a panic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tierstate_core::{Error, Retention, StateWrite, Tier};
use tierstate_tests::{Backend, dep};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_byte_flips_are_caught() {
    trials(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_byte_flips_are_caught() {
    trials(Backend::Redb).await;
}

async fn trials(backend: Backend) {
    let seed = std::env::var("TIERSTATE_CORRUPTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7157_a7e5u64);
    eprintln!("corruption trials ({}): seed {seed}", backend.name());
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let (store, damage) = backend
        .open_with_damage(&dir.path().join("flip.db"))
        .await
        .unwrap();
    let id = dep("victim");
    let (mut caught, mut intact) = (0u32, 0u32);
    for trial in 0..1000u64 {
        let state =
            json!({"trial": trial, "cash": "1234.5678", "orders": ["a", "b"], "ü": trial * 3})
                .as_object()
                .unwrap()
                .clone();
        let written = store
            .put(
                StateWrite::overwrite(id.clone(), state.clone()),
                Retention::DEFAULT,
            )
            .await
            .unwrap();
        let offset = rng.random_range(0..10_000usize);
        let mask = rng.random_range(1..=255u8);
        assert!(
            damage(id.clone(), offset, mask).await.unwrap(),
            "trial {trial}: nothing damaged"
        );
        for result in [
            store.get(&id).await.map(|d| d.unwrap()),
            store
                .get_version(&id, written.version)
                .await
                .map(|d| d.unwrap()),
        ] {
            match result {
                Ok(d) => {
                    // Only possible when the flip kept the meaning (e.g. hex digit case).
                    assert_eq!(d.state, state, "trial {trial}: a wrong value was returned");
                    assert_eq!(d.version, written.version);
                    intact += 1;
                }
                Err(Error::Integrity {
                    deployment_id,
                    tier: Tier::Warm,
                    version,
                    ..
                }) => {
                    assert_eq!((deployment_id, version), (id.clone(), written.version));
                    caught += 1;
                }
                Err(other) => panic!("trial {trial} (offset {offset}, mask {mask:#x}): {other:?}"),
            }
        }
        let scanned = store.scan(None, 10).await.unwrap();
        assert_eq!(scanned.len(), 1);
        if let Ok(d) = &scanned[0] {
            assert_eq!(d.state, state, "trial {trial}: scan returned a wrong value");
        }
    }
    eprintln!(
        "corruption trials ({}): {caught} loads refused with Integrity, {intact} equivalent flips loaded intact",
        backend.name()
    );
    assert!(caught >= 1800, "too few flips were detected: {caught}");
}
