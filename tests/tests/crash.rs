//! The kill -9 crash harness. A writer process commits and prints each acknowledged version;
//! the harness SIGKILLs it at a random (seeded) moment, reopens the store and checks that every
//! acknowledged version is there, nothing regressed, history is contiguous, every checksum
//! verifies, and batches are all-or-nothing. Cycles rotate through four writers: CAS counters,
//! multi-deployment state batches, mixed batches (state + 2 documents + 3 journal entries,
//! after which every journal must be contiguous with a chain that verifies end to end), and
//! ledger + registry commits (every acknowledged commit has both parts, none has one part).
//!
//! `TIERSTATE_CRASH_CYCLES` (default 50) sets cycles per backend, `TIERSTATE_CRASH_SEED` the seed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tierstate::accounting::{Registry, RegistryStatus, RowFilter};
use tierstate_core::{JournalQuery, StateStore};
use tierstate_tests::{Backend, count_of, dep, ledger, mixed};

const WRITER: &str = env!("CARGO_BIN_EXE_tierstate-crash-writer");
const COUNTERS: u64 = 4;
const BATCH: u64 = 3;
/// Journal entries per mixed batch.
const ENTRIES: u64 = 3;

/// Which writer a cycle runs.
#[derive(Clone, Copy)]
enum Mode {
    Counter,
    Batch,
    Mixed,
    Ledger,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What one killed writer acknowledged.
#[derive(Default)]
struct Acks {
    counters: HashMap<String, u64>,
    batch: u64,
    mixed: u64,
    ledger: u64,
}

fn run_writer(backend: Backend, path: &Path, mode: Mode, rng: &mut StdRng) -> Acks {
    let (mode, n) = match mode {
        Mode::Counter => ("counter", COUNTERS),
        Mode::Batch => ("batch", BATCH),
        Mode::Mixed => ("mixed", ENTRIES),
        Mode::Ledger => ("ledger", 1),
    };
    let mut child = Command::new(WRITER)
        .args([backend.name(), path.to_str().unwrap(), mode, &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the crash writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // One cycle in ten kills before the writer is even ready (during open / first create).
    if rng.random_range(0..10) != 0 {
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("writer never became ready");
        assert_eq!(ready, "ready");
    }
    // The kill lands anywhere in the first commits. A new PostgreSQL client opens its pooled
    // connections lazily, each a SCRAM handshake of ~25 ms in a debug build, so its first
    // commits come later than an embedded store's: its window is wider.
    let window_us = match backend {
        Backend::Postgres => 150_000,
        Backend::Sqlite | Backend::Redb => 40_000,
    };
    std::thread::sleep(Duration::from_micros(rng.random_range(0..window_us)));
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    reader.join().unwrap();
    let mut acks = Acks::default();
    for line in rx.try_iter() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ack", id, v] => {
                let v: u64 = v.parse().unwrap();
                let e = acks.counters.entry(id.to_string()).or_default();
                *e = (*e).max(v);
            }
            ["batch", v] => acks.batch = acks.batch.max(v.parse().unwrap()),
            ["mixed", v] => acks.mixed = acks.mixed.max(v.parse().unwrap()),
            ["ledger", v] => acks.ledger = acks.ledger.max(v.parse().unwrap()),
            ["ready"] => {}
            other => panic!("unexpected writer output {other:?}"),
        }
    }
    acks
}

async fn verify(
    backend: Backend,
    path: &Path,
    acks: &Acks,
    seen: &mut HashMap<String, u64>,
    cycle: u32,
) {
    let store = backend
        .open(path)
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: the store does not reopen without repair: {e}"));
    let mut batch_versions = Vec::new();
    let names = (0..COUNTERS)
        .map(|i| format!("c{i}"))
        .chain((0..BATCH).map(|i| format!("b{i}")));
    for name in names {
        let acked = if name.starts_with('b') {
            acks.batch
        } else {
            acks.counters.get(&name).copied().unwrap_or(0)
        };
        let before = seen.get(&name).copied().unwrap_or(0);
        let current = store
            .get(&dep(&name))
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {name}: {e}"));
        let Some(d) = current else {
            assert_eq!(
                (acked, before),
                (0, 0),
                "cycle {cycle}: {name} vanished (acked v{acked}, seen v{before})"
            );
            if name.starts_with('b') {
                batch_versions.push(0);
            }
            continue;
        };
        assert!(
            d.version >= acked,
            "cycle {cycle}: {name} acknowledged v{acked} but stored v{}",
            d.version
        );
        assert!(
            d.version >= before,
            "cycle {cycle}: {name} regressed from v{before} to v{}",
            d.version
        );
        assert_eq!(
            count_of(&d),
            d.version - 1,
            "cycle {cycle}: {name} v{} holds a wrong count",
            d.version
        );
        let hist = store
            .history(&dep(&name), 64)
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {name} history: {e}"));
        assert_eq!(hist[0].version, d.version);
        for w in hist.windows(2) {
            assert_eq!(
                w[0].version,
                w[1].version + 1,
                "cycle {cycle}: {name} history has a gap"
            );
        }
        for h in &hist {
            assert_eq!(
                count_of(h),
                h.version - 1,
                "cycle {cycle}: {name} history v{} is wrong",
                h.version
            );
        }
        seen.insert(name.clone(), d.version);
        if name.starts_with('b') {
            batch_versions.push(d.version);
        }
    }
    assert!(
        batch_versions.windows(2).all(|w| w[0] == w[1]),
        "cycle {cycle}: a batch was torn: member versions {batch_versions:?}"
    );
    verify_mixed(&*store, acks.mixed, seen, cycle).await;
    verify_ledger(store, acks.ledger, seen, cycle).await;
}

/// The ledger + registry commits: `count` entries `tx-0 ..` in order, totals equal to a
/// recomputation, and the registry exactly as the first `count` ticks leave it (row `pos-j`
/// opened at even `j`, closed at `j + 1`): a commit with only one part would show.
async fn verify_ledger(
    store: std::sync::Arc<dyn StateStore>,
    acked: u64,
    seen: &mut HashMap<String, u64>,
    cycle: u32,
) {
    let before = seen.get("ledger").copied().unwrap_or(0);
    let reg = Registry::new(store.clone(), &ledger::id());
    let stats = reg
        .ledger()
        .stats()
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: ledger totals: {e}"));
    let count = stats.count;
    assert!(
        count >= acked && count >= before,
        "cycle {cycle}: ledger holds {count} entries, acknowledged {acked}, seen {before}"
    );
    assert_eq!(
        stats.last_seq, count,
        "cycle {cycle}: totals and journal differ"
    );
    assert_eq!(
        stats,
        reg.ledger().recompute_stats().await.unwrap(),
        "cycle {cycle}: the totals are not those of the entries"
    );
    let st = tierstate_core::StreamAddr::new("l", "ledger").unwrap();
    let mut query = Some(JournalQuery::from_seq(1, 500));
    let mut n = 0;
    while let Some(q) = query {
        let page = store.read_journal(&st, q).await.unwrap();
        for e in &page.entries {
            assert_eq!(e.seq, n + 1, "cycle {cycle}: the ledger has a gap");
            assert_eq!(
                e.value["id"],
                format!("tx-{n}"),
                "cycle {cycle}: #{} is wrong",
                e.seq
            );
            n += 1;
        }
        query = page.next;
    }
    assert_eq!(n, count, "cycle {cycle}: ledger entries and totals differ");
    for j in (0..count + 2).step_by(2) {
        let row = reg
            .get("arbitrum", "uniswap_v3_lp", &format!("pos-{j}"))
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: pos-{j}: {e}"));
        let want = if j + 1 < count {
            Some((RegistryStatus::Closed, 2))
        } else if j < count {
            Some((RegistryStatus::Open, 1))
        } else {
            None
        };
        assert_eq!(
            row.map(|r| (r.row.status, r.version)),
            want,
            "cycle {cycle}: pos-{j} disagrees with {count} ledger entries (a torn commit)"
        );
    }
    let open = reg.open_rows(&RowFilter::default()).await.unwrap();
    assert_eq!(open.len() as u64, count % 2, "cycle {cycle}: open rows");
    seen.insert("ledger".into(), count);
}

/// The mixed batches: the state, both documents and the journal all stand at the same tick
/// (no batch partly there), at or past the acknowledged one, and the journal is contiguous
/// from 1 with every entry what its tick wrote and every link of the chain intact.
async fn verify_mixed(
    store: &dyn StateStore,
    acked: u64,
    seen: &mut HashMap<String, u64>,
    cycle: u32,
) {
    let before = seen.get("mixed").copied().unwrap_or(0);
    let state = store
        .get(&mixed::id())
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: mixed state: {e}"));
    let ticks = state.as_ref().map_or(0, |d| d.version);
    assert!(
        ticks >= acked && ticks >= before,
        "cycle {cycle}: mixed state at v{ticks}, acknowledged v{acked}, seen v{before}"
    );
    if let Some(d) = &state {
        assert_eq!(
            count_of(d),
            ticks - 1,
            "cycle {cycle}: mixed state holds a wrong count"
        );
    }
    for a in mixed::docs() {
        let doc = store
            .get_document(&a)
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {a}: {e}"));
        assert_eq!(
            doc.as_ref().map_or(0, |d| d.version),
            ticks,
            "cycle {cycle}: a mixed batch was torn: {a} and the state differ"
        );
        let hist = store
            .document_history(&a, 64)
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {a} history: {e}"));
        for (i, h) in hist.iter().enumerate() {
            assert_eq!(
                h.version,
                ticks - i as u64,
                "cycle {cycle}: {a} history has a gap"
            );
            assert_eq!(
                h.value,
                mixed::doc_value(h.version - 1),
                "cycle {cycle}: {a} v{}",
                h.version
            );
        }
    }
    let st = mixed::stream();
    let info = store
        .journal_info(&st)
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: journal info: {e}"));
    assert_eq!(
        info.map_or(0, |i| i.last_seq),
        ticks * ENTRIES,
        "cycle {cycle}: a mixed batch was torn: the journal and the state differ"
    );
    // A full read, page by page: contiguous from 1, each entry its tick's, each linked to the
    // one before (the first to the stream's genesis hash).
    let mut prev = tierstate_core::journal::genesis_hash(&st);
    let mut expect_seq = 1;
    let mut query = Some(JournalQuery::from_seq(1, 500));
    while let Some(q) = query {
        let page = store
            .read_journal(&st, q)
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: journal read at #{expect_seq}: {e}"));
        for e in &page.entries {
            assert_eq!(e.seq, expect_seq, "cycle {cycle}: the journal has a gap");
            let (tick, j) = ((e.seq - 1) / ENTRIES, (e.seq - 1) % ENTRIES);
            assert_eq!(
                e.value,
                mixed::entry_value(tick, j),
                "cycle {cycle}: #{} is wrong",
                e.seq
            );
            assert_eq!(
                e.key.as_ref().map(|k| k.as_str().to_owned()),
                Some(mixed::key(tick, j))
            );
            assert_eq!(e.event_time, mixed::event_time(tick));
            assert_eq!(
                e.prev_hash, prev,
                "cycle {cycle}: the chain breaks at #{}",
                e.seq
            );
            prev = e.hash;
            expect_seq += 1;
        }
        query = page.next;
    }
    assert_eq!(
        expect_seq - 1,
        ticks * ENTRIES,
        "cycle {cycle}: journal ends early"
    );
    seen.insert("mixed".into(), ticks);
}

fn harness(backend: Backend) {
    let cycles = env_u64("TIERSTATE_CRASH_CYCLES").unwrap_or(50) as u32;
    let seed = env_u64("TIERSTATE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!(
        "crash harness: backend {} cycles {cycles} seed {seed} (TIERSTATE_CRASH_SEED={seed} to replay)",
        backend.name()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = backend.fresh_location(dir.path(), "crash");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = HashMap::new();
    let (mut acked_counter, mut acked_batch, mut acked_mixed, mut acked_ledger) =
        (0u64, 0u64, 0u64, 0u64);
    for cycle in 0..cycles {
        let mode = [Mode::Counter, Mode::Batch, Mode::Mixed, Mode::Ledger][cycle as usize % 4];
        let acks = run_writer(backend, &path, mode, &mut rng);
        acked_counter += acks.counters.len() as u64;
        acked_batch += u64::from(acks.batch > 0);
        acked_mixed += u64::from(acks.mixed > 0);
        acked_ledger += u64::from(acks.ledger > 0);
        rt.block_on(async {
            backend.settle(&path).await;
            verify(backend, &path, &acks, &mut seen, cycle).await;
        });
    }
    let total: u64 = seen.values().sum();
    eprintln!(
        "crash harness ({}): {cycles} kills survived; final versions {seen:?} (sum {total}); cycles with acks: counter {acked_counter}, batch {acked_batch}, mixed {acked_mixed}, ledger {acked_ledger}",
        backend.name()
    );
    assert!(
        total > 0,
        "the writer never committed anything: the harness tested nothing"
    );
    if cycles >= 30 {
        assert!(
            seen.get("mixed").copied().unwrap_or(0) > 0,
            "no mixed batch ever committed in {cycles} cycles: the mixed check tested nothing"
        );
        assert!(
            seen.get("ledger").copied().unwrap_or(0) > 0,
            "no ledger commit in {cycles} cycles: the ledger check tested nothing"
        );
    }
}

#[test]
fn sqlite_survives_kill_9() {
    harness(Backend::Sqlite);
}

#[test]
fn redb_survives_kill_9() {
    harness(Backend::Redb);
}

/// The client is killed; the server survives (and must hold every acknowledged commit).
#[test]
fn postgres_survives_kill_9_of_the_client() {
    if tierstate_tests::pg_url().is_none() {
        return;
    }
    harness(Backend::Postgres);
}

/// Kills a writer while it creates its database, many times, each on a fresh path: the next
/// open must find no file or a complete one (a header half written is a file no one can open).
fn creation_survives_kill_9(backend: Backend) {
    let seed = env_u64("TIERSTATE_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!(
        "creation kills: backend {} seed {seed} (TIERSTATE_CRASH_SEED={seed} to replay)",
        backend.name()
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..40 {
        let path = backend.fresh_location(dir.path(), &format!("create{round}"));
        let mut child = Command::new(WRITER)
            .args([backend.name(), path.to_str().unwrap(), "counter", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the crash writer");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..6_000)));
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");
        rt.block_on(async {
            let store = backend.open(&path).await.unwrap_or_else(|e| {
                panic!("round {round}: a database killed while being created does not open: {e}")
            });
            store
                .list(None, 10)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        });
    }
}

#[test]
fn sqlite_creation_survives_kill_9() {
    creation_survives_kill_9(Backend::Sqlite);
}

#[test]
fn redb_creation_survives_kill_9() {
    creation_survives_kill_9(Backend::Redb);
}
