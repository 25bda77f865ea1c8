//! A redb I/O error poisons its handle: the store reports a typed `Io` error, reopens the file
//! by itself once the device works again, and has every commit made before the failure.

use serde_json::json;
use tierstate_core::{BackendErrorKind, DeploymentId, Error, Retention, StateStore, StateWrite};
use tierstate_redb::{FlakyDevice, RedbConfig, RedbStore};

fn id() -> DeploymentId {
    DeploymentId::new("d").unwrap()
}

fn n(v: u64) -> serde_json::Map<String, serde_json::Value> {
    json!({"n": v}).as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_error_poisons_and_reopen_recovers() {
    let flaky = FlakyDevice::new();
    let cfg = RedbConfig::new("in-memory");
    let store = RedbStore::open_with_backend(cfg.clone(), flaky.clone())
        .await
        .unwrap();
    store
        .put(StateWrite::create(id(), n(1)), Retention::DEFAULT)
        .await
        .unwrap();

    flaky.fail(true);
    let err = store
        .put(StateWrite::update(id(), 1, n(2)), Retention::DEFAULT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redb",
                kind: BackendErrorKind::Io,
                ..
            }
        ),
        "{err:?}"
    );

    // While the device keeps failing, the store tries to reopen (with backoff) and says why
    // it cannot write; the error is retryable and nothing is written.
    let err = store
        .put(StateWrite::update(id(), 1, n(2)), Retention::DEFAULT)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("injected I/O failure"), "{err}");

    // The device is fine again: the same store reopens the file by itself.
    flaky.fail(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v2 = loop {
        match store
            .put(StateWrite::update(id(), 1, n(2)), Retention::DEFAULT)
            .await
        {
            Ok(v2) => break v2,
            Err(e) if e.is_retryable() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    };
    assert_eq!(
        v2.version, 2,
        "the failed write was not visible, the acked one survived"
    );
    assert_eq!(store.history(&id(), 10).await.unwrap().len(), 2);
    drop(store);
    let reopened = RedbStore::open_with_backend(cfg, flaky.clone())
        .await
        .unwrap();
    let d = reopened.get(&id()).await.unwrap().unwrap();
    assert_eq!((d.version, d.state), (2, n(2)));
}
