//! The conformance suite against a real PostgreSQL server, one fresh schema per test.

mod common;

use std::sync::Arc;

use tierstate_testkit::Harness;

async fn harness() -> Option<Harness> {
    let url = common::url()?;
    let store = common::fresh_store(&url).await;
    let store = Arc::new(store);
    Some(Harness {
        store: store.clone(),
        faults: store,
        guard: Box::new(()),
    })
}

tierstate_testkit::conformance_tests!(harness);
