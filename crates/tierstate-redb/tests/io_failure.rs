//! A redb I/O error poisons its handle: the store reports a typed `Io` error that tells the
//! caller to reopen, and a reopened store has every commit made before the failure.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::StorageBackend;
use redb::backends::InMemoryBackend;
use serde_json::json;
use tierstate_core::{BackendErrorKind, DeploymentId, Error, Retention, StateStore, StateWrite};
use tierstate_redb::{RedbConfig, RedbStore};

/// In-memory bytes whose writes and syncs fail while `fail` is set, like a disk that errors.
#[derive(Debug, Clone)]
struct Flaky {
    bytes: Arc<InMemoryBackend>,
    fail: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(io::Error::other("injected I/O failure"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for Flaky {
    fn len(&self) -> io::Result<u64> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.bytes.write(offset, data)
    }
}

fn id() -> DeploymentId {
    DeploymentId::new("d").unwrap()
}

fn n(v: u64) -> serde_json::Map<String, serde_json::Value> {
    json!({"n": v}).as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_error_poisons_and_reopen_recovers() {
    let flaky = Flaky {
        bytes: Arc::new(InMemoryBackend::new()),
        fail: Arc::new(AtomicBool::new(false)),
    };
    let cfg = RedbConfig::new("in-memory");
    let store = RedbStore::open_with_backend(cfg.clone(), flaky.clone())
        .await
        .unwrap();
    store
        .put(StateWrite::create(id(), n(1)), Retention::DEFAULT)
        .await
        .unwrap();

    flaky.fail.store(true, Ordering::SeqCst);
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

    // The disk is fine again, but this handle stays poisoned and says what to do.
    flaky.fail.store(false, Ordering::SeqCst);
    let err = store
        .put(StateWrite::update(id(), 1, n(2)), Retention::DEFAULT)
        .await
        .unwrap_err();
    match &err {
        Error::Backend {
            kind: BackendErrorKind::Io,
            message,
            ..
        } => {
            assert!(
                message.contains("reopen"),
                "the error must tell the caller to reopen: {message}"
            )
        }
        other => panic!("expected a poisoned-handle Io error, got {other:?}"),
    }
    drop(store);

    let reopened = RedbStore::open_with_backend(cfg, flaky.clone())
        .await
        .unwrap();
    let d = reopened
        .get(&id())
        .await
        .unwrap()
        .expect("the commit before the failure survived");
    assert_eq!(
        (d.version, d.state),
        (1, n(1)),
        "the failed write must not be visible"
    );
    let v2 = reopened
        .put(StateWrite::update(id(), 1, n(2)), Retention::DEFAULT)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
}
