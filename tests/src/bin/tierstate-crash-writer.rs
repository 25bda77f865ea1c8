//! The process the crash harness kills. It writes and, after each acknowledged commit, prints
//! what was acknowledged and flushes, so the harness knows exactly what must survive.
//!
//! Usage: `tierstate-crash-writer BACKEND PATH MODE N`
//! - `counter N`: forever, CAS-increment deployments c0..cN round-robin; prints `ack cI VERSION`.
//! - `batch N`: forever, increment b0..bN together in one WriteBatch; prints `batch VERSION`.
//! - `mixed N`: forever, one tick per batch: deployment `m`'s state, two documents and N
//!   journal entries (see `tierstate_tests::mixed`); prints `mixed VERSION`.
//! - `contend N`: N increments of deployment `shared` with retry on conflict, then exits;
//!   prints `done CONFLICTS`. With `TIERSTATE_GO_FILE` set, waits for that file to exist first.
//! - `append N`: N optimistic appends (`expecting` the last seq it knows, retried on conflict)
//!   to journal `shared/ledger`, each `{"pid", "i"}`; prints `done CONFLICTS`. Waits for
//!   `TIERSTATE_GO_FILE` like `contend`.
//! - `ledger N`: forever, one ledger+registry commit per tick (see `tierstate_tests::ledger`);
//!   prints `ledger COUNT` (entries committed).
//! - `registry N`: N rounds of: open a handle-less row of the shared group `pool` of
//!   deployment `shared-reg` with a ledger entry, retrying while another process's row holds
//!   the group, then close it with a second entry; prints `done COLLISIONS`. Waits for
//!   `TIERSTATE_GO_FILE` like `contend`.
//! - `orders N`: against a durable simulated venue kept in `TIERSTATE_VENUE_FILE`, first
//!   reconciles what a killed predecessor left, then forever creates intent `o-K` and
//!   reconciles it (placed, acknowledged, recorded); prints `placed COUNT`.
//! - `open N`: waits for `TIERSTATE_GO_FILE` (if set) *before* opening, opens the store, writes
//!   deployment `opened-N`, prints `opened`, exits: many first opens of one fresh store at once.

use std::io::Write;

use chrono::Utc;
use serde_json::json;
use tierstate_core::{Append, Error, Retention, StateWrite, StreamAddr, WriteBatch};
use tierstate_tests::{Backend, CRASH_RETENTION, count_of, counter, dep, ledger, mixed, orders};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!(
            "usage: tierstate-crash-writer BACKEND PATH counter|batch|mixed|ledger|orders|contend|append|registry|open N"
        );
        std::process::exit(2);
    }
    let backend = Backend::parse(&args[1]).unwrap_or_else(|| {
        eprintln!("unknown backend {}", args[1]);
        std::process::exit(2)
    });
    let n: u64 = args[4].parse().expect("N is a number");
    if args[3] == "open" {
        wait_for_go();
    }
    let store = backend
        .open_as_writer(std::path::Path::new(&args[2]))
        .await
        .expect("open store");
    let mut out = std::io::stdout().lock();
    match args[3].as_str() {
        "counter" => {
            let ids: Vec<_> = (0..n).map(|i| dep(&format!("c{i}"))).collect();
            for id in &ids {
                match store
                    .put(StateWrite::create(id.clone(), counter(0)), CRASH_RETENTION)
                    .await
                {
                    Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                    Err(e) => panic!("create {id}: {e}"),
                }
            }
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            for i in 0.. {
                let id = &ids[i % ids.len()];
                let cur = store.get(id).await.expect("get").expect("present");
                let next = StateWrite::update(id.clone(), cur.version, counter(count_of(&cur) + 1));
                let done = store
                    .put(next, CRASH_RETENTION)
                    .await
                    .expect("sole writer never conflicts");
                if writeln!(out, "ack {id} {}", done.version)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // The harness stopped reading (it had what it needed): stop quietly.
                    std::process::exit(0);
                }
            }
        }
        "batch" => {
            let ids: Vec<_> = (0..n).map(|i| dep(&format!("b{i}"))).collect();
            if store.get(&ids[0]).await.expect("get").is_none() {
                let mut b = WriteBatch::new().with_retention(CRASH_RETENTION);
                for id in &ids {
                    b = b.put(StateWrite::create(id.clone(), counter(0)));
                }
                store.commit(b).await.expect("create batch");
            }
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            loop {
                let mut b = WriteBatch::new().with_retention(CRASH_RETENTION);
                for id in &ids {
                    let cur = store.get(id).await.expect("get").expect("present");
                    b = b.put(StateWrite::update(
                        id.clone(),
                        cur.version,
                        counter(count_of(&cur) + 1),
                    ));
                }
                let done = store.commit(b).await.expect("sole writer never conflicts");
                writeln!(out, "batch {}", done[0].version).unwrap();
                out.flush().unwrap();
            }
        }
        "mixed" => {
            let mut tick = store
                .get(&mixed::id())
                .await
                .expect("get")
                .map_or(0, |d| d.version);
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            loop {
                let done = store
                    .write(mixed::batch(tick, n))
                    .await
                    .expect("sole writer never conflicts");
                tick += 1;
                writeln!(out, "mixed {}", done.states[0].version).unwrap();
                out.flush().unwrap();
            }
        }
        "ledger" => {
            use tierstate::accounting::{CommitMode, Registry};
            let reg = Registry::new(store.clone(), &ledger::id());
            let mut k = reg.ledger().stats().await.expect("stats").count;
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            loop {
                let e = ledger::entry("l", &format!("tx-{k}"), k);
                reg.commit_ledger_and_registry(CommitMode::Ledger(&e), &ledger::row(k))
                    .await
                    .expect("sole writer commits");
                k += 1;
                writeln!(out, "ledger {k}").unwrap();
                out.flush().unwrap();
            }
        }
        "registry" => {
            use tierstate::accounting::{
                AccountingError, CommitFailure, CommitMode, Registry, RegistryRow, RegistryStatus,
            };
            let reg = Registry::new(store.clone(), &dep("shared-reg"));
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            wait_for_go();
            let pid = std::process::id();
            let mut collisions = 0u64;
            for i in 0..n {
                let mut row = RegistryRow::open(
                    "shared-reg",
                    "arbitrum",
                    "uniswap_v3_lp",
                    format!("p{pid}-{i}"),
                    "lp",
                    "pool",
                    ledger::at(i),
                )
                .unwrap();
                let open = ledger::entry("shared-reg", &format!("open-{pid}-{i}"), i);
                loop {
                    match reg
                        .commit_ledger_and_registry(CommitMode::Ledger(&open), &row)
                        .await
                    {
                        Ok(_) => break,
                        Err(AccountingError::Commit {
                            kind: CommitFailure::AutoModeCollision,
                            ..
                        }) => {
                            collisions += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        Err(e) => panic!("open: {e}"),
                    }
                }
                row.status = RegistryStatus::Closed;
                let close = ledger::entry("shared-reg", &format!("close-{pid}-{i}"), i);
                reg.commit_ledger_and_registry(CommitMode::Ledger(&close), &row)
                    .await
                    .expect("close");
            }
            writeln!(out, "done {collisions}").unwrap();
            out.flush().unwrap();
        }
        "orders" => {
            use tierstate::accounting::Decimal;
            use tierstate::orders::{OrderIntent, OrderSpec, Reconciler, Side};
            let file = std::env::var_os("TIERSTATE_VENUE_FILE").expect("TIERSTATE_VENUE_FILE");
            let venue = std::sync::Arc::new(orders::venue(std::path::Path::new(&file)));
            let o = orders::store(store.clone());
            let engine = Reconciler::new(o.clone(), venue, Decimal::ZERO);
            loop {
                match engine.reconcile_all().await {
                    Ok(p) if p.errors.is_empty() => break,
                    _ => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                }
            }
            let mut k = o.intents(None, None).await.expect("intents").len();
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            loop {
                let id = format!("o-{k:05}");
                if o.intent(&id).await.expect("intent").is_none() {
                    let price = Decimal::from(1_000 + k as i64 % 50);
                    let spec = OrderSpec::limit("X", Side::Buy, price, Decimal::ONE).unwrap();
                    o.create_intent(&OrderIntent::new(&id, "o", spec, Utc::now()).unwrap())
                        .await
                        .expect("create intent");
                }
                engine.reconcile_intent(&id).await.expect("reconcile");
                k += 1;
                writeln!(out, "placed {k}").unwrap();
                out.flush().unwrap();
            }
        }
        "contend" => {
            let id = dep("shared");
            match store
                .put(
                    StateWrite::create(id.clone(), counter(0)),
                    Retention::KeepAll,
                )
                .await
            {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("create: {e}"),
            }
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            wait_for_go();
            let mut conflicts = 0u64;
            for _ in 0..n {
                loop {
                    let cur = store.get(&id).await.expect("get").expect("present");
                    let next =
                        StateWrite::update(id.clone(), cur.version, counter(count_of(&cur) + 1));
                    match store.put(next, Retention::KeepAll).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => conflicts += 1,
                        Err(e) => panic!("increment: {e}"),
                    }
                }
            }
            writeln!(out, "done {conflicts}").unwrap();
            out.flush().unwrap();
        }
        "append" => {
            let st = StreamAddr::new("shared", "ledger").expect("valid stream");
            writeln!(out, "ready").unwrap();
            out.flush().unwrap();
            wait_for_go();
            let pid = std::process::id();
            let mut last = store
                .journal_info(&st)
                .await
                .expect("journal info")
                .map_or(0, |i| i.last_seq);
            let mut conflicts = 0u64;
            for i in 0..n {
                let value = json!({"pid": pid, "i": i});
                let value = value.as_object().expect("object").clone();
                loop {
                    let a = Append::new(st.clone(), Utc::now(), value.clone()).expecting(last);
                    match store.append(a).await {
                        Ok(done) => {
                            last = done.entry.seq;
                            break;
                        }
                        Err(Error::Conflict {
                            actual: Some(actual),
                            ..
                        }) => {
                            conflicts += 1;
                            last = actual;
                        }
                        Err(e) => panic!("append: {e}"),
                    }
                }
            }
            writeln!(out, "done {conflicts}").unwrap();
            out.flush().unwrap();
        }
        "open" => {
            store
                .put(
                    StateWrite::create(dep(&format!("opened-{n}")), counter(0)),
                    Retention::KeepAll,
                )
                .await
                .expect("write after open");
            writeln!(out, "opened").unwrap();
            out.flush().unwrap();
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}

/// Start line: every process begins together once the harness creates `TIERSTATE_GO_FILE`.
fn wait_for_go() {
    if let Some(go) = std::env::var_os("TIERSTATE_GO_FILE") {
        while !std::path::Path::new(&go).exists() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
