//! The conformance suite against SQLite, on a fresh file per test.

use std::sync::Arc;

use tierstate_sqlite::{SqliteConfig, SqliteStore};
use tierstate_testkit::Harness;

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("state.db")))
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
