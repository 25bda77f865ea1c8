//! A backend failure inside the commit's own transaction, on every backend, through the one
//! fault seam: the ledger entry and the registry change are both rolled back, the error is
//! typed (kind `Backend`, the deployment, the cause), and the same commit succeeds once the
//! fault is gone. The fault is the engine's own (a temporary trigger on SQLite, a check
//! constraint on PostgreSQL, an abandoned write transaction on redb), armed after the batch's
//! other rows were written.

use chrono::{TimeZone, Utc};
use tierstate_accounting::{
    AccountingError, CommitFailure, CommitMode, ExecutionMode, LedgerEntry, Registry, RegistryRow,
    RegistryStatus, RowFilter,
};
use tierstate_core::{DeploymentId, Fault, StreamAddr};
use tierstate_testkit_backends::{Backend, on_every_backend};

on_every_backend!(faults: a_failure_inside_the_commit_rolls_back_both_parts);

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

/// Opens a row, then tries to close it (with a ledger entry) while appends to the ledger fail,
/// and checks that nothing of the failed commit is visible, before and after the fault is
/// lifted.
async fn a_failure_inside_the_commit_rolls_back_both_parts(b: &Backend) {
    let reg = Registry::new(b.store.clone(), &dep());
    reg.commit_ledger_and_registry(CommitMode::Ledger(&entry("open-1")), &open_row())
        .await
        .unwrap();
    let before = reg.get("arbitrum", "uniswap_v3_lp", "nft-1").await.unwrap();
    let mut closed = open_row();
    closed.status = RegistryStatus::Closed;
    closed.closing_block = Some(77);
    let ledger = StreamAddr::new("eth-basis", "ledger").unwrap();
    let arm = |on: bool| Fault::FailAppends {
        stream: ledger.clone(),
        on,
    };

    assert!(b.faults.inject(arm(true)).await.unwrap());
    let err = reg
        .commit_ledger_and_registry(CommitMode::Ledger(&entry("close-1")), &closed)
        .await
        .unwrap_err();
    assert!(b.faults.inject(arm(false)).await.unwrap());
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
