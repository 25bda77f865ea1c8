//! Ledger, position registry and events on every backend (memory, SQLite, redb, PostgreSQL).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tierstate_accounting::{
    AccountingError, AccountingEvent, AccountingEventKind, CommitFailure, CommitMode, EventFilter,
    EventSaved, Events, ExecutionMode, Ledger, LedgerEntry, LedgerQuery, PositionEvent,
    PositionEventType, PositionLookup, Recorded, Registry, RegistryRow, RegistryStatus, RowFilter,
};
use tierstate_core::{DeploymentId, Error, StateStore, StateWrite, WriteBatch};
use tierstate_testkit_backends::on_every_backend;

on_every_backend!(
    ledger_appends_are_idempotent_by_id_and_totals_stay_exact,
    ledger_pages_newest_first_with_cursor_since_and_type,
    ledger_batches_append_together_or_not_at_all,
    concurrent_ledger_appends_keep_totals_exact,
    registry_transitions_follow_the_table,
    retries_at_the_same_status_refresh_the_row,
    handles_are_unique_and_freed_from_closed_rows,
    auto_mode_allows_one_open_handleless_row_per_group,
    concurrent_turns_on_one_group_are_exclusive,
    refused_commits_write_nothing,
    reconciliation_updates_the_registry_without_a_ledger_entry,
    open_rows_filter_and_skip_closed_ones,
    position_events_first_write_wins_and_attribution_is_cas,
    accounting_events_carry_the_registry_row_at_write_time,
    migration_state_inserts_once_merges_and_completes,
    planned_ledger_batches_commit_with_the_callers_records,
);

fn dep() -> DeploymentId {
    DeploymentId::new("eth-basis").unwrap()
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// A swap: `amount` of USDC in, half as much ETH out, with gas.
fn swap(id: &str, at: i64, amount: &str, success: bool) -> LedgerEntry {
    let mut e =
        LedgerEntry::new(id, "eth-basis", ExecutionMode::Live, t(at), "SWAP", success).unwrap();
    e.token_in = Some("USDC".into());
    e.amount_in = Some(d(amount));
    e.token_out = Some("ETH".into());
    e.amount_out = Some(d(amount) / d("2"));
    e.gas_used = Some(21_000);
    e.gas_usd = Some(d("0.25"));
    e.chain = Some("arbitrum".into());
    if !success {
        e.error = Some("reverted".into());
    }
    e
}

fn row(identity: &str, group: &str) -> RegistryRow {
    RegistryRow::open(
        "eth-basis",
        "arbitrum",
        "uniswap_v3_lp",
        identity,
        "lp",
        group,
        t(0),
    )
    .unwrap()
}

fn with_handle(mut r: RegistryRow, h: &str) -> RegistryRow {
    r.handle = Some(h.into());
    r
}

fn moved(mut r: RegistryRow, to: RegistryStatus) -> RegistryRow {
    r.status = to;
    r
}

fn cause(e: AccountingError) -> (CommitFailure, AccountingError) {
    match e {
        AccountingError::Commit {
            kind,
            deployment,
            cause,
        } => {
            assert_eq!(deployment, "eth-basis");
            (kind, *cause)
        }
        other => panic!("expected a commit error, got {other}"),
    }
}

async fn ledger_appends_are_idempotent_by_id_and_totals_stay_exact(store: Arc<dyn StateStore>) {
    let l = Ledger::new(store.clone(), &dep());
    assert_eq!(l.stats().await.unwrap().success_rate(), None); // unmeasured, not zero
    let failed = swap("tx-1", 0, "100", false);
    let mut retry = swap("tx-1b", 5, "100", true);
    retry.retry_of = Some("tx-1".into());
    assert_eq!(l.append(&failed).await.unwrap(), Recorded::Appended(1));
    assert_eq!(l.append(&retry).await.unwrap(), Recorded::Appended(2));
    assert_eq!(
        l.append(&swap("tx-2", 10, "40", true)).await.unwrap(),
        Recorded::Appended(3)
    );
    // The same entry again: Ok, nothing written.
    assert_eq!(l.append(&retry).await.unwrap(), Recorded::Duplicate(2));
    // The same id with other content: typed, nothing written.
    let e = l.append(&swap("tx-2", 10, "41", true)).await.unwrap_err();
    assert!(
        matches!(e, AccountingError::LedgerEntryConflict { ref id, seq: 3, .. } if id == "tx-2"),
        "{e}"
    );
    // Bad input: a negative amount, an amount without its token, a self-retry.
    let mut neg = swap("tx-9", 0, "1", true);
    neg.amount_in = Some(d("-1"));
    let mut tokenless = swap("tx-9", 0, "1", true);
    tokenless.token_out = None;
    let mut selfish = swap("tx-9", 0, "1", true);
    selfish.retry_of = Some("tx-9".into());
    for bad in [neg, tokenless, selfish] {
        assert!(matches!(
            l.append(&bad).await.unwrap_err(),
            AccountingError::InvalidInput { .. }
        ));
    }
    let s = l.stats().await.unwrap();
    assert_eq!(s, l.recompute_stats().await.unwrap());
    assert_eq!((s.count, s.successes, s.last_seq), (3, 2, 3));
    assert_eq!(s.success_rate(), Some(d("2") / d("3")));
    assert_eq!(s.gas_usd, d("0.75")); // the failed attempt burned gas too
    assert_eq!(s.gas_used, 63_000);
    assert_eq!(s.volume_of("USDC"), d("140")); // successful entries only
    assert_eq!(s.volume_of("ETH"), d("70"));
    assert_eq!(s.volume_of("BTC"), d("0"));
    assert_eq!((s.first_time, s.last_time), (Some(t(0)), Some(t(10))));
    // The failed attempt and its retry are two entries, linked.
    let got = l.get("tx-1b").await.unwrap().unwrap();
    assert_eq!(got.entry.retry_of.as_deref(), Some("tx-1"));
    assert!(!l.get("tx-1").await.unwrap().unwrap().entry.success);
    assert!(l.get("nope").await.unwrap().is_none());
}

async fn ledger_pages_newest_first_with_cursor_since_and_type(store: Arc<dyn StateStore>) {
    let l = Ledger::new(store.clone(), &dep());
    // Times out of append order, with ties; every third is a deposit; some carry pre-state.
    let times: Vec<i64> = (0..30).map(|i| (i * 37) % 11).collect();
    for (i, at) in times.iter().enumerate() {
        let mut e = swap(&format!("e{i:02}"), *at, "1", true);
        if i % 3 == 0 {
            e.intent_type = "DEPOSIT".into();
        }
        if i % 4 == 0 {
            e.pre_state = Some(json!({"usdc": i}));
        }
        l.append(&e).await.unwrap();
    }
    // Expected order: (time desc, seq desc); seq = i + 1.
    let mut want: Vec<(i64, u64)> = times
        .iter()
        .enumerate()
        .map(|(i, at)| (*at, i as u64 + 1))
        .collect();
    want.sort_by(|a, b| b.cmp(a));
    let mut got = Vec::new();
    let mut q = LedgerQuery::newest(7);
    loop {
        let page = l.entries(&q).await.unwrap();
        assert!(page.entries.len() <= 7);
        got.extend(
            page.entries
                .iter()
                .map(|e| (e.entry.time.timestamp() - 1_800_000_000, e.seq)),
        );
        match page.next {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    assert_eq!(got, want);
    // Filter by type, and since a time (inclusive).
    let mut q = LedgerQuery::newest(100);
    q.intent_type = Some("DEPOSIT".into());
    let deposits = l.entries(&q).await.unwrap();
    assert_eq!(deposits.entries.len(), 10);
    assert!(
        deposits
            .entries
            .iter()
            .all(|e| e.entry.intent_type == "DEPOSIT")
    );
    assert!(deposits.next.is_none());
    let mut q = LedgerQuery::newest(100);
    q.since = Some(t(8));
    let recent = l.entries(&q).await.unwrap();
    let expect: Vec<u64> = want.iter().filter(|w| w.0 >= 8).map(|w| w.1).collect();
    assert_eq!(
        recent.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        expect
    );
    // A filtered page that fills up says where to go on.
    let mut q = LedgerQuery::newest(3);
    q.intent_type = Some("DEPOSIT".into());
    let first = l.entries(&q).await.unwrap();
    assert_eq!(first.entries.len(), 3);
    q.before = first.next;
    let second = l.entries(&q).await.unwrap();
    assert_eq!(
        second.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        deposits.entries[3..6]
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    );
    // Anchor candidates: entries with pre-state, oldest first by time, with offset.
    let mut anchors: Vec<(i64, u64)> = want
        .iter()
        .copied()
        .filter(|w| (w.1 - 1) % 4 == 0)
        .collect();
    anchors.sort();
    let got = l.anchor_candidates(3, 2).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.seq).collect::<Vec<_>>(),
        anchors[2..5].iter().map(|a| a.1).collect::<Vec<_>>()
    );
    assert!(matches!(
        l.entries(&LedgerQuery::newest(0)).await.unwrap_err(),
        AccountingError::InvalidInput { .. }
    ));
}

async fn concurrent_ledger_appends_keep_totals_exact(store: Arc<dyn StateStore>) {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let l = Ledger::new(store.clone(), &dep());
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                // Every writer also appends one shared id: it lands once.
                let id = if i == 9 {
                    "shared".to_owned()
                } else {
                    format!("w{w}-{i}")
                };
                l.append(&swap(&id, i, "2", true)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let l = Ledger::new(store, &dep());
    let s = l.stats().await.unwrap();
    assert_eq!((s.count, s.last_seq), (37, 37));
    assert_eq!(s, l.recompute_stats().await.unwrap());
    assert_eq!(s.volume_of("USDC"), d("74"));
}

/// Sets up a row at `from` through the commit path (backfill for a row that starts closed
/// or invalidated).
async fn row_at(reg: &Registry, identity: &str, from: Option<RegistryStatus>) -> RegistryRow {
    let r = row(identity, identity);
    match from {
        None => {}
        Some(RegistryStatus::Open) => {
            reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
                .await
                .unwrap();
        }
        Some(s) => {
            reg.insert_if_absent(&moved(r.clone(), s)).await.unwrap();
        }
    }
    r
}

async fn registry_transitions_follow_the_table(store: Arc<dyn StateStore>) {
    use RegistryStatus::{Closed, Open, ReorgInvalidated};
    let reg = Registry::new(store.clone(), &dep());
    // Written independently of the library's table: forward moves and same-status retries.
    let allowed = |from: Option<RegistryStatus>, to: RegistryStatus| match from {
        None => to == Open,
        Some(Open) => true,
        Some(Closed) => to != Open,
        Some(ReorgInvalidated) => to == ReorgInvalidated,
    };
    let mut n = 0;
    for from in [None, Some(Open), Some(Closed), Some(ReorgInvalidated)] {
        for to in [Open, Closed, ReorgInvalidated] {
            n += 1;
            let id = format!("pos-{n}");
            let r = row_at(&reg, &id, from).await;
            let before = reg.get("arbitrum", "uniswap_v3_lp", &id).await.unwrap();
            let entries = reg.ledger().stats().await.unwrap().count;
            let entry = swap(&format!("tx-{n}"), n, "1", true);
            let res = reg
                .commit_ledger_and_registry(CommitMode::Ledger(&entry), &moved(r, to))
                .await;
            let after = reg.get("arbitrum", "uniswap_v3_lp", &id).await.unwrap();
            if allowed(from, to) {
                let c = res.unwrap_or_else(|e| panic!("{from:?} -> {to}: {e}"));
                assert_eq!(c.row.row.status, to);
                assert_eq!(after.unwrap().version, before.map_or(1, |b| b.version + 1));
                assert_eq!(reg.ledger().stats().await.unwrap().count, entries + 1);
            } else {
                let (kind, cause) = cause(res.unwrap_err());
                assert_eq!(kind, CommitFailure::Transition, "{from:?} -> {to}");
                assert!(
                    matches!(cause, AccountingError::RegistryTransition { from: f, to: t2, .. } if f == from.map(RegistryStatus::as_str) && t2 == to.as_str())
                );
                assert_eq!(after, before, "{from:?} -> {to}: the row changed");
                assert_eq!(reg.ledger().stats().await.unwrap().count, entries);
                assert!(
                    reg.ledger()
                        .get(&format!("tx-{n}"))
                        .await
                        .unwrap()
                        .is_none()
                );
            }
        }
    }
    assert_eq!(RegistryStatus::ALL.len(), 3);
}

async fn retries_at_the_same_status_refresh_the_row(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    let mut r = row("nft-7", "pool-a");
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    r.payload = obj(json!({"liquidity": "10"}));
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    r.status = RegistryStatus::Closed;
    r.closing_block = Some(100);
    r.closing_tx = Some("0xaa".into());
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    // Closed again with corrected closing fields: applied, not dropped.
    r.closing_block = Some(101);
    r.closing_tx = Some("0xbb".into());
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    let got = reg
        .get("arbitrum", "uniswap_v3_lp", "nft-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.row.closing_block, got.row.closing_tx.as_deref()),
        (Some(101), Some("0xbb"))
    );
    assert_eq!(got.version, 4);
    // Closed -> reorg-invalidated: the case the reference drops silently.
    r.status = RegistryStatus::ReorgInvalidated;
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    let got = reg
        .get("arbitrum", "uniswap_v3_lp", "nft-7")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.row.status, RegistryStatus::ReorgInvalidated);
    assert_eq!(got.row.payload, obj(json!({"liquidity": "10"})));
}

async fn handles_are_unique_and_freed_from_closed_rows(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    let a = with_handle(row("nft-a", "pool-a"), "main-lp");
    let b = with_handle(row("nft-b", "pool-b"), "main-lp");
    let e1 = swap("open-a", 1, "1", true);
    reg.commit_ledger_and_registry(CommitMode::Ledger(&e1), &a)
        .await
        .unwrap();
    // An open row holds it: refused, nothing written.
    let e2 = swap("open-b", 2, "1", true);
    let (kind, c) = cause(
        reg.commit_ledger_and_registry(CommitMode::Ledger(&e2), &b)
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, CommitFailure::HandleTaken);
    assert!(
        matches!(c, AccountingError::HandleTaken { ref held_by, ref claimed_by, .. }
            if held_by == "arbitrum|uniswap_v3_lp|nft-a" && claimed_by == "arbitrum|uniswap_v3_lp|nft-b")
    );
    assert!(
        reg.get("arbitrum", "uniswap_v3_lp", "nft-b")
            .await
            .unwrap()
            .is_none()
    );
    assert!(reg.ledger().get("open-b").await.unwrap().is_none());
    // The same handle in another category is another handle.
    let mut other = with_handle(row("nft-c", "pool-c"), "main-lp");
    other.category = "perp".into();
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &other)
        .await
        .unwrap();
    // A closes (keeping its handle); B's claim frees it from A in the same transaction.
    reg.commit_ledger_and_registry(
        CommitMode::Reconciliation,
        &moved(a, RegistryStatus::Closed),
    )
    .await
    .unwrap();
    assert_eq!(
        reg.by_handle("lp", "main-lp")
            .await
            .unwrap()
            .unwrap()
            .row
            .identity_hash,
        "nft-a"
    );
    reg.commit_ledger_and_registry(CommitMode::Ledger(&e2), &b)
        .await
        .unwrap();
    let holder = reg.by_handle("lp", "main-lp").await.unwrap().unwrap();
    assert_eq!(holder.row.identity_hash, "nft-b");
    let a_now = reg
        .get("arbitrum", "uniswap_v3_lp", "nft-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a_now.row.handle, a_now.row.status),
        (None, RegistryStatus::Closed)
    );
    assert_eq!(
        reg.by_handle("perp", "main-lp")
            .await
            .unwrap()
            .unwrap()
            .row
            .identity_hash,
        "nft-c"
    );
    // Releasing: B drops its handle; the handle is free.
    let mut b2 = b.clone();
    b2.handle = None;
    b2.grouping_key = "pool-b".into();
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &b2)
        .await
        .unwrap();
    assert!(reg.by_handle("lp", "main-lp").await.unwrap().is_none());
}

async fn auto_mode_allows_one_open_handleless_row_per_group(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    let a = row("nft-a", "pool-x");
    let b = row("nft-b", "pool-x");
    assert!(
        reg.find_open_auto_row("arbitrum", "lp", "pool-x")
            .await
            .unwrap()
            .is_none()
    );
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &a)
        .await
        .unwrap();
    // Preflight finds the row a new open would collide with.
    let hit = reg
        .find_open_auto_row("arbitrum", "lp", "pool-x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.row.identity_hash, "nft-a");
    let e = swap("open-b", 2, "1", true);
    let (kind, c) = cause(
        reg.commit_ledger_and_registry(CommitMode::Ledger(&e), &b)
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, CommitFailure::AutoModeCollision);
    assert!(
        matches!(c, AccountingError::AutoModeCollision { ref existing, ref new, .. }
            if existing == "arbitrum|uniswap_v3_lp|nft-a" && new == "arbitrum|uniswap_v3_lp|nft-b")
    );
    assert!(reg.ledger().get("open-b").await.unwrap().is_none());
    // Another group, another chain, or a handle: no collision.
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &row("nft-c", "pool-y"))
        .await
        .unwrap();
    let mut other_chain = row("nft-d", "pool-x");
    other_chain.chain = "base".into();
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &other_chain)
        .await
        .unwrap();
    reg.commit_ledger_and_registry(
        CommitMode::Reconciliation,
        &with_handle(row("nft-e", "pool-x"), "h-e"),
    )
    .await
    .unwrap();
    // A takes a handle: the group is free for B.
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &with_handle(a, "h-a"))
        .await
        .unwrap();
    reg.commit_ledger_and_registry(CommitMode::Ledger(&e), &b)
        .await
        .unwrap();
    let hit = reg
        .find_open_auto_row("arbitrum", "lp", "pool-x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.row.identity_hash, "nft-b");
    // B closes: free again.
    reg.commit_ledger_and_registry(
        CommitMode::Reconciliation,
        &moved(b, RegistryStatus::Closed),
    )
    .await
    .unwrap();
    assert!(
        reg.find_open_auto_row("arbitrum", "lp", "pool-x")
            .await
            .unwrap()
            .is_none()
    );
}

async fn refused_commits_write_nothing(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    let a = row("nft-a", "pool-a");
    reg.commit_ledger_and_registry(CommitMode::Ledger(&swap("t1", 1, "1", true)), &a)
        .await
        .unwrap();
    let before = reg.get("arbitrum", "uniswap_v3_lp", "nft-a").await.unwrap();
    // A ledger id reused with other content fails the registry change with it.
    let (kind, _) = cause(
        reg.commit_ledger_and_registry(
            CommitMode::Ledger(&swap("t1", 1, "2", true)),
            &moved(a.clone(), RegistryStatus::Closed),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(kind, CommitFailure::LedgerConflict);
    // Bad input: a row of another deployment, an empty identity.
    let mut foreign = a.clone();
    foreign.deployment_id = "other".into();
    let mut empty = a.clone();
    empty.identity_hash = String::new();
    for bad in [foreign, empty] {
        let (kind, _) = cause(
            reg.commit_ledger_and_registry(CommitMode::Ledger(&swap("t2", 2, "1", true)), &bad)
                .await
                .unwrap_err(),
        );
        assert_eq!(kind, CommitFailure::InvalidInput);
    }
    assert_eq!(
        reg.get("arbitrum", "uniswap_v3_lp", "nft-a").await.unwrap(),
        before
    );
    assert_eq!(reg.ledger().stats().await.unwrap().count, 1);
    assert!(reg.ledger().get("t2").await.unwrap().is_none());
    // The same commit again after success: the ledger part is a duplicate, the row a retry.
    let e = swap("t3", 3, "1", true);
    let closed = moved(a, RegistryStatus::Closed);
    reg.commit_ledger_and_registry(CommitMode::Ledger(&e), &closed)
        .await
        .unwrap();
    let again = reg
        .commit_ledger_and_registry(CommitMode::Ledger(&e), &closed)
        .await
        .unwrap();
    assert_eq!(again.ledger, Some(Recorded::Duplicate(2)));
    assert_eq!(reg.ledger().stats().await.unwrap().count, 2);
}

async fn reconciliation_updates_the_registry_without_a_ledger_entry(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    let mut r = row("nft-r", "pool-r");
    let c = reg
        .commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    assert_eq!(c.ledger, None);
    r.last_reconciled_block = Some(9_000);
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    assert_eq!(reg.ledger().stats().await.unwrap().count, 0);
    let got = reg
        .get("arbitrum", "uniswap_v3_lp", "nft-r")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.row.last_reconciled_block, got.version),
        (Some(9_000), 2)
    );
}

async fn open_rows_filter_and_skip_closed_ones(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    for i in 0..6 {
        let mut r = row(&format!("nft-{i}"), &format!("pool-{i}"));
        if i % 2 == 1 {
            r.chain = "base".into();
        }
        if i == 4 {
            r.category = "perp".into();
            r.primitive = "gmx_perp".into();
        }
        reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
            .await
            .unwrap();
        if i == 2 {
            reg.commit_ledger_and_registry(
                CommitMode::Reconciliation,
                &moved(r, RegistryStatus::Closed),
            )
            .await
            .unwrap();
        }
    }
    let ids = |rows: Vec<RegistryRow>| {
        rows.into_iter()
            .map(|r| r.identity_hash)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(reg.open_rows(&RowFilter::default()).await.unwrap()),
        ["nft-4", "nft-0", "nft-1", "nft-3", "nft-5"] // key order: chain|primitive|identity
    );
    let f = RowFilter {
        chain: Some("arbitrum".into()),
        ..RowFilter::default()
    };
    assert_eq!(ids(reg.open_rows(&f).await.unwrap()), ["nft-4", "nft-0"]);
    let f = RowFilter {
        category: Some("perp".into()),
        ..RowFilter::default()
    };
    assert_eq!(ids(reg.open_rows(&f).await.unwrap()), ["nft-4"]);
    let f = RowFilter {
        primitive: Some("uniswap_v3_lp".into()),
        chain: Some("arbitrum".into()),
        ..RowFilter::default()
    };
    assert_eq!(ids(reg.open_rows(&f).await.unwrap()), ["nft-0"]);
    // Another deployment's registry is separate.
    let other = Registry::new(store, &DeploymentId::new("other").unwrap());
    assert!(
        other
            .open_rows(&RowFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn position_events_first_write_wins_and_attribution_is_cas(store: Arc<dyn StateStore>) {
    let ev = Events::new(store.clone(), &dep());
    let open = PositionEvent::new(
        "ev-1",
        "eth-basis",
        "lp-1",
        "lp",
        PositionEventType::Open,
        t(10),
        obj(json!({"liquidity": "5"})),
    )
    .unwrap();
    let EventSaved::Stored(s) = ev.save_position_event(&open).await.unwrap() else {
        panic!("first save stores");
    };
    // The same id with other content: the first write wins, nothing written.
    let mut rewrite = open.clone();
    rewrite.payload = obj(json!({"liquidity": "6"}));
    match ev.save_position_event(&rewrite).await.unwrap() {
        EventSaved::AlreadyStored(got) => assert_eq!(got, s),
        other => panic!("expected the stored event, got {other:?}"),
    }
    for (id, kind, at, pos) in [
        ("ev-2", PositionEventType::CollectFees, 20, "lp-1"),
        ("ev-3", PositionEventType::Open, 5, "lp-2"),
        ("ev-4", PositionEventType::Close, 30, "lp-1"),
    ] {
        let e = PositionEvent::new(id, "eth-basis", pos, "lp", kind, t(at), Map::new()).unwrap();
        ev.save_position_event(&e).await.unwrap();
    }
    let all = ev
        .position_events(&EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|s| s.event.event_id.as_str())
            .collect::<Vec<_>>(),
        ["ev-4", "ev-3", "ev-2", "ev-1"]
    );
    let closes = EventFilter {
        event_type: Some(PositionEventType::Close),
        ..EventFilter::default()
    };
    assert_eq!(ev.position_events(&closes, 10).await.unwrap().len(), 1);
    let history = ev.position_history("lp-1").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|s| s.event.event_id.as_str())
            .collect::<Vec<_>>(),
        ["ev-1", "ev-2", "ev-4"]
    );
    // A set of position types: any of them; an empty set matches nothing.
    let perp = PositionEvent::new(
        "ev-5",
        "eth-basis",
        "perp-1",
        "perp",
        PositionEventType::Open,
        t(40),
        Map::new(),
    )
    .unwrap();
    ev.save_position_event(&perp).await.unwrap();
    let of_types = async |types: &[&str]| {
        let f = EventFilter {
            position_types: Some(types.iter().map(|t| (*t).to_owned()).collect()),
            ..EventFilter::default()
        };
        let got = ev.position_events(&f, 10).await.unwrap();
        got.iter()
            .map(|s| s.event.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of_types(&["lp", "perp"]).await,
        ["ev-5", "ev-4", "ev-3", "ev-2", "ev-1"]
    );
    assert_eq!(of_types(&["perp", "swap"]).await, ["ev-5"]);
    assert!(of_types(&[]).await.is_empty());
    // Rebuilt from its events (seed 002): open, modified (resized), closed; the record is the
    // latest one an event carried.
    let rec = |amount: &str| {
        tierstate_positions::PositionRecord::new(
            "perp-2",
            "arbitrum",
            tierstate_positions::PositionType::Perp,
            "ETH",
            amount.parse().unwrap(),
            amount.parse::<rust_decimal::Decimal>().unwrap() * rust_decimal::Decimal::from(2500),
        )
        .unwrap()
    };
    assert!(ev.rebuild_position("perp-2").await.unwrap().is_none());
    for (eid, kind, at, amount) in [
        ("p2-open", PositionEventType::Open, 50, Some("1")),
        ("p2-mod", PositionEventType::Modify, 60, Some("0.4")),
        ("p2-fees", PositionEventType::CollectFees, 65, None),
    ] {
        let mut e = PositionEvent::new(eid, "eth-basis", "perp-2", "perp", kind, t(at), Map::new())
            .unwrap();
        e.position = amount.map(rec);
        ev.save_position_event(&e).await.unwrap();
    }
    let r = ev.rebuild_position("perp-2").await.unwrap().unwrap();
    assert!(r.open);
    assert_eq!((r.events, r.last_event), (3, t(65)));
    assert_eq!(r.record.unwrap().amount, "0.4".parse().unwrap());
    let close = PositionEvent::new(
        "p2-close",
        "eth-basis",
        "perp-2",
        "perp",
        PositionEventType::Close,
        t(70),
        Map::new(),
    )
    .unwrap();
    ev.save_position_event(&close).await.unwrap();
    let r = ev.rebuild_position("perp-2").await.unwrap().unwrap();
    assert!(!r.open);
    assert_eq!(r.events, 4);
    assert_eq!(
        "modify".parse::<PositionEventType>().unwrap(),
        PositionEventType::Modify
    );
    // Attribution: a CAS on the version read; a stale one conflicts with both versions.
    let stored = ev.position_event("ev-1").await.unwrap().unwrap();
    let updated = ev
        .update_attribution(&stored, obj(json!({"fees": "1.5"})), 2)
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let e = ev
        .update_attribution(&stored, obj(json!({"fees": "9"})), 3)
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        AccountingError::Store(Error::Conflict {
            expected: 1,
            actual: Some(2),
            ..
        })
    ));
    let now = ev.position_event("ev-1").await.unwrap().unwrap();
    assert_eq!(now.event.attribution, Some(obj(json!({"fees": "1.5"}))));
    assert_eq!(now.event.attribution_version, 2);
    assert_eq!(now.event.payload, open.payload);
}

async fn accounting_events_carry_the_registry_row_at_write_time(store: Arc<dyn StateStore>) {
    let reg = Registry::new(store.clone(), &dep());
    let ev = Events::new(store.clone(), &dep());
    let mut r = with_handle(row("nft-a", "pool-a"), "main");
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    let lookup = PositionLookup::Handle {
        category: "lp".into(),
        handle: "main".into(),
    };
    let fee = AccountingEvent::new(
        "acc-1",
        "eth-basis",
        AccountingEventKind::Lp,
        t(1),
        obj(json!({"fees_usd": "3.10"})),
    )
    .unwrap();
    let saved = ev.save_accounting_event(&fee, Some(&lookup)).await.unwrap();
    let p = saved.position.clone().unwrap();
    assert_eq!(
        (p.row.as_str(), p.version, p.status),
        ("arbitrum|uniswap_v3_lp|nft-a", 1, RegistryStatus::Open)
    );
    // The row moves on: a later event carries its new version.
    r.status = RegistryStatus::Closed;
    reg.commit_ledger_and_registry(CommitMode::Reconciliation, &r)
        .await
        .unwrap();
    let by_row = PositionLookup::Row {
        chain: "arbitrum".into(),
        primitive: "uniswap_v3_lp".into(),
        identity_hash: "nft-a".into(),
    };
    let close = AccountingEvent::new(
        "acc-2",
        "eth-basis",
        AccountingEventKind::Lp,
        t(2),
        Map::new(),
    )
    .unwrap();
    let saved2 = ev
        .save_accounting_event(&close, Some(&by_row))
        .await
        .unwrap();
    assert_eq!(
        saved2.position.as_ref().map(|p| (p.version, p.status)),
        Some((2, RegistryStatus::Closed))
    );
    // Idempotent by id; other content is a typed conflict; a missing row is typed.
    assert_eq!(
        ev.save_accounting_event(&fee, Some(&lookup)).await.unwrap(),
        saved
    );
    let mut changed = fee.clone();
    changed.payload = obj(json!({"fees_usd": "3.11"}));
    assert!(matches!(
        ev.save_accounting_event(&changed, Some(&lookup))
            .await
            .unwrap_err(),
        AccountingError::EventConflict { .. }
    ));
    let nowhere = PositionLookup::Handle {
        category: "lp".into(),
        handle: "ghost".into(),
    };
    let swap_ev = AccountingEvent::new(
        "acc-3",
        "eth-basis",
        AccountingEventKind::Swap,
        t(3),
        Map::new(),
    )
    .unwrap();
    assert!(matches!(
        ev.save_accounting_event(&swap_ev, Some(&nowhere))
            .await
            .unwrap_err(),
        AccountingError::RowNotFound { .. }
    ));
    ev.save_accounting_event(&swap_ev, None).await.unwrap();
    assert_eq!(ev.accounting_events(None).await.unwrap().len(), 3);
    assert_eq!(
        ev.accounting_events(Some("arbitrum|uniswap_v3_lp|nft-a"))
            .await
            .unwrap(),
        [saved, saved2]
    );
}

async fn migration_state_inserts_once_merges_and_completes(store: Arc<dyn StateStore>) {
    let ev = Events::new(store.clone(), &dep());
    assert!(
        ev.migration_state("uniswap_v3_lp", "v2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        ev.update_migration_state("uniswap_v3_lp", "v2", Map::new())
            .await
            .unwrap_err(),
        AccountingError::MigrationStateMissing { .. }
    ));
    let (s, fresh) = ev
        .insert_migration_state(
            "uniswap_v3_lp",
            "v2",
            obj(json!({"phase": "shadow", "rows": 0})),
        )
        .await
        .unwrap();
    assert!(fresh);
    let (again, fresh) = ev
        .insert_migration_state("uniswap_v3_lp", "v2", obj(json!({"phase": "other"})))
        .await
        .unwrap();
    assert!(!fresh);
    assert_eq!(again, s);
    let merged = ev
        .update_migration_state("uniswap_v3_lp", "v2", obj(json!({"rows": 12})))
        .await
        .unwrap();
    assert_eq!(merged.fields, obj(json!({"phase": "shadow", "rows": 12})));
    let done = ev
        .mark_backfill_complete("uniswap_v3_lp", "v2", t(50))
        .await
        .unwrap();
    assert_eq!(done.backfill_completed_at, Some(t(50)));
    let kept = ev
        .mark_backfill_complete("uniswap_v3_lp", "v2", t(99))
        .await
        .unwrap();
    assert_eq!(kept.backfill_completed_at, Some(t(50)));
    assert_eq!(
        ev.migration_state("uniswap_v3_lp", "v2").await.unwrap(),
        Some(kept)
    );
}

/// Tasks take turns holding one auto-mode group: open a handle-less row (retrying while
/// another task's row holds it), close it, each with a ledger entry. In commit order the
/// ledger must read open X, close X, open Y, close Y …: never two rows open at once.
async fn concurrent_turns_on_one_group_are_exclusive(store: Arc<dyn StateStore>) {
    let mut tasks = Vec::new();
    for w in 0..3 {
        let reg = Registry::new(store.clone(), &dep());
        tasks.push(tokio::spawn(async move {
            for i in 0..8 {
                let mut r = row(&format!("w{w}-{i}"), "pool");
                let open = swap(&format!("open-w{w}-{i}"), i, "1", true);
                loop {
                    match reg
                        .commit_ledger_and_registry(CommitMode::Ledger(&open), &r)
                        .await
                    {
                        Ok(_) => break,
                        Err(AccountingError::Commit {
                            kind: CommitFailure::AutoModeCollision,
                            ..
                        }) => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
                r.status = RegistryStatus::Closed;
                let close = swap(&format!("close-w{w}-{i}"), i, "1", true);
                reg.commit_ledger_and_registry(CommitMode::Ledger(&close), &r)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let reg = Registry::new(store, &dep());
    let mut q = LedgerQuery::newest(1000);
    q.since = None;
    let page = reg.ledger().entries(&q).await.unwrap();
    let mut ids: Vec<(u64, String)> = page
        .entries
        .into_iter()
        .map(|e| (e.seq, e.entry.id))
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 48);
    for pair in ids.chunks(2) {
        let opened = pair[0].1.strip_prefix("open-").unwrap();
        assert_eq!(pair[1].1.strip_prefix("close-"), Some(opened), "{pair:?}");
    }
    assert!(
        reg.open_rows(&RowFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn ledger_batches_append_together_or_not_at_all(store: Arc<dyn StateStore>) {
    let l = Ledger::new(store.clone(), &dep());
    l.append(&swap("a", 0, "1", true)).await.unwrap();
    // New entries, a replay of a stored one and a repeat inside the batch.
    let batch = [
        swap("b", 1, "2", true),
        swap("a", 0, "1", true),
        swap("c", 2, "3", false),
        swap("b", 1, "2", true),
    ];
    assert_eq!(
        l.append_batch(&batch).await.unwrap(),
        [
            Recorded::Appended(2),
            Recorded::Duplicate(1),
            Recorded::Appended(3),
            Recorded::Duplicate(2)
        ]
    );
    // One conflicting member refuses the whole batch.
    let bad = [swap("d", 3, "1", true), swap("c", 2, "4", false)];
    assert!(matches!(
        l.append_batch(&bad).await.unwrap_err(),
        AccountingError::LedgerEntryConflict { seq: 3, .. }
    ));
    assert!(l.get("d").await.unwrap().is_none());
    let s = l.stats().await.unwrap();
    assert_eq!((s.count, s.successes), (3, 2));
    assert_eq!(s, l.recompute_stats().await.unwrap());
}

async fn planned_ledger_batches_commit_with_the_callers_records(store: Arc<dyn StateStore>) {
    let l = Ledger::new(store.clone(), &dep());
    l.append(&swap("tx-0", 0, "10", true)).await.unwrap();
    let state = |n: i64| json!({"n": n}).as_object().unwrap().clone();
    let entries = [swap("tx-1", 1, "20", true), swap("tx-2", 2, "30", false)];
    let plan = l.plan_append_batch(&entries).await.unwrap();
    assert_eq!(
        plan.recorded,
        [Recorded::Appended(2), Recorded::Appended(3)]
    );
    // With a failing member of the caller's batch, none of it is written.
    let stale = WriteBatch::new().put(StateWrite::update(dep(), 9, state(1)));
    assert!(store.write(stale.with(&plan)).await.is_err());
    assert_eq!(l.stats().await.unwrap().count, 1);
    // With the caller's records it all commits, totals moved once and exact.
    let ok = WriteBatch::new().put(StateWrite::create(dep(), state(1)));
    store.write(ok.with(&plan)).await.unwrap();
    let s = l.stats().await.unwrap();
    assert_eq!((s.count, s.last_seq), (3, 3));
    assert_eq!(s, l.recompute_stats().await.unwrap());
    // Planned again (a replayed tick): duplicates, nothing to write.
    let again = l.plan_append_batch(&entries).await.unwrap();
    assert_eq!(
        again.recorded,
        [Recorded::Duplicate(2), Recorded::Duplicate(3)]
    );
    let before = store.get(&dep()).await.unwrap().unwrap().version;
    store
        .write(
            WriteBatch::new()
                .put(StateWrite::update(dep(), before, state(2)))
                .with(&again),
        )
        .await
        .unwrap();
    assert_eq!(l.stats().await.unwrap(), s);
}
