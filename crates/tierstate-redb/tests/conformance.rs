//! The conformance suite against redb, on a fresh file per test.

use std::sync::Arc;

use tierstate_redb::{RedbConfig, RedbStore};
use tierstate_testkit::Harness;

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(RedbConfig::new(dir.path().join("state.redb")))
        .await
        .unwrap();
    let store = Arc::new(store);
    Harness {
        store: store.clone(),
        faults: store,
        guard: Box::new(dir),
    }
}

tierstate_testkit::conformance_tests!(harness);
