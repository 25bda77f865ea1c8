//! A fresh, empty store of each backend for the tests of domain crates (positions,
//! accounting, orders), and [`on_every_backend!`], which runs one test on all of them.
//!
//! The conformance suite (`tierstate-testkit`) proves the record primitives; domain crates
//! use this to show their own behaviour holds on every backend, with one list of backends.
//! PostgreSQL is used when `TEST_DATABASE_URL` is set (`cargo xtask test` starts a server);
//! otherwise its tests return early, as the conformance suite's do.
//!
//! In a test file, `on_every_backend!(faults: damaged_state_is_refused);` turns the function
//! below into four tests; here it runs on SQLite alone:
//!
//! ```
//! use tierstate_core::{DeploymentId, Fault, StateWrite};
//! use tierstate_testkit_backends::Backend;
//!
//! async fn damaged_state_is_refused(b: &Backend) {
//!     let id = DeploymentId::new("grid-btc").unwrap();
//!     let body = serde_json::json!({ "cash": 100 }).as_object().cloned().unwrap();
//!     b.store.put(StateWrite::create(id.clone(), body), Default::default()).await.unwrap();
//!     let flip = Fault::StateBytes { id: id.clone(), version: None, offset: 3, mask: 1 };
//!     assert!(b.faults.inject(flip).await.unwrap());
//!     assert!(b.store.get(&id).await.unwrap_err().is_damage());
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let b = tierstate_testkit_backends::sqlite().await.unwrap();
//! # damaged_state_is_refused(&b).await;
//! # }
//! ```
#![deny(missing_docs)]
#![allow(clippy::missing_panics_doc)] // Test fixtures: a store that cannot open is a failed test.

use std::sync::Arc;

use tierstate_core::{FaultSeam, StateStore};

/// A store of one backend, its fault seam, and what keeps it alive (a temporary directory).
pub struct Backend {
    /// The store, empty.
    pub store: Arc<dyn StateStore>,
    /// The backend's fault seam.
    pub faults: Arc<dyn FaultSeam>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn new(
        store: Arc<impl StateStore + FaultSeam + 'static>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        Self {
            store: store.clone(),
            faults: store,
            _dir: dir,
        }
    }
}

/// The in-memory reference store.
pub async fn memory() -> Option<Backend> {
    Some(Backend::new(
        Arc::new(tierstate_core::InMemoryStore::new()),
        None,
    ))
}

/// A SQLite file in a temporary directory.
pub async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s = tierstate_sqlite::SqliteStore::open(tierstate_sqlite::SqliteConfig::new(
        dir.path().join("t.db"),
    ))
    .await
    .expect("open SQLite");
    Some(Backend::new(Arc::new(s), Some(dir)))
}

/// A redb file in a temporary directory.
pub async fn redb() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let s =
        tierstate_redb::RedbStore::open(tierstate_redb::RedbConfig::new(dir.path().join("t.redb")))
            .await
            .expect("open redb");
    Some(Backend::new(Arc::new(s), Some(dir)))
}

/// A fresh schema on the PostgreSQL server of `TEST_DATABASE_URL`; `None` if it is unset.
pub async fn postgres() -> Option<Backend> {
    let url = tierstate_testkit::pg_url()?;
    let cfg = tierstate_postgres::PostgresConfig::new(url)
        .schema(&tierstate_testkit::fresh_schema("domain"))
        .expect("schema name");
    Some(Backend::new(
        Arc::new(
            tierstate_postgres::PostgresStore::connect(cfg)
                .await
                .expect("connect to PostgreSQL"),
        ),
        None,
    ))
}

/// Runs each named test (an `async fn(Arc<dyn StateStore>)` in the calling module) on every
/// backend, as `memory::name`, `sqlite::name`, `redb::name` and `postgres::name`. With
/// `faults:` first, each test is an `async fn(&Backend)` (the store and its fault seam).
#[macro_export]
macro_rules! on_every_backend {
    (faults: $($test:ident),* $(,)?) => {
        $crate::on_every_backend!(@faults memory; $($test),*);
        $crate::on_every_backend!(@faults sqlite; $($test),*);
        $crate::on_every_backend!(@faults redb; $($test),*);
        $crate::on_every_backend!(@faults postgres; $($test),*);
    };
    (@faults $b:ident; $($test:ident),*) => {
        mod $b {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(b) = $crate::$b().await else { return };
                    super::$test(&b).await;
                }
            )*
        }
    };
    ($($test:ident),* $(,)?) => {
        $crate::on_every_backend!(@backend memory; $($test),*);
        $crate::on_every_backend!(@backend sqlite; $($test),*);
        $crate::on_every_backend!(@backend redb; $($test),*);
        $crate::on_every_backend!(@backend postgres; $($test),*);
    };
    (@backend $b:ident; $($test:ident),*) => {
        mod $b {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(b) = $crate::$b().await else { return };
                    super::$test(b.store.clone()).await;
                }
            )*
        }
    };
}
