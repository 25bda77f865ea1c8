//! The CLI from the command line: the human output of every read command on a fixture
//! database (insta snapshots, commit times masked), `--json` for scripts, and one-line errors
//! with a non-zero exit for bad URLs, missing files, damaged databases and bad arguments.

mod common;

use common::{fixture_db, one_line_error, regex_escape, tierstate};

/// Masks what differs between runs: commit times and the temporary directory.
fn settings(dir: &std::path::Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&dir.display().to_string()), "[dir]");
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[time]");
    // The engine stamps each order with the (real) time it last synced it.
    s.add_filter(r#""synced_us":\d+"#, r#""synced_us":[us]"#);
    s.add_filter(r"\b000\d{16}\|", "[us]|");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn every_read_command_prints_what_the_fixture_holds() {
    let (dir, db) = fixture_db();
    let svg = dir.path().join("nav.svg");
    let svg = svg.to_str().unwrap();
    let out = dir.path().join("export");
    let out = out.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("list", vec!["list"]),
        ("inspect", vec!["inspect", "fx"]),
        ("history", vec!["history", "fy"]),
        ("diff", vec!["diff", "fy", "1", "2"]),
        ("verify", vec!["verify"]),
        ("orders", vec!["orders", "fx"]),
        ("orders_open", vec!["orders", "fx", "--open"]),
        ("ledger", vec!["ledger", "fx", "--limit", "2"]),
        ("positions", vec!["positions", "fx"]),
        (
            "tail",
            vec!["tail", "fx", "strategy.trades", "--lines", "2"],
        ),
        ("at_before", vec!["at", "fx", "2000-01-01T00:00:00Z"]),
        (
            "at_now",
            vec!["at", "fx", "2100-01-01T00:00:00Z", "--limit", "2"],
        ),
        ("nav", vec!["nav", "fx", "--svg", svg]),
        ("export", vec!["export", "fx", out]),
        ("migrate_dry_run", vec!["migrate", "--dry-run"]),
    ];
    let _guard = settings(dir.path()).bind_to_scope();
    for (name, args) in cases {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args);
        let r = tierstate(&full);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        insta::assert_snapshot!(name, r.stdout);
    }
    // The chart and the exported files are there and hold what the commands said.
    let chart = std::fs::read_to_string(dir.path().join("nav.svg")).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("polyline"),
        "an SVG line chart"
    );
    let trades = std::fs::read_to_string(dir.path().join("export/trades.csv")).unwrap();
    assert_eq!(
        trades.lines().count(),
        4,
        "a header and three trades:\n{trades}"
    );
    assert!(trades.contains("tr-2,ETH-USD,sell,2520.00,0.50,0.10"));
}

#[test]
fn json_output_is_for_scripts() {
    let (_dir, db) = fixture_db();
    let r = tierstate(&["--db", &db, "--json", "inspect", "fx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["state"]["portfolio"]["positions"]["ETH-USD"], "0.50");
    assert_eq!(v["tier"], "WARM");
    let r = tierstate(&["--db", &db, "--json", "diff", "fy", "1", "2"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let ops: Vec<&str> = v["patch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops.len(), 3, "{v}");
    for cmd in [
        vec!["list"],
        vec!["history", "fx"],
        vec!["verify"],
        vec!["orders", "fx"],
        vec!["ledger", "fx"],
        vec!["positions", "fx"],
        vec!["at", "fx", "2100-01-01T00:00:00Z"],
    ] {
        let mut full = vec!["--db", db.as_str(), "--json"];
        full.extend(cmd.iter().copied());
        let r = tierstate(&full);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout)
            .unwrap_or_else(|e| panic!("{cmd:?} prints JSON: {e}\n{}", r.stdout));
    }
    // Following a journal prints one JSON object per line.
    let r = tierstate(&[
        "--db", &db, "--json", "tail", "fx", "ledger", "--lines", "3",
    ]);
    assert_eq!(r.stdout.lines().count(), 3);
    for l in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["seq"].as_u64().is_some());
    }
}

#[test]
fn bad_urls_missing_files_and_bad_arguments_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let e = one_line_error(&tierstate(&["--db", "mysql://u:hunter2@h/db", "list"]));
    assert!(
        e.contains("unknown database URL") && !e.contains("hunter2"),
        "{e}"
    );
    let missing = dir.path().join("nope.db");
    let e = one_line_error(&tierstate(&[
        "--db",
        &format!("sqlite:{}", missing.display()),
        "list",
    ]));
    assert!(e.contains("no database at"), "{e}");
    assert!(!missing.exists(), "a read command never creates a database");
    let e = one_line_error(&tierstate(&[
        "--db",
        &format!("redb:{}", missing.display()),
        "verify",
    ]));
    assert!(e.contains("no database at"), "{e}");
    // An unreachable server: the password is never echoed.
    let e = one_line_error(&tierstate(&[
        "--db",
        "postgres://u:hunter2@127.0.0.1:1/db",
        "list",
    ]));
    assert!(!e.contains("hunter2"), "{e}");

    let (_fx, db) = fixture_db();
    let e = one_line_error(&tierstate(&["--db", &db, "inspect", "nobody"]));
    assert!(e.contains("no deployment nobody"), "{e}");
    let e = one_line_error(&tierstate(&["--db", &db, "inspect", ""]));
    assert!(e.contains("invalid"), "{e}");
    let e = one_line_error(&tierstate(&["--db", &db, "at", "fx", "yesterday"]));
    assert!(e.contains("RFC 3339"), "{e}");
    let e = one_line_error(&tierstate(&["--db", &db, "diff", "fy", "1", "9"]));
    assert!(e.contains("no retained version 9"), "{e}");
    let e = one_line_error(&tierstate(&["--db", &db, "tail", "fx", "no.such.stream"]));
    assert!(e.contains("no journal"), "{e}");
    let e = one_line_error(&tierstate(&[
        "--db", &db, "export", "fx", "--format", "xlsx", "x",
    ]));
    assert!(e.contains("xlsx") && e.contains("csv, ndjson"), "{e}");
    // A build without Parquet says how to get it.
    if cfg!(not(feature = "parquet")) {
        let e = one_line_error(&tierstate(&[
            "--db", &db, "export", "fx", "--format", "parquet", "x",
        ]));
        assert!(e.contains("--features parquet"), "{e}");
    }
    let e = one_line_error(&tierstate(&["--db", &db, "nav", "fx"]));
    assert!(e.contains("--svg"), "{e}");
}

#[test]
fn files_that_are_not_databases_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        b"this is not a database, just some bytes".repeat(200),
    )
    .unwrap();
    for scheme in ["sqlite", "redb"] {
        let e = one_line_error(&tierstate(&[
            "--db",
            &format!("{scheme}:{}", junk.display()),
            "list",
        ]));
        assert!(e.len() < 400, "{e}");
    }
}

#[test]
fn verify_finds_a_damaged_journal_entry_and_fails() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    // One bit of the trade's stored body flipped, as a bad disk page would.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use tierstate::FaultSeam;
        let store = tierstate::SqliteStore::open(tierstate::SqliteConfig::new(&path))
            .await
            .unwrap();
        let damaged = store
            .inject(tierstate::Fault::Entry {
                stream: tierstate::StreamAddr::new("fx", "strategy.trades").unwrap(),
                seq: 2,
                damage: tierstate::journal::EntryDamage::Body(tierstate::journal::Flip::Middle),
            })
            .await
            .unwrap();
        assert!(damaged);
        store.close().await;
    });
    let r = tierstate(&["--db", &db, "verify"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("DAMAGED") && r.stdout.contains("strategy.trades"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr.trim(), "error: 1 damaged record(s) found");
    // The other records are still walked and counted.
    assert!(
        r.stdout.contains("verified 2 deployment(s)"),
        "{}",
        r.stdout
    );
    // Reading the damaged entry is refused, never shown.
    let e = one_line_error(&tierstate(&["--db", &db, "tail", "fx", "strategy.trades"]));
    assert!(e.contains("integrity"), "{e}");
}

#[test]
fn migrate_upgrades_an_old_database_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        tierstate::sqlite::create_at_version(&c, 2).unwrap();
    }
    let db = format!("sqlite:{}", path.display());
    let r = tierstate(&["--db", &db, "migrate", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let latest = tierstate::sqlite::SCHEMA_VERSION;
    assert!(
        r.stdout.contains(&format!("schema 2, latest {latest}"))
            && (3..=latest).all(|v| r.stdout.contains(&format!("step {v}:"))),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("dry run: nothing changed"));
    // A backup that cannot be written stops the migration before anything changes.
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, b"x").unwrap();
    let r = tierstate(&[
        "--db",
        &db,
        "migrate",
        "--backup-to",
        taken.to_str().unwrap(),
    ]);
    let e = one_line_error(&r);
    assert!(e.contains("exists") && e.contains("--no-backup"), "{e}");
    let version = |p: &std::path::Path| -> u32 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&path), 2, "nothing migrated");
    let r = tierstate(&["--db", &db, "migrate"]);
    assert!(
        r.stdout.contains(&format!("upgraded to {latest}")),
        "{} {}",
        r.stdout,
        r.stderr
    );
    // The backup was taken first, beside the file, verified, at the old schema.
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("backup: "))
        .expect("a backup line");
    assert!(line.ends_with("bytes, verified)"), "{line}");
    let backup = std::path::PathBuf::from(line["backup: ".len()..].split(" (").next().unwrap());
    assert_eq!(backup.parent(), path.parent());
    assert!(
        backup
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("old.db.before-migrate-v2-")
    );
    assert_eq!(
        version(&backup),
        2,
        "the backup holds the database as it was"
    );
    assert_eq!(version(&path), latest, "the database itself is migrated");
    let r = tierstate(&["--db", &db, "migrate", "--dry-run"]);
    assert!(
        r.stdout
            .contains(&format!("schema {latest}, latest {latest}"))
            && r.stdout.contains("up to date"),
        "{}",
        r.stdout
    );
    assert_eq!(tierstate(&["--db", &db, "list"]).code, 0);
}

#[test]
fn tail_follow_prints_entries_as_they_commit() {
    let (dir, db) = fixture_db();
    let (mut child, rx) = spawn_lines(&[
        "--db",
        &db,
        "tail",
        "fx",
        "strategy.trades",
        "--lines",
        "1",
        "--follow",
    ]);
    let wait = std::time::Duration::from_secs(20);
    // The newest entry first: the tail has read where the journal ends.
    let first = rx.recv_timeout(wait).expect("the newest entry");
    assert!(first.starts_with("#3 "), "{first}");
    // Another process commits an entry; the tail prints it.
    append_beside(
        &dir.path().join("fx.db"),
        &[(Some("tr-live"), serde_json::json!({"note": "live"}))],
    );
    let next = rx
        .recv_timeout(wait)
        .expect("the entry committed while following");
    assert!(
        next.starts_with("#4 ") && next.contains("tr-live"),
        "{next}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `tail --from-seq N` resumes exactly at #N: a relay that stopped after #2 gets #3 and what
/// commits next, once each; a start the journal no longer keeps is refused, not skipped.
#[test]
fn tail_from_seq_resumes_without_a_gap_or_a_duplicate() {
    let (dir, db) = fixture_db();
    let seqs = |out: &str| -> Vec<u64> {
        out.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let r = tierstate(&[
        "--db",
        &db,
        "--json",
        "tail",
        "fx",
        "strategy.trades",
        "--from-seq",
        "2",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(seqs(&r.stdout), [2, 3]);
    let r = tierstate(&[
        "--db",
        &db,
        "--json",
        "tail",
        "fx",
        "strategy.trades",
        "--from-seq",
        "4",
    ]);
    assert_eq!((r.code, seqs(&r.stdout)), (0, vec![]));
    let e = tierstate(&[
        "--db",
        &db,
        "tail",
        "fx",
        "strategy.trades",
        "--from-seq",
        "2",
        "--lines",
        "3",
    ]);
    assert_ne!(e.code, 0, "--from-seq and --lines together are refused");
    // Following from #3: #3, then what another process commits, each once.
    let (mut child, rx) = spawn_lines(&[
        "--db",
        &db,
        "--json",
        "tail",
        "fx",
        "strategy.trades",
        "--from-seq",
        "3",
        "--follow",
    ]);
    let wait = std::time::Duration::from_secs(20);
    assert_eq!(seqs(&rx.recv_timeout(wait).unwrap()), [3]);
    append_beside(
        &dir.path().join("fx.db"),
        &[
            (None, serde_json::json!({ "n": 0 })),
            (None, serde_json::json!({ "n": 1 })),
        ],
    );
    assert_eq!(seqs(&rx.recv_timeout(wait).unwrap()), [4]);
    assert_eq!(seqs(&rx.recv_timeout(wait).unwrap()), [5]);
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(1200))
            .is_err(),
        "a duplicate"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Entries before #3 truncated: resuming at #1 would skip two, so it is refused.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tierstate::{SqliteConfig, SqliteStore, StateStore, StreamAddr, TruncateBefore};
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("fx.db")))
            .await
            .unwrap();
        let s = StreamAddr::new("fx", "strategy.trades").unwrap();
        store
            .truncate_journal(&s, TruncateBefore::Seq(3))
            .await
            .unwrap();
        store.close().await;
    });
    let e = common::one_line_error(&tierstate(&[
        "--db",
        &db,
        "tail",
        "fx",
        "strategy.trades",
        "--from-seq",
        "1",
    ]));
    assert!(e.contains("truncated") && e.contains("#1..#2"), "{e}");
}

/// `tierstate ARGS` running in the background, and its stdout line by line.
fn spawn_lines(args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tierstate"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Appends `entries` (idempotency key, value) to `fx`'s trades journal from a store of its
/// own, sharing the file: another process's commits, as a running tail sees them.
fn append_beside(db_file: &std::path::Path, entries: &[(Option<&str>, serde_json::Value)]) {
    use tierstate::{Append, Name, Sharing, SqliteConfig, SqliteStore, StateStore, StreamAddr};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(db_file).sharing(Sharing::Shared))
            .await
            .unwrap();
        let s = StreamAddr::new("fx", "strategy.trades").unwrap();
        for (key, value) in entries {
            let mut a = Append::new(
                s.clone(),
                common::t(999),
                value.as_object().unwrap().clone(),
            );
            if let Some(k) = key {
                a = a.with_key(Name::key(k).unwrap());
            }
            store.append(a).await.unwrap();
        }
    });
}
