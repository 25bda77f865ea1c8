//! kill -9 between submit and acknowledgement. A writer process places orders through the
//! reconciliation engine against a durable simulated venue (its state in a file, answering
//! each place 2 ms after accepting it); the harness kills it at a random (seeded) moment,
//! checks that the venue never accepted a client order id twice and that every acknowledged
//! order is recorded, then reconciles as a restarted engine would: every intent ends with
//! exactly one order on the venue, an order the killed engine never heard back about is
//! adopted (found by client id), and every stored order equals the fold of its journal.
//!
//! `TIERSTATE_CRASH_CYCLES` (default 50) sets cycles per backend, `TIERSTATE_CRASH_SEED` the seed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tierstate::accounting::Decimal;
use tierstate::orders::{Exchange, OrderEvent, OrderStatus, Reconciler};
use tierstate_tests::{Backend, orders};

const WRITER: &str = env!("CARGO_BIN_EXE_tierstate-crash-writer");

/// Runs the writer until a random kill; returns the highest count it acknowledged.
fn run_writer(backend: Backend, path: &Path, venue: &Path, rng: &mut StdRng) -> u64 {
    let mut child = Command::new(WRITER)
        .args([backend.name(), path.to_str().unwrap(), "orders", "1"])
        .env("TIERSTATE_VENUE_FILE", venue)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("writer never became ready");
    assert_eq!(ready, "ready");
    let window_us = match backend {
        Backend::Postgres => 120_000,
        _ => 60_000,
    };
    std::thread::sleep(Duration::from_micros(rng.random_range(0..window_us)));
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    reader.join().unwrap();
    rx.try_iter()
        .filter_map(|l| l.strip_prefix("placed ").map(|n| n.parse::<u64>().unwrap()))
        .max()
        .unwrap_or(0)
}

/// Checks what the killed writer left, then recovers as a restarted engine would. Returns
/// how many orders were adopted so far (found on the venue after an unanswered send).
async fn verify(backend: Backend, path: &Path, venue_file: &Path, acked: u64, cycle: u32) -> usize {
    let store = backend.open(path).await.unwrap();
    let o = orders::store(store);
    let venue = std::sync::Arc::new(orders::venue(venue_file));
    assert!(
        venue.accepted().values().all(|&n| n == 1),
        "cycle {cycle}: a client order id was accepted twice: {:?}",
        venue.accepted()
    );
    for k in 0..acked {
        let a = o.actual(&format!("o-{k:05}")).await.unwrap();
        assert!(
            a.as_ref()
                .is_some_and(|a| a.order.exchange_order_id.is_some()),
            "cycle {cycle}: acknowledged order o-{k:05} is not recorded: {a:?}"
        );
    }
    // Recover: one pass resolves whatever the kill left pending.
    let engine = Reconciler::new(o.clone(), venue.clone(), Decimal::ZERO);
    let pass = engine.reconcile_all().await.unwrap();
    assert!(pass.errors.is_empty(), "cycle {cycle}: {:?}", pass.errors);
    let intents = o.intents(None, None).await.unwrap();
    let open = venue.open_orders(None).await.unwrap();
    assert_eq!(
        open.len(),
        intents.len(),
        "cycle {cycle}: one order per intent"
    );
    assert!(
        venue.accepted().values().all(|&n| n == 1),
        "cycle {cycle}: duplicate after recovery"
    );
    let mut adopted = 0;
    for i in &intents {
        let id = &i.intent.intent_id;
        let a = o.actual(id).await.unwrap().unwrap();
        assert_eq!(a.order.status, OrderStatus::Live, "cycle {cycle}: {id}");
        o.verify(id)
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        if o.events(id)
            .await
            .unwrap()
            .iter()
            .any(|(_, e)| matches!(e, OrderEvent::Adopted { .. }))
        {
            adopted += 1;
        }
    }
    adopted
}

fn harness(backend: Backend) {
    let cycles = std::env::var("TIERSTATE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50u32);
    let seed = std::env::var("TIERSTATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!(
        "order crash harness: backend {} cycles {cycles} seed {seed}",
        backend.name()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = backend.fresh_location(dir.path(), "orders");
    let venue = dir.path().join("venue.json");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut adopted, mut acked_total) = (0, 0);
    for cycle in 0..cycles {
        let acked = run_writer(backend, &path, &venue, &mut rng);
        acked_total = acked_total.max(acked);
        adopted = rt.block_on(async {
            backend.settle(&path).await;
            verify(backend, &path, &venue, acked, cycle).await
        });
    }
    eprintln!(
        "order crash harness ({}): {cycles} kills; {acked_total} orders acknowledged, {adopted} adopted after a kill between submit and acknowledgement",
        backend.name()
    );
    assert!(
        acked_total > 0,
        "the writer never placed an order: the harness tested nothing"
    );
    if cycles >= 30 {
        assert!(
            adopted > 0,
            "no kill landed between submit and acknowledgement in {cycles} cycles"
        );
    }
}

#[test]
fn sqlite_orders_survive_kill_9_between_submit_and_ack() {
    harness(Backend::Sqlite);
}

#[test]
fn redb_orders_survive_kill_9_between_submit_and_ack() {
    harness(Backend::Redb);
}

#[test]
fn postgres_orders_survive_kill_9_between_submit_and_ack() {
    if tierstate_tests::pg_url().is_none() {
        return;
    }
    harness(Backend::Postgres);
}
