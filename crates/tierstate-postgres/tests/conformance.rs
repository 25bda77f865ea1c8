//! The conformance suite against a real PostgreSQL server, one fresh schema per test.

mod common;

use std::sync::Arc;

use tierstate_testkit::Harness;

async fn harness() -> Option<Harness> {
    let url = common::url()?;
    let store = common::fresh_store(&url).await;
    let hook = store.clone();
    let records = store.clone();
    Some(Harness {
        store: Arc::new(store),
        damage: Arc::new(move |id, _version| {
            let hook = hook.clone();
            Box::pin(async move { common::damage(&hook, id.as_str(), 0, 0x20).await })
        }),
        damage_record: Arc::new(move |what| {
            let hook = records.clone();
            Box::pin(async move { common::damage_record(&hook, what).await })
        }),
        guard: Box::new(()),
    })
}

tierstate_testkit::conformance_tests!(harness);
