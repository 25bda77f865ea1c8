//! Four OS processes × 250 CAS increments on one deployment in one file: exactly 1000. Four
//! processes × 250 optimistic appends to one journal: exactly 1000 entries, contiguous, each
//! once. Processes racing to hold one registry group: the constraint holds, no update is lost.

use std::collections::BTreeMap;
use std::process::Command;

use tierstate_core::{JournalQuery, StreamAddr};

use tierstate_tests::{Backend, count_of, dep};

const WRITER: &str = env!("CARGO_BIN_EXE_tierstate-crash-writer");

/// Starts `n` writer processes (`args(i)` for the i-th) that wait at a start line, gives them
/// `settle` to get there, releases them together and returns the stdout of each, asserting that
/// every one succeeded (`what` names them in the failure).
fn at_start_line(
    n: usize,
    settle: std::time::Duration,
    what: &str,
    args: impl Fn(usize) -> Vec<String>,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(WRITER)
                .args(args(i))
                .env("TIERSTATE_GO_FILE", &go)
                .output_async()
        })
        .collect();
    std::thread::sleep(settle);
    std::fs::write(&go, b"go").unwrap();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
        .collect()
}

fn contend(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = backend.fresh_location(dir.path(), "contend");
    // Let every process open the store and reach the start line, then release them together.
    let outputs = at_start_line(
        4,
        std::time::Duration::from_millis(500),
        "a contender",
        |_| {
            vec![
                backend.name().into(),
                path.to_str().unwrap().into(),
                "contend".into(),
                "250".into(),
            ]
        },
    );
    let conflicts = done_total(&outputs, "a contender");
    let rt = runtime();
    rt.block_on(async {
        let store = backend.open(&path).await.unwrap();
        let d = store.get(&dep("shared")).await.unwrap().unwrap();
        assert_eq!(
            count_of(&d),
            1000,
            "lost or doubled increments across processes"
        );
        assert_eq!(d.version, 1001);
        let hist = store.history(&dep("shared"), 2000).await.unwrap();
        assert_eq!(hist.len(), 1001);
        for (i, h) in hist.iter().enumerate() {
            assert_eq!(h.version, 1001 - i as u64, "versions not contiguous");
            assert_eq!(count_of(h), h.version - 1);
        }
    });
    eprintln!("4 processes x 250 increments: exact, {conflicts} conflicts retried");
}

/// Four processes append 250 entries each to one journal, each append expecting the last
/// seq it knows and retrying on conflict: the journal holds exactly 1000 entries, 1..=1000,
/// each process's 250 once each and in its own order, with the chain linked end to end.
fn append_race(backend: Backend) {
    const PROCS: usize = 4;
    const EACH: u64 = 250;
    let dir = tempfile::tempdir().unwrap();
    let path = backend.fresh_location(dir.path(), "append");
    let outputs = at_start_line(
        PROCS,
        std::time::Duration::from_millis(500),
        "an appender",
        |_| {
            vec![
                backend.name().into(),
                path.to_str().unwrap().into(),
                "append".into(),
                EACH.to_string(),
            ]
        },
    );
    let conflicts = done_total(&outputs, "appender finished");
    let rt = runtime();
    let total = PROCS as u64 * EACH;
    rt.block_on(async {
        let store = backend.open(&path).await.unwrap();
        let st = StreamAddr::new("shared", "ledger").unwrap();
        let info = store.journal_info(&st).await.unwrap().unwrap();
        assert_eq!(
            (info.first_seq, info.last_seq, info.count),
            (1, total, total)
        );
        let mut next_i: BTreeMap<u64, u64> = BTreeMap::new();
        let mut prev = tierstate_core::journal::genesis_hash(&st);
        let mut seq = 0;
        let mut query = Some(JournalQuery::from_seq(1, 300));
        while let Some(q) = query {
            let page = store.read_journal(&st, q).await.unwrap();
            for e in &page.entries {
                seq += 1;
                assert_eq!(e.seq, seq, "the journal is not contiguous");
                assert_eq!(e.prev_hash, prev, "the chain breaks at #{seq}");
                prev = e.hash;
                let pid = e.value["pid"].as_u64().unwrap();
                let i = e.value["i"].as_u64().unwrap();
                let want = next_i.entry(pid).or_default();
                assert_eq!(
                    i, *want,
                    "process {pid}: entry {i} duplicated or out of order"
                );
                *want += 1;
            }
            query = page.next;
        }
        assert_eq!(seq, total, "entries missing");
        assert_eq!(next_i.len(), PROCS, "{next_i:?}");
        assert!(next_i.values().all(|&n| n == EACH), "{next_i:?}");
    });
    eprintln!(
        "{} processes x {EACH} optimistic appends on {}: exact, {conflicts} conflicts retried",
        PROCS,
        backend.name()
    );
}

#[test]
fn sqlite_four_processes_append_exactly() {
    append_race(Backend::Sqlite);
}

#[test]
fn postgres_four_processes_append_exactly() {
    if tierstate_tests::pg_url().is_none() {
        return;
    }
    append_race(Backend::Postgres);
}

/// Processes take turns holding one auto-mode group of one deployment's registry: each opens a
/// handle-less row (retrying while another process's row holds the group) and closes it, with
/// a ledger entry in each commit. The ledger, in commit order, must then read open X, close X,
/// open Y, close Y …: two rows were never open at once, and no commit lost the other's update.
fn registry_race(backend: Backend) {
    use tierstate::accounting::{Registry, RowFilter};
    const PROCS: usize = 3;
    const EACH: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let path = backend.fresh_location(dir.path(), "registry");
    let outputs = at_start_line(
        PROCS,
        std::time::Duration::from_millis(500),
        "a registry writer",
        |_| {
            vec![
                backend.name().into(),
                path.to_str().unwrap().into(),
                "registry".into(),
                EACH.to_string(),
            ]
        },
    );
    let collisions = done_total(&outputs, "registry writer finished");
    let rt = runtime();
    let total = 2 * PROCS as u64 * EACH;
    rt.block_on(async {
        let store = backend.open(&path).await.unwrap();
        let reg = Registry::new(store.clone(), &dep("shared-reg"));
        let stats = reg.ledger().stats().await.unwrap();
        assert_eq!(stats.count, total, "ledger entries lost or doubled");
        assert_eq!(stats, reg.ledger().recompute_stats().await.unwrap());
        let st = StreamAddr::new("shared-reg", "ledger").unwrap();
        let mut ids = Vec::new();
        let mut query = Some(JournalQuery::from_seq(1, 500));
        while let Some(q) = query {
            let page = store.read_journal(&st, q).await.unwrap();
            ids.extend(
                page.entries
                    .iter()
                    .map(|e| e.value["id"].as_str().unwrap().to_owned()),
            );
            query = page.next;
        }
        assert_eq!(ids.len() as u64, total);
        for pair in ids.chunks(2) {
            let opened = pair[0].strip_prefix("open-").expect("an open comes first");
            assert_eq!(
                pair[1].strip_prefix("close-"),
                Some(opened),
                "two rows held the group at once: {pair:?}"
            );
            let row = reg
                .get("arbitrum", "uniswap_v3_lp", &format!("p{opened}"))
                .await
                .unwrap()
                .expect("every opened row is stored");
            assert_eq!(row.version, 2, "p{opened}: an update was lost");
        }
        assert!(
            reg.open_rows(&RowFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            reg.find_open_auto_row("arbitrum", "lp", "pool")
                .await
                .unwrap()
                .is_none()
        );
    });
    eprintln!(
        "{PROCS} processes x {EACH} open/close turns on {}: exclusive, {collisions} collisions refused",
        backend.name()
    );
}

#[test]
fn sqlite_processes_share_a_registry_group() {
    registry_race(Backend::Sqlite);
}

#[test]
fn postgres_processes_share_a_registry_group() {
    if tierstate_tests::pg_url().is_none() {
        return;
    }
    registry_race(Backend::Postgres);
}

/// A current-thread runtime for the checks after the processes exit.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The sum of the `done N` counts the processes printed (`what` names one that did not).
fn done_total(outputs: &[String], what: &str) -> u64 {
    outputs
        .iter()
        .map(|o| {
            o.lines()
                .find_map(|l| l.strip_prefix("done "))
                .unwrap_or_else(|| panic!("{what}: no done line"))
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

trait SpawnPiped {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnPiped for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start a contender")
    }
}

#[test]
fn sqlite_four_processes_exact() {
    contend(Backend::Sqlite);
}

/// A fleet restarting together: 8 processes open one fresh store at the same instant (schema
/// creation, migrations and SQLite's switch to WAL race unless handled), five times over.
/// Every open succeeds and every process's write is there.
fn eight_simultaneous_first_opens(backend: Backend) {
    let rt = runtime();
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = backend.fresh_location(dir.path(), "first_open");
        // The processes wait *before* opening: every first open races the others.
        at_start_line(
            8,
            std::time::Duration::from_millis(300),
            &format!("round {round}: a first open"),
            |i| {
                vec![
                    backend.name().into(),
                    path.to_str().unwrap().into(),
                    "open".into(),
                    i.to_string(),
                ]
            },
        );
        rt.block_on(async {
            let store = backend.open(&path).await.unwrap();
            let listed = store.list(None, 100).await.unwrap();
            assert_eq!(listed.len(), 8, "round {round}: {listed:?}");
        });
    }
}

#[test]
fn sqlite_eight_simultaneous_first_opens() {
    eight_simultaneous_first_opens(Backend::Sqlite);
}

#[test]
fn postgres_eight_simultaneous_first_opens() {
    if tierstate_tests::pg_url().is_none() {
        return;
    }
    eight_simultaneous_first_opens(Backend::Postgres);
}

#[test]
fn postgres_four_processes_exact() {
    if tierstate_tests::pg_url().is_none() {
        return;
    }
    contend(Backend::Postgres);
}

/// redb takes an exclusive lock per file, so several processes cannot share one: this test is
/// skipped for it on purpose, and `redb_second_process_is_refused` checks the refusal instead.
#[test]
fn only_multi_process_backends_are_contended() {
    let skipped: Vec<_> = Backend::ALL
        .iter()
        .filter(|b| !b.multi_process())
        .map(|b| b.name())
        .collect();
    assert_eq!(skipped, vec!["redb"]);
    assert!(Backend::ALL.iter().filter(|b| b.multi_process()).count() >= 2);
}

/// While a writer process holds a redb file, opening it from another process fails at once
/// with a typed `Locked` error (no panic, no hang).
#[test]
fn redb_second_process_is_refused() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.redb");
    let mut child = Command::new(WRITER)
        .args(["redb", path.to_str().unwrap(), "counter", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // The reader stays open until the writer is killed: a writer whose output pipe closes
    // stops (and lets go of the file), which raced the open below.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let rt = runtime();
    let started = std::time::Instant::now();
    let err = rt.block_on(Backend::Redb.open(&path)).unwrap_err();
    child.kill().unwrap();
    drop(reader);
    child.wait().unwrap();
    assert!(
        matches!(
            err,
            tierstate_core::Error::Backend {
                kind: tierstate_core::BackendErrorKind::Locked,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the refusal must not hang"
    );
    rt.block_on(Backend::Redb.open(&path))
        .expect("opens after the holder died");
}
