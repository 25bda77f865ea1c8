//! The main job survives being killed: `tierstate demo` is killed with SIGKILL at random
//! points several times and restarted with the same command; at the end the venue, the trades,
//! the ledger and the position agree — no order placed twice, no fill lost or doubled. Ctrl-C
//! stops it cleanly between ticks.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use tierstate::accounting::Ledger;
use tierstate::orders::{FaultPlan, Side, SimExchange};
use tierstate::strategy::{StrategyState, StrategyStore};
use tierstate::{DeploymentId, RedbConfig, RedbStore, SqliteConfig, SqliteStore, StateStore};

use common::tierstate;

const TICKS: &str = "300";

fn demo(db: &str, venue: &Path) -> Command {
    demo_to(db, venue, TICKS)
}

/// `tierstate --db DB demo --ticks TICKS …` with its venue and chart beside `venue`.
fn demo_to(db: &str, venue: &Path, ticks: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tierstate"));
    c.args([
        "--db", db, "demo", "--ticks", ticks, "--seed", "11", "--venue",
    ])
    .arg(venue)
    .arg("--chart")
    .arg(venue.with_extension("svg"))
    .env_remove("TIERSTATE_DB");
    c
}

async fn open(db: &str) -> Arc<dyn StateStore> {
    if let Some(p) = db.strip_prefix("sqlite:") {
        Arc::new(SqliteStore::open(SqliteConfig::new(p)).await.unwrap())
    } else {
        let p = db.strip_prefix("redb:").unwrap();
        Arc::new(RedbStore::open(RedbConfig::new(p)).await.unwrap())
    }
}

/// Checks the books against the venue, independently of the demo's own audit.
async fn books_agree_with_the_venue(db: &str, venue_file: &Path, ticks: u64) {
    let venue = SimExchange::durable(venue_file, FaultPlan::none(), Duration::ZERO).unwrap();
    let accepted = venue.accepted();
    assert!(!accepted.is_empty());
    assert!(
        accepted.values().all(|n| *n == 1),
        "a client order id was accepted twice: {accepted:?}"
    );
    let mut venue_fills = BTreeSet::new();
    let mut venue_position = Decimal::ZERO;
    for o in venue.client_orders() {
        for f in &o.fills {
            assert!(venue_fills.insert(format!("{}:{}", o.client_order_id, f.fill_id)));
            venue_position += match o.spec.side {
                Side::Buy => f.size,
                Side::Sell => -f.size,
            };
        }
    }
    let store = open(db).await;
    let id = DeploymentId::new("mm-demo").unwrap();
    let strategy = StrategyStore::<StrategyState>::new(store.clone(), &id);
    let trades = strategy.trades(1, 1_000_000).await.unwrap();
    let ids: BTreeSet<String> = trades.iter().map(|t| t.trade_id.clone()).collect();
    assert_eq!(ids.len(), trades.len(), "a fill was booked twice");
    assert_eq!(ids, venue_fills, "booked trades and venue fills differ");
    let booked: Decimal = trades
        .iter()
        .map(|t| match t.side {
            Side::Buy => t.size,
            Side::Sell => -t.size,
        })
        .sum();
    let cp = strategy.load().await.unwrap().unwrap();
    let position = cp.state.portfolio.positions["ETH-USD"];
    assert_eq!(position, booked);
    assert_eq!(position, venue_position);
    assert_eq!(cp.state.runtime["tick"].as_u64(), Some(ticks));
    let stats = Ledger::new(store.clone(), &id).stats().await.unwrap();
    assert_eq!(
        stats.count,
        trades.len() as u64,
        "one ledger entry per fill"
    );
}

/// Kills the demo six times (its venue failing calls at `faults` while it runs), then lets a
/// run with a healthy venue finish.
/// The demo's last committed tick, read with the CLI (0 before the first).
fn committed_tick(db: &str) -> u64 {
    let r = tierstate(&["--db", db, "--json", "inspect", "mm-demo"]);
    serde_json::from_str::<serde_json::Value>(&r.stdout)
        .ok()
        .and_then(|v| v["state"]["runtime"]["tick"].as_u64())
        .unwrap_or(0)
}

fn killed_and_resumed(scheme: &str, faults: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("{scheme}:{}", dir.path().join("demo.db").display());
    let venue = dir.path().join("venue.json");
    let seed = std::env::var("TIERSTATE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("kill timing seed {seed} (TIERSTATE_KILL_SEED replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut killed_at = Vec::new();
    for _ in 0..6 {
        let mut child = demo(&db, &venue)
            .args(["--faults", faults])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        killed_at.push(committed_tick(&db));
    }
    eprintln!("killed after ticks {killed_at:?}");
    let total: u64 = TICKS.parse().unwrap();
    let mid_run = killed_at.iter().filter(|t| **t > 0 && **t < total).count();
    assert!(mid_run >= 2, "the kills should land mid-run: {killed_at:?}");
    let out = demo(&db, &venue).stderr(Stdio::null()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("tick {TICKS}/{TICKS}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(": agree;") && stdout.contains("accepted twice: 0"),
        "{stdout}"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(books_agree_with_the_venue(&db, &venue, total));
    let v = tierstate(&["--db", &db, "verify"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("no damage found"));
}

#[test]
fn sqlite_demo_killed_at_random_points_resumes_with_books_that_agree() {
    killed_and_resumed("sqlite", "0");
}

#[test]
fn sqlite_demo_killed_while_the_venue_fails_calls_still_never_doubles_an_order_or_a_fill() {
    killed_and_resumed("sqlite", "0.05");
}

#[test]
fn redb_demo_killed_at_random_points_resumes_with_books_that_agree() {
    killed_and_resumed("redb", "0");
}

#[test]
fn ctrl_c_stops_between_ticks_and_the_next_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let venue = dir.path().join("venue.json");
    let child = demo(&db, &venue)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has committed a tick, its Ctrl-C handler is surely in place.
    let started = std::time::Instant::now();
    while committed_tick(&db) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the demo never ticked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // Interrupted, as shells report SIGINT: 130, not success.
    assert_eq!(out.status.code(), Some(130), "{stdout}{stderr}");
    assert!(stderr.contains("stopped by Ctrl-C"), "{stderr}");
    assert!(
        stdout.contains("audit:"),
        "the summary is still printed: {stdout}"
    );
    let out = demo(&db, &venue).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(stderr.contains("resuming after tick"), "{stderr}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(books_agree_with_the_venue(&db, &venue, committed_tick(&db)));
}

#[test]
fn a_run_refuses_a_venue_it_did_not_trade_on() {
    let dir = tempfile::tempdir().unwrap();
    let venue = dir.path().join("venue.json");
    let a = format!("sqlite:{}", dir.path().join("a.db").display());
    let b = format!("sqlite:{}", dir.path().join("b.db").display());
    let ran = |db: &str, venue: &Path| {
        common::tierstate(&[
            "--db",
            db,
            "demo",
            "--ticks",
            "20",
            "--venue",
            venue.to_str().unwrap(),
        ])
    };
    assert_eq!(ran(&a, &venue).code, 0);
    // Another database on that venue would book fills that are not its own.
    let e = common::one_line_error(&ran(&b, &venue));
    assert!(e.contains("belongs to another database"), "{e}");
    // A started run without its venue file cannot check its orders.
    let e = common::one_line_error(&ran(&a, &dir.path().join("other.json")));
    assert!(e.contains("is missing"), "{e}");
}

#[test]
fn the_demo_and_the_cli_work_on_postgres() {
    let Some(db) = common::pg_url(&format!("cli_demo_{}", std::process::id())) else {
        return;
    };
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let venue = dir.path().join("venue.json");
    let out = demo_to(&db, &venue, "40").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("tick 40/40") && stdout.contains(": agree;"),
        "{stdout}"
    );
    for args in [vec!["verify"], vec!["list"], vec!["inspect", "mm-demo"]] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter().copied());
        let r = tierstate(&full);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        if let Some(password) = url.split_once("://").and_then(|(_, rest)| {
            let userinfo = rest.split_once('@')?.0;
            userinfo.split_once(':').map(|(_, p)| p.to_owned())
        }) {
            assert!(!r.stdout.contains(&password) && !r.stderr.contains(&password));
        }
    }
}

/// Runs `tierstate --db DB demo --ticks N --venue V …` to completion.
fn demo_run(db: &str, venue: &Path, ticks: &str, extra: &[&str]) -> common::Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tierstate"));
    c.args(["--db", db, "demo", "--ticks", ticks, "--venue"])
        .arg(venue)
        .args(extra)
        .env_remove("TIERSTATE_DB");
    if !extra.contains(&"--seed") {
        c.args(["--seed", "11"]);
    }
    if !extra.contains(&"--chart") {
        c.arg("--chart").arg(venue.with_extension("svg"));
    }
    let out = c.output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Starts a slow demo and waits until it has committed a tick.
fn running_demo(db: &str, venue: &Path) -> std::process::Child {
    let child = demo_to(db, venue, "100000")
        .args(["--tick-ms", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while committed_tick(db) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never ticked");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Two demos on one database: the second is refused at once, with a one-line error, and the
/// first one's books stay in agreement with its venue.
#[test]
fn a_second_demo_on_the_same_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let venue = dir.path().join("venue.json");
    let mut first = running_demo(&db, &venue);
    // The same venue file, and another venue file: both refused while the first runs.
    for v in [venue.clone(), dir.path().join("other.json")] {
        let second = demo_run(&db, &v, "300", &[]);
        let e = common::one_line_error(&second);
        assert!(e.contains("in use"), "{e}");
    }
    // Another database on the first one's venue file: refused too (one process per venue).
    let other_db = format!("sqlite:{}", dir.path().join("b.db").display());
    let e = common::one_line_error(&demo_run(&other_db, &venue, "10", &[]));
    assert!(e.contains("in use by another process"), "{e}");
    Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();
    // Resumed alone, the books agree with the venue.
    let ticked = committed_tick(&db);
    let r = demo_run(&db, &venue, &(ticked + 5).to_string(), &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(": agree"), "{}", r.stdout);
}

/// A venue file of another run with the same seed (whose client order ids are the same) is
/// refused: the file carries the identity of the database it belongs to.
#[test]
fn a_venue_of_another_run_with_the_same_seed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        format!("sqlite:{}", dir.path().join("a.db").display()),
        format!("sqlite:{}", dir.path().join("b.db").display()),
    );
    let (va, vb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    assert_eq!(demo_run(&a, &va, "20", &[]).code, 0);
    assert_eq!(demo_run(&b, &vb, "20", &[]).code, 0);
    let e = common::one_line_error(&demo_run(&b, &va, "30", &[]));
    assert!(e.contains("belongs to another database"), "{e}");
    // Its own venue still works.
    let r = demo_run(&b, &vb, "30", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(": agree"), "{}", r.stdout);
}

/// A venue whose file cannot be written stops the demo with an error (it does not trade on in
/// memory); once the disk is back the run resumes and the books agree with the venue.
#[test]
fn a_venue_that_cannot_save_stops_the_demo_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let venue = dir.path().join("venue.json");
    assert_eq!(demo_run(&db, &venue, "10", &[]).code, 0);
    let before = std::fs::read(&venue).unwrap();
    // The venue's log cannot be written (its name is taken by a directory; what it held is
    // kept aside): the venue refuses to trade, as on a disk that refuses writes.
    let log = dir.path().join("venue.json.log");
    let aside = dir.path().join("aside.log");
    std::fs::rename(&log, &aside).unwrap();
    std::fs::create_dir(&log).unwrap();
    let r = demo_run(&db, &venue, "20", &[]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    let e = r
        .stderr
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        e.starts_with("error: ") && e.contains("venue.json"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(&venue).unwrap(),
        before,
        "the venue file changed"
    );
    assert_eq!(
        committed_tick(&db),
        10,
        "a tick committed without its venue"
    );
    std::fs::remove_dir(&log).unwrap();
    std::fs::rename(&aside, &log).unwrap();
    let r = demo_run(&db, &venue, "20", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("tick 20/20") && r.stdout.contains(": agree"),
        "{}",
        r.stdout
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(books_agree_with_the_venue(&db, &venue, 20));
}

/// What a run says: the total already reached is not "tick 1000/10"; the next commands are
/// printed one per line, runnable; rejected quotes are not left active; a bad deployment id
/// or chart name creates nothing.
#[test]
fn the_demo_says_what_it_did_and_refuses_bad_arguments_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.db");
    let db = format!("sqlite:{}", path.display());
    let venue = dir.path().join("venue.json");
    // Bad arguments: nothing is created.
    for (args, says) in [
        (vec!["--deployment", ""], "--deployment"),
        (vec!["--chart", "x.jpg"], ".svg or .png"),
        (vec!["--faults", "0.9"], "--faults"),
    ] {
        let e = common::one_line_error(&demo_run(&db, &venue, "5", &args));
        assert!(e.contains(says), "{e}");
        assert!(!path.exists() && !venue.exists(), "{args:?} created files");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
    let r = demo_run(&db, &venue, "30", &["--faults", "0.2", "--seed", "3"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let next: Vec<&str> = r
        .stdout
        .lines()
        .skip_while(|l| *l != "next:")
        .skip(1)
        .collect();
    assert!(next.len() >= 5, "{}", r.stdout);
    for l in &next {
        assert!(!l.contains('|') && !l.contains('$'), "{l}");
        let args: Vec<&str> = l.split_whitespace().skip(1).collect();
        // In the run's directory: `nav … --svg nav.svg` and `export` write relative files.
        let ran = common::tierstate_in(dir.path(), &args);
        assert_eq!(ran.code, 0, "{l}: {}", ran.stderr);
    }
    // The total is reached: a smaller --ticks says so.
    let r = demo_run(&db, &venue, "10", &["--faults", "0.2", "--seed", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("already at tick 30, past --ticks 10"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("30/10"), "{}", r.stdout);
    // No intent is left active beside a rejected order.
    let o = tierstate(&["--db", &db, "--json", "orders", "mm-demo"]);
    let orders: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    for i in orders.as_array().unwrap() {
        if i["actual"]["status"] == "rejected" {
            assert_ne!(i["intent"]["status"], "active", "{i}");
        }
    }
    // A PNG chart when the name says PNG.
    let png = dir.path().join("nav.png");
    let r = demo_run(
        &db,
        &venue,
        "31",
        &[
            "--faults",
            "0.2",
            "--seed",
            "3",
            "--chart",
            png.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let head = std::fs::read(&png).unwrap();
    assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
}

/// On PostgreSQL (shared by machines, so no file lock can say it) a second demo on the same
/// deployment is refused by the deployment's writer lease, naming the process that holds it;
/// once the first stops cleanly the deployment is free again.
#[test]
fn a_second_demo_on_one_postgres_deployment_is_refused_by_its_lease() {
    let Some(db) = common::pg_url(&format!("cli_lease_{}", std::process::id())) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut first = running_demo(&db, &dir.path().join("a.json"));
    let second = demo_run(&db, &dir.path().join("b.json"), "300", &[]);
    let e = second
        .stderr
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(second.code, 0, "{}", second.stdout);
    assert!(
        e.contains("is being written by process") && e.contains(&first.id().to_string()),
        "{}",
        second.stderr
    );
    Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();
    let ticked = committed_tick(&db);
    let r = demo_run(
        &db,
        &dir.path().join("a.json"),
        &(ticked + 3).to_string(),
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}
