//! The conformance suite against redb, on a fresh file per test.

use std::sync::Arc;

use tierstate_redb::{RedbConfig, RedbStore};
use tierstate_testkit::{Harness, RecordDamage};

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(RedbConfig::new(dir.path().join("state.redb")))
        .await
        .unwrap();
    let hook = store.clone();
    let records = store.clone();
    Harness {
        store: Arc::new(store),
        damage: Arc::new(move |id, version| {
            let hook = hook.clone();
            Box::pin(async move {
                hook.damage_stored_state(&id, version, 0, 0x20)
                    .await
                    .unwrap()
            })
        }),
        damage_record: Arc::new(move |what| {
            let hook = records.clone();
            Box::pin(async move {
                match what {
                    RecordDamage::Document(a) => hook.damage_document(&a).await.unwrap(),
                    RecordDamage::DocumentRowGone(a) => hook.lose_document_row(&a).await.unwrap(),
                    RecordDamage::Entry(s, seq, d) => hook.damage_entry(&s, seq, d).await.unwrap(),
                }
            })
        }),
        guard: Box::new(dir),
    }
}

tierstate_testkit::conformance_tests!(harness);
