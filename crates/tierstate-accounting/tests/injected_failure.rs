//! A backend failure injected inside the commit's own transaction, on each real backend: the
//! ledger entry and the registry change are both rolled back, the error is typed (kind
//! `Backend`, the deployment, the cause), and the same commit succeeds once the fault is gone.
//!
//! The faults are real ones in the engine, not a stand-in store: a SQLite trigger that aborts
//! the ledger insert after the registry rows were written in the same transaction; a
//! PostgreSQL check constraint that does the same; a redb storage device whose writes fail.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tierstate_accounting::{
    AccountingError, CommitFailure, CommitMode, ExecutionMode, LedgerEntry, Registry, RegistryRow,
    RegistryStatus, RowFilter,
};
use tierstate_core::{DeploymentId, StateStore};

fn dep() -> DeploymentId {
    DeploymentId::new("eth-basis").unwrap()
}

fn entry(id: &str) -> LedgerEntry {
    let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    LedgerEntry::new(id, "eth-basis", ExecutionMode::Live, at, "LP_CLOSE", true).unwrap()
}

fn open_row() -> RegistryRow {
    let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let mut r = RegistryRow::open(
        "eth-basis",
        "arbitrum",
        "uniswap_v3_lp",
        "nft-1",
        "lp",
        "pool",
        at,
    )
    .unwrap();
    r.handle = Some("main".into());
    r
}

/// Opens a row, then tries to close it (with a ledger entry) while `arm` holds, and checks
/// that nothing of the failed commit is visible, before and after the fault is lifted.
async fn closes_atomically(store: Arc<dyn StateStore>, arm: impl Fn(bool)) {
    let reg = Registry::new(store, &dep());
    reg.commit_ledger_and_registry(CommitMode::Ledger(&entry("open-1")), &open_row())
        .await
        .unwrap();
    let before = reg.get("arbitrum", "uniswap_v3_lp", "nft-1").await.unwrap();
    let mut closed = open_row();
    closed.status = RegistryStatus::Closed;
    closed.closing_block = Some(77);

    arm(true);
    let err = reg
        .commit_ledger_and_registry(CommitMode::Ledger(&entry("close-1")), &closed)
        .await
        .unwrap_err();
    arm(false);
    match &err {
        AccountingError::Commit {
            kind,
            deployment,
            cause,
        } => {
            assert_eq!(*kind, CommitFailure::Backend, "{err}");
            assert_eq!(deployment, "eth-basis");
            assert!(matches!(**cause, AccountingError::Store(_)), "{cause}");
        }
        other => panic!("expected a commit error, got {other}"),
    }
    // Neither part landed: the row, its open copy and claim, the ledger and its totals.
    assert_eq!(
        reg.get("arbitrum", "uniswap_v3_lp", "nft-1").await.unwrap(),
        before
    );
    assert_eq!(reg.open_rows(&RowFilter::default()).await.unwrap().len(), 1);
    assert!(reg.ledger().get("close-1").await.unwrap().is_none());
    let stats = reg.ledger().stats().await.unwrap();
    assert_eq!((stats.count, stats.last_seq), (1, 1));
    assert_eq!(stats, reg.ledger().recompute_stats().await.unwrap());
    // The fault is gone: the same commit lands whole.
    let ok = reg
        .commit_ledger_and_registry(CommitMode::Ledger(&entry("close-1")), &closed)
        .await
        .unwrap();
    assert_eq!(ok.row.version, 2);
    assert!(
        reg.open_rows(&RowFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(reg.ledger().stats().await.unwrap().count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_trigger_abort_rolls_back_both_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = tierstate_sqlite::SqliteStore::open(tierstate_sqlite::SqliteConfig::new(&path))
        .await
        .unwrap();
    let side = rusqlite::Connection::open(&path).unwrap();
    side.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    closes_atomically(Arc::new(store), |on| {
        let sql = if on {
            "CREATE TRIGGER injected BEFORE INSERT ON ts_journal WHEN NEW.stream = 'ledger' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        } else {
            "DROP TRIGGER injected"
        };
        side.execute_batch(sql).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_constraint_violation_rolls_back_both_parts() {
    let Some(url) = tierstate_testkit::pg_url() else {
        return;
    };
    let schema = tierstate_testkit::fresh_schema("inject");
    let cfg = tierstate_postgres::PostgresConfig::new(url)
        .schema(&schema)
        .unwrap();
    let store = tierstate_postgres::PostgresStore::connect(cfg)
        .await
        .unwrap();
    let pool = store.pool().clone();
    let store: Arc<dyn StateStore> = Arc::new(store);
    let arm = |on: bool| {
        let sql = if on {
            format!(
                "ALTER TABLE \"{schema}\".ts_journal ADD CONSTRAINT injected \
                 CHECK (stream <> 'ledger' OR seq < 2) NOT VALID"
            )
        } else {
            format!("ALTER TABLE \"{schema}\".ts_journal DROP CONSTRAINT injected")
        };
        let pool = pool.clone();
        // `arm` is synchronous; run the DDL to completion on this runtime's blocking pool.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
            })
        });
    };
    closes_atomically(store, arm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_io_failure_rolls_back_both_parts() {
    let flaky = tierstate_redb::FlakyDevice::new();
    let store = tierstate_redb::RedbStore::open_with_backend(
        tierstate_redb::RedbConfig::new("in-memory"),
        flaky.clone(),
    )
    .await
    .unwrap();
    closes_atomically(Arc::new(store), |on| flaky.fail(on)).await;
}
