//! The operator CLI pointed at damaged, old, empty, read-only and unknown things: read
//! commands create, upgrade, lock and write nothing; `verify` reports every damaged record
//! and what a header or the engine itself counts; reads that page by an index see a gap;
//! damage inside redb is an error, never a panic; exports are all or nothing; unknown
//! deployments are errors; `at` shows what is retained.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{fixture_db, one_line_error, tierstate};
use serde_json::json;
use tierstate::accounting::{ExecutionMode, Ledger, LedgerEntry};
use tierstate::{
    Append, DeploymentId, DocAddr, DocWrite, PutMode, SqliteConfig, SqliteStore, StateStore,
    StateWrite, StreamAddr,
};

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Damages the file at `path` through the SQLite store's fault seam (as a bad disk would);
/// whether there was a record to damage.
fn inject(path: &Path, fault: tierstate::Fault) -> bool {
    use tierstate::FaultSeam;
    runtime().block_on(async {
        let store = tierstate::SqliteStore::open(tierstate::SqliteConfig::new(path))
            .await
            .unwrap();
        let done = store.inject(fault).await.unwrap();
        store.close().await;
        done
    })
}

/// Entry `seq` of `stream` with one bit of its stored checksum flipped.
fn bad_checksum(deployment: &str, stream: &str, seq: u64) -> tierstate::Fault {
    tierstate::Fault::Entry {
        stream: tierstate::StreamAddr::new(deployment, stream).unwrap(),
        seq,
        damage: tierstate::journal::EntryDamage::Checksum(tierstate::journal::Flip::Middle),
    }
}

/// Entry `seq` of `stream`, deleted.
fn gone(deployment: &str, stream: &str, seq: u64) -> tierstate::Fault {
    tierstate::Fault::Entry {
        stream: tierstate::StreamAddr::new(deployment, stream).unwrap(),
        seq,
        damage: tierstate::journal::EntryDamage::Delete,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Writes with the library into the SQLite file at `path` (opened, written, closed).
fn with_store(path: &Path, f: impl AsyncFnOnce(Arc<dyn StateStore>)) {
    runtime().block_on(async {
        let s = SqliteStore::open(SqliteConfig::new(path)).await.unwrap();
        let store: Arc<dyn StateStore> = Arc::new(s.clone());
        f(store).await;
        s.close().await;
    });
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn read_commands_create_upgrade_and_lock_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A 0-byte file (what `touch` or mkstemp leaves) stays a 0-byte file.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let e = one_line_error(&tierstate(&[
        "--db",
        &format!("sqlite:{}", empty.display()),
        "list",
    ]));
    assert!(e.contains("empty"), "{e}");
    assert_eq!(
        std::fs::metadata(&empty).unwrap().len(),
        0,
        "list wrote the file"
    );
    // An older schema is refused with the command that upgrades it, and left as it was.
    let old = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&old).unwrap();
        tierstate::sqlite::create_at_version(&c, 1).unwrap();
    }
    let e = one_line_error(&tierstate(&[
        "--db",
        &format!("sqlite:{}", old.display()),
        "list",
    ]));
    assert!(e.contains("schema 1") && e.contains("migrate"), "{e}");
    assert_eq!(
        tierstate::sqlite::pending_steps(&old).unwrap().0,
        1,
        "list upgraded the file"
    );
    // A file that is not a database leaves no lock file, whoever opens it.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database ".repeat(100)).unwrap();
    let junk_url = format!("sqlite:{}", junk.display());
    one_line_error(&tierstate(&["--db", &junk_url, "list"]));
    let r = tierstate(&["--db", &junk_url, "demo", "--ticks", "1"]);
    assert_ne!(r.code, 0);
    assert_eq!(
        files(dir.path()),
        ["empty.db", "junk.db", "old.db"],
        "side files left"
    );
    // The fixture: every read command leaves no -lock, -wal or -shm file behind.
    let (fx, db) = fixture_db();
    let _ = std::fs::remove_file(fx.path().join("fx.db-lock"));
    let before = files(fx.path());
    for args in [
        vec!["list"],
        vec!["inspect", "fx"],
        vec!["verify"],
        vec!["ledger", "fx"],
        vec!["orders", "fx"],
        vec!["history", "fy"],
        vec!["at", "fx", "2100-01-01T00:00:00Z"],
    ] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter().copied());
        let r = tierstate(&full);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(files(fx.path()), before, "{args:?} left files");
    }
}

/// A database in a directory the reading user may not write, read as that user (`nobody`):
/// every read command works and nothing appears.
#[test]
fn read_commands_work_in_a_read_only_directory() {
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        // Reading as another user needs root (runuser); CI runs as root.
        eprintln!("skipped: not root, cannot read as another user");
        return;
    }
    let (fx, db) = fixture_db();
    let _ = std::fs::remove_file(fx.path().join("fx.db-lock"));
    let dir = fx.path();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("fx.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = files(dir);
    // The binary where `nobody` may run it (the build's own directory may be private).
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("tierstate");
    std::fs::copy(env!("CARGO_BIN_EXE_tierstate"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [
        vec!["list"],
        vec!["inspect", "fx"],
        vec!["verify"],
        vec!["ledger", "fx"],
    ] {
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&bin)
            .args(["--db", &db])
            .args(&args)
            .env_remove("TIERSTATE_DB")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} as nobody: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(files(dir), before);
}

/// Every damaged record is reported with its address (not only the first of a journal), the
/// engine's own check runs, what a header counts is compared with what is stored, and every
/// deployment with any record is walked.
#[test]
fn verify_reports_every_damaged_record() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    // A deployment with a ledger and nothing else.
    with_store(&path, async |store| {
        let ledger = Ledger::new(store, &DeploymentId::new("ledger-only").unwrap());
        for n in 1..=3 {
            let e = LedgerEntry::new(
                format!("e{n}"),
                "ledger-only",
                ExecutionMode::Paper,
                common::t(n),
                "DEPOSIT",
                true,
            )
            .unwrap();
            ledger.append(&e).await.unwrap();
        }
    });
    // Two damaged trades, a damaged entry of the ledger-only deployment, a NAV snapshot
    // deleted cleanly (head and row), a ledger row deleted.
    for seq in [1, 3] {
        assert!(inject(&path, bad_checksum("fx", "strategy.trades", seq)));
    }
    assert!(inject(&path, bad_checksum("ledger-only", "ledger", 2)));
    // The oldest NAV snapshot, removed through the store (head and row: no damage).
    runtime().block_on(async {
        let store = tierstate::SqliteStore::open(tierstate::SqliteConfig::new(&path))
            .await
            .unwrap();
        let snaps = tierstate::Name::collection("portfolio.snapshots").unwrap();
        let fx = tierstate::DeploymentId::new("fx").unwrap();
        let oldest = store
            .list_documents(&fx, &snaps, None, 1)
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        store
            .write(tierstate::WriteBatch::new().delete_document(oldest.address, None))
            .await
            .unwrap();
        store.close().await;
    });
    assert!(inject(&path, gone("fx", "ledger", 2)));
    let r = tierstate(&["--db", &db, "verify"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let damaged: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("DAMAGED"))
        .collect();
    for (want, what) in [
        ("fx journal strategy.trades #1", "first damaged trade"),
        ("fx journal strategy.trades #3", "second damaged trade"),
        ("ledger-only journal ledger #2", "ledger-only deployment"),
        ("fx journal ledger #2", "deleted ledger row"),
        ("fx portfolio.snapshots", "deleted NAV snapshot"),
    ] {
        assert!(
            damaged.iter().any(|l| l.contains(want)),
            "{what} not reported:\n{}",
            r.stdout
        );
    }
    assert_eq!(damaged.len(), 5, "{}", r.stdout);
    assert!(r.stdout.contains("NAV header counts 3"), "{}", r.stdout);
    // Journal entries are named by sequence number, never as versions.
    assert!(!r.stdout.contains("strategy.trades v"), "{}", r.stdout);
    assert!(
        r.stdout.contains("verified 3 deployment(s)"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr.trim(), "error: 5 damaged record(s) found");
}

/// A byte flipped in an index page (not in any record tierstate checksums) is found by the
/// engine's own check.
#[test]
fn verify_runs_the_engines_own_check() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'ts_journal_event'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    drop(c);
    // Flip bytes at the end of the index's root page (its cells) until SQLite calls the file
    // damaged: the first flips may land in unused space.
    let mut bytes = std::fs::read(&path).unwrap();
    let end = (root * page) as usize;
    let mut broken = false;
    for back in 1..200 {
        bytes[end - back] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let c = rusqlite::Connection::open(&path).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap_or_else(|e| e.to_string());
        if ok != "ok" {
            broken = true;
            break;
        }
    }
    assert!(broken, "could not damage the index");
    let r = tierstate(&["--db", &db, "verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("engine check: ") && r.stdout.contains("DAMAGED sqlite engine"),
        "{}",
        r.stdout
    );
}

/// A ledger entry deleted from the middle: the ledger, read through its time index, refuses
/// to show a page with a gap instead of listing one entry fewer; export writes nothing.
#[test]
fn reads_through_an_index_see_a_deleted_entry() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    assert!(inject(&path, gone("fx", "ledger", 2)));
    let e = one_line_error(&tierstate(&["--db", &db, "ledger", "fx"]));
    assert!(e.contains("#2") && e.contains("missing"), "{e}");
    let out = dir.path().join("out");
    let e = one_line_error(&tierstate(&[
        "--db",
        &db,
        "export",
        "fx",
        out.to_str().unwrap(),
    ]));
    assert!(e.contains("ledger"), "{e}");
    assert!(!out.exists(), "a failed export left {:?}", files(&out));
}

/// A flipped bit in a redb file is an error on every command, never a panic.
#[test]
fn damage_inside_redb_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.redb");
    runtime().block_on(async {
        let s = tierstate::RedbStore::open(tierstate::RedbConfig::new(&path))
            .await
            .unwrap();
        s.put(
            StateWrite::create(DeploymentId::new("dep").unwrap(), obj(json!({"n": 1}))),
            Default::default(),
        )
        .await
        .unwrap();
        for k in 0..20 {
            s.put_document(DocWrite::new(
                DocAddr::new("dep", "orders.actual", &format!("quote-{k:03}")).unwrap(),
                PutMode::Create,
                obj(json!({"k": k})),
            ))
            .await
            .unwrap();
        }
        s.append(Append::new(
            StreamAddr::new("dep", "trades").unwrap(),
            common::t(1),
            obj(json!({})),
        ))
        .await
        .unwrap();
        s.close().await;
    });
    // Every copy of one key's bytes gets a byte that is not UTF-8.
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"quote-007";
    let mut hits = 0;
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            bytes[i] = 0xE1;
            hits += 1;
        }
        i += 1;
    }
    assert!(hits > 0);
    std::fs::write(&path, &bytes).unwrap();
    let db = format!("redb:{}", path.display());
    // Whatever a command reads, it never panics; the commands that read the damaged key (every
    // document is walked by verify and shown by `at`) fail, saying so.
    for (args, reads_it) in [
        (vec!["list"], false),
        (vec!["inspect", "dep"], false),
        (vec!["verify"], true),
        (vec!["at", "dep", "2100-01-01T00:00:00Z"], true),
    ] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter().copied());
        let r = tierstate(&full);
        assert!(
            !r.stderr.contains("panicked") && !r.stderr.contains("closed"),
            "{args:?}: {}",
            r.stderr
        );
        if reads_it {
            assert_ne!(r.code, 0, "{args:?} exit 0 on a damaged file: {}", r.stdout);
            assert!(
                r.stderr.contains("damaged") || r.stdout.contains("DAMAGED"),
                "{args:?}: {}{}",
                r.stdout,
                r.stderr
            );
        }
    }
}

/// Exports are all or nothing: files that exist are refused without --force; times keep
/// their microseconds; metrics are decimal text.
#[test]
fn exports_are_whole_and_keep_their_precision() {
    let (dir, db) = fixture_db();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let r = tierstate(&["--db", &db, "export", "fx", o]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let trades = std::fs::read_to_string(out.join("trades.csv")).unwrap();
    // Times to the microsecond.
    assert!(
        trades.lines().nth(1).unwrap().starts_with("2026-09-21T")
            && trades.lines().nth(1).unwrap().contains(".000000Z"),
        "{trades}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        !metrics.contains("e-") && !metrics.contains("E"),
        "{metrics}"
    );
    // A schema beside the data types every column, decimals as decimals wide enough for
    // every value written (never a float).
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("schema.json")).unwrap()).unwrap();
    let trades_schema = schema["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["table"] == "trades")
        .unwrap();
    let typed = |name: &str| {
        trades_schema["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(typed("time"), "TIMESTAMPTZ");
    assert_eq!(typed("symbol"), "VARCHAR");
    let widest_price_scale = trades
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(4)
                .unwrap()
                .split_once('.')
                .map_or(0, |(_, f)| f.len())
        })
        .max()
        .unwrap();
    assert_eq!(typed("price"), format!("DECIMAL(38, {widest_price_scale})"));
    assert!(
        schema.to_string().matches("DOUBLE").count() + schema.to_string().matches("FLOAT").count()
            == 0
    );
    // A second export refuses to overwrite, and changes nothing.
    std::fs::write(out.join("nav.csv"), "mine\n").unwrap();
    let e = one_line_error(&tierstate(&["--db", &db, "export", "fx", o]));
    assert!(e.contains("--force"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("nav.csv")).unwrap(),
        "mine\n"
    );
    let r = tierstate(&["--db", &db, "export", "fx", o, "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(out.join("nav.csv"))
            .unwrap()
            .starts_with("time,")
    );
    // No temporary file is left.
    assert!(
        files(&out).iter().all(|f| !f.starts_with('.')),
        "{:?}",
        files(&out)
    );
}

/// `--format ndjson` writes one object per row with exact decimal text, the same rows as the
/// CSV; `--since` keeps the rows at or after a time; a bad format or time creates nothing.
#[test]
fn exports_as_ndjson_and_since_a_time() {
    let (dir, db) = fixture_db();
    let (c, j) = (dir.path().join("c"), dir.path().join("j"));
    let run = |args: &[&str]| {
        let mut full = vec!["--db", db.as_str(), "export", "fx"];
        full.extend_from_slice(args);
        tierstate(&full)
    };
    assert_eq!(run(&[c.to_str().unwrap()]).code, 0);
    let r = run(&[j.to_str().unwrap(), "--format", "ndjson"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv = std::fs::read_to_string(c.join("trades.csv")).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(j.join("trades.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), csv.lines().count() - 1);
    for (obj, row) in lines.iter().zip(csv.lines().skip(1)) {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(obj["trade_id"], json!(cells[1]));
        assert_eq!(obj["price"], json!(cells[4]), "decimals stay exact text");
    }
    // Since the second trade: the first is left out, in every file that has times.
    let second = lines[1]["time"].as_str().unwrap().to_owned();
    let s = dir.path().join("s");
    let r = run(&[
        s.to_str().unwrap(),
        "--format",
        "ndjson",
        "--since",
        &second,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kept = std::fs::read_to_string(s.join("trades.ndjson")).unwrap();
    assert_eq!(kept.lines().count(), lines.len() - 1);
    assert!(!kept.contains(lines[0]["trade_id"].as_str().unwrap()));
    for f in ["positions", "metrics", "nav", "ledger"] {
        for l in std::fs::read_to_string(s.join(format!("{f}.ndjson")))
            .unwrap()
            .lines()
        {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["time"].as_str().unwrap() >= second.as_str(), "{f}: {l}");
        }
    }
    for bad in [vec!["--format", "xml"], vec!["--since", "yesterday"]] {
        let out = dir.path().join("bad");
        let mut args = vec![out.to_str().unwrap()];
        args.extend(bad);
        let e = one_line_error(&run(&args));
        assert!(e.contains("xml") || e.contains("yesterday"), "{e}");
        assert!(!out.exists());
    }
}

/// `export --format parquet` (feature `parquet`) writes the same rows as CSV, read back
/// exactly by the parquet crate's own reader: decimals as `DECIMAL(38, s)` whose unscaled
/// integers are the CSV's digits, times as UTC microseconds, empty cells as nulls.
#[cfg(feature = "parquet")]
#[test]
fn parquet_exports_read_back_exactly() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let (dir, db) = fixture_db();
    let (pq, csv) = (dir.path().join("pq"), dir.path().join("csv"));
    for (out, format) in [(&pq, "parquet"), (&csv, "csv")] {
        let r = tierstate(&[
            "--db",
            &db,
            "export",
            "fx",
            out.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let mut decimals = 0;
    for f in ["trades", "positions", "metrics", "nav", "ledger"] {
        let text = std::fs::read_to_string(csv.join(format!("{f}.csv"))).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let want: Vec<Vec<String>> = lines
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect();
        let file = std::fs::File::open(pq.join(format!("{f}.parquet"))).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let got: Vec<Vec<String>> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .get_column_iter()
                    .map(|(name, field)| match field {
                        Field::Null => String::new(),
                        Field::Str(s) => s.clone(),
                        Field::Long(n) => n.to_string(),
                        Field::TimestampMicros(us) => chrono::DateTime::from_timestamp_micros(*us)
                            .unwrap()
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        Field::Decimal(d) => {
                            decimals += 1;
                            let n = i128::from_be_bytes(d.data().try_into().unwrap());
                            let v =
                                rust_decimal::Decimal::from_i128_with_scale(n, d.scale() as u32);
                            format!("{name}={}", v.normalize())
                        }
                        other => panic!("{f}.{name}: unexpected {other:?}"),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{f}");
        for (g, w) in got.iter().zip(&want) {
            for ((g, w), name) in g.iter().zip(w).zip(&header) {
                match g.strip_prefix(&format!("{name}=")) {
                    // A decimal: the same number, exactly (scales may differ: 0.5 and 0.50).
                    Some(d) => assert_eq!(
                        d,
                        w.parse::<rust_decimal::Decimal>()
                            .unwrap()
                            .normalize()
                            .to_string(),
                        "{f}.{name}"
                    ),
                    None => assert_eq!(g, w, "{f}.{name}"),
                }
            }
        }
    }
    assert!(decimals > 10, "the fixture's money is written as decimals");
}

/// `export --all DIR` writes every deployment holding any record (a journal-only one too)
/// into the same five files with a `deployment` column first: each deployment's rows are its
/// own export's rows. It refuses to overwrite, and takes exactly one directory.
#[test]
fn export_all_writes_every_deployment() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    with_store(&path, async |store| {
        store
            .append(Append::new(
                StreamAddr::new("journal/only", "notes").unwrap(),
                common::t(1),
                obj(json!({})),
            ))
            .await
            .unwrap();
    });
    let out = dir.path().join("all");
    let o = out.to_str().unwrap();
    let r = tierstate(&["--db", &db, "export", "--all", o]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("3 deployment(s)"), "{}", r.stdout);
    let mut names = files(&out);
    names.sort();
    assert_eq!(
        names,
        [
            "ledger.csv",
            "metrics.csv",
            "nav.csv",
            "positions.csv",
            "schema.json",
            "trades.csv"
        ]
    );
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("schema.json")).unwrap()).unwrap();
    assert_eq!(
        schema["files"][0]["columns"][0],
        json!({"name": "deployment", "type": "VARCHAR"})
    );
    for id in ["fx", "fy"] {
        let one = dir.path().join(format!("one-{id}"));
        let r = tierstate(&["--db", &db, "export", id, one.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    for f in ["trades", "ledger", "nav"] {
        let all = std::fs::read_to_string(out.join(format!("{f}.csv"))).unwrap();
        let mut lines = all.lines();
        assert!(lines.next().unwrap().starts_with("deployment,"), "{f}");
        let rows: Vec<&str> = lines.collect();
        for id in ["fx", "fy"] {
            let one = dir.path().join(format!("one-{id}"));
            let own = std::fs::read_to_string(one.join(format!("{f}.csv"))).unwrap();
            let theirs: Vec<&str> = rows
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("{id},")))
                .collect();
            assert_eq!(
                theirs,
                own.lines().skip(1).collect::<Vec<_>>(),
                "{f} of {id}"
            );
        }
        assert!(
            rows.iter()
                .all(|l| l.starts_with("fx,") || l.starts_with("fy,")),
            "{f}"
        );
    }
    let e = one_line_error(&tierstate(&["--db", &db, "export", "--all", o]));
    assert!(e.contains("--force"), "{e}");
    let e = one_line_error(&tierstate(&["--db", &db, "export", "--all", "fx", o]));
    assert!(e.contains("--all DIR"), "{e}");
    let e = one_line_error(&tierstate(&["--db", &db, "export", "fx"]));
    assert!(e.contains("ID DIR"), "{e}");
}

/// `backup DEST` writes a copy that verifies and lists as the source does; it never
/// overwrites, and a damaged source leaves no copy behind.
#[test]
fn backup_writes_a_verified_copy_and_never_a_damaged_one() {
    let (dir, db) = fixture_db();
    let dest = dir.path().join("copy.db");
    let d = dest.to_str().unwrap();
    let r = tierstate(&["--db", &db, "backup", d]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("backed up to") && r.stdout.contains("engine check: ok"),
        "{}",
        r.stdout
    );
    let copy = format!("sqlite:{d}");
    assert_eq!(tierstate(&["--db", &copy, "verify"]).code, 0);
    assert_eq!(
        tierstate(&["--db", &copy, "--json", "list"]).stdout,
        tierstate(&["--db", &db, "--json", "list"]).stdout
    );
    let e = one_line_error(&tierstate(&["--db", &db, "backup", d]));
    assert!(e.contains("exists"), "{e}");
    // Damage in the source: reported, and no copy is left.
    assert!(inject(
        &dir.path().join("fx.db"),
        bad_checksum("fx", "strategy.trades", 2)
    ));
    let bad = dir.path().join("bad.db");
    let r = tierstate(&["--db", &db, "backup", bad.to_str().unwrap()]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(!bad.exists());
}

/// `copy` carries every record SQLite → PostgreSQL → redb → SQLite: each hop verifies both
/// sides, and the last copy answers every read command as the source does (commit times,
/// versions, checksums and chain hashes included). A destination holding records is refused;
/// a damaged source stops the copy, naming the record, and leaves no file behind.
#[test]
fn copy_round_trips_through_every_backend() {
    let (dir, db) = fixture_db();
    let Some(pg) = common::pg_url(&format!("copy_{}", std::process::id())) else {
        return;
    };
    let redb = format!("redb:{}", dir.path().join("hop.redb").display());
    let back = format!("sqlite:{}", dir.path().join("back.db").display());
    for (from, to) in [(&db, &pg), (&pg, &redb), (&redb, &back)] {
        let r = tierstate(&["copy", "--from", from, "--to", to]);
        assert_eq!(r.code, 0, "{from} -> {to}: {}", r.stderr);
        assert!(
            r.stdout.contains("verified both sides") && !r.stdout.contains("devpass"),
            "{}",
            r.stdout
        );
    }
    let reads: [&[&str]; 8] = [
        &["list"],
        &["inspect", "fx"],
        &["history", "fx", "--limit", "100"],
        &["ledger", "fx", "--limit", "100"],
        &["orders", "fx"],
        &["positions", "fx"],
        &["tail", "fx", "strategy.trades"],
        &["verify"],
    ];
    for args in reads {
        let ask = |url: &str| {
            let mut full = vec!["--db", url, "--json"];
            full.extend(args.iter().copied());
            let r = tierstate(&full);
            assert_eq!(r.code, 0, "{args:?} on {url}: {}", r.stderr);
            r.stdout
        };
        assert_eq!(ask(&back), ask(&db), "{args:?}");
    }
    // Into a database that holds records: refused, nothing written.
    let e = one_line_error(&tierstate(&["copy", "--from", &db, "--to", &back]));
    assert!(e.contains("empty store"), "{e}");
    // A damaged source: the copy stops at the record and no destination file is left.
    assert!(inject(
        &dir.path().join("fx.db"),
        bad_checksum("fx", "strategy.trades", 2)
    ));
    let bad = dir.path().join("bad.redb");
    let e = one_line_error(&tierstate(&[
        "copy",
        "--from",
        &db,
        "--to",
        &format!("redb:{}", bad.display()),
    ]));
    assert!(
        e.contains("damaged") && e.contains("fx journal strategy.trades #2"),
        "{e}"
    );
    assert!(!bad.exists());
}

/// Unknown deployments are an error with a non-zero exit, and nothing is created.
#[test]
fn unknown_deployments_are_errors() {
    let (dir, db) = fixture_db();
    let out = dir.path().join("nobody-out");
    for args in [
        vec!["ledger", "nobody"],
        vec!["orders", "nobody"],
        vec!["positions", "nobody"],
        vec!["at", "nobody", "2100-01-01T00:00:00Z"],
        vec!["verify", "nobody"],
        vec!["inspect", "nobody"],
        vec!["export", "nobody", out.to_str().unwrap()],
    ] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter().copied());
        let e = one_line_error(&tierstate(&full));
        assert!(e.contains("no deployment nobody"), "{args:?}: {e}");
    }
    assert!(!out.exists(), "export created a directory");
    // A damaged state makes list fail after listing it.
    let path = dir.path().join("fx.db");
    // A bit of the stored checksum of fy's version 2 (offset past its short body).
    assert!(inject(
        &path,
        tierstate::Fault::StateBytes {
            id: tierstate::DeploymentId::new("fy").unwrap(),
            version: Some(2),
            offset: 10_000,
            mask: 0x01,
        }
    ));
    let r = tierstate(&["--db", &db, "list"]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("DAMAGED"), "{}", r.stdout);
}

/// `at` a time older than the retained versions shows what is retained then (documents,
/// journals) and says what was pruned; a time before the deployment existed says so.
#[test]
fn at_shows_what_is_retained_and_names_what_was_pruned() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    let mut times = Vec::new();
    with_store(&path, async |store| {
        let id = DeploymentId::new("long").unwrap();
        let mut v = store
            .put(
                StateWrite::create(id.clone(), obj(json!({"n": 0}))),
                Default::default(),
            )
            .await
            .unwrap()
            .version;
        store
            .put_document(DocWrite::new(
                DocAddr::new("long", "settings", "risk").unwrap(),
                PutMode::Create,
                obj(json!({"limit": 5})),
            ))
            .await
            .unwrap();
        store
            .append(Append::new(
                StreamAddr::new("long", "events").unwrap(),
                common::t(1),
                obj(json!({"e": 1})),
            ))
            .await
            .unwrap();
        times.push(chrono::Utc::now());
        for n in 1..=40 {
            v = store
                .put(
                    StateWrite::update(id.clone(), v, obj(json!({"n": n}))),
                    Default::default(),
                )
                .await
                .unwrap()
                .version;
        }
    });
    let early = times[0].to_rfc3339();
    let r = tierstate(&["--db", &db, "at", "long", &early]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("state: pruned"), "{}", r.stdout);
    assert!(
        r.stdout.contains("risk v1"),
        "the document is shown: {}",
        r.stdout
    );
    assert!(r.stdout.contains("events: through #1"), "{}", r.stdout);
    assert!(
        r.stdout.contains("not retained as of then: state"),
        "{}",
        r.stdout
    );
    let r = tierstate(&["--db", &db, "at", "long", "2000-01-01T00:00:00Z"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("did not exist yet"), "{}", r.stdout);
}

/// inspect shows the journals a user looks for (families summed up); charts are the format
/// their option names, whatever the file is called, and SVG needs no font; migrate --json
/// gives numbers; --limit 0 is refused.
#[test]
fn smaller_things_say_what_they_do() {
    let (dir, db) = fixture_db();
    let path = dir.path().join("fx.db");
    with_store(&path, async |store| {
        for k in 0..20 {
            store
                .append(Append::new(
                    StreamAddr::new("fx", &format!("orders.ev.{k:030}")).unwrap(),
                    common::t(1),
                    obj(json!({})),
                ))
                .await
                .unwrap();
        }
    });
    let r = tierstate(&["--db", &db, "inspect", "fx"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("strategy.trades: 3 entries"),
        "{}",
        r.stdout
    );
    // The fixture's two order journals and these twenty: one line for the family.
    assert!(
        r.stdout.contains("orders.ev.*: 22 journals"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("orders.ev.0"), "{}", r.stdout);
    // PNG without an extension; a JPEG name refused; SVG without a font.
    let png = dir.path().join("chart");
    let r = tierstate(&["--db", &db, "nav", "fx", "--png", png.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
    let e = one_line_error(&tierstate(&["--db", &db, "nav", "fx", "--png", "x.jpg"]));
    assert!(e.contains(".jpg"), "{e}");
    assert!(!Path::new("x.jpg").exists());
    let svg = dir.path().join("n.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tierstate"))
        .args(["--db", &db, "nav", "fx", "--svg", svg.to_str().unwrap()])
        .env("TIERSTATE_FONT", "/nonexistent/font.ttf")
        .env_remove("TIERSTATE_DB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let r = tierstate(&["--db", &db, "--json", "migrate", "--dry-run"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["found"].is_u64() && v["latest"].is_u64(), "{v}");
    for args in [
        vec!["ledger", "fx", "--limit", "0"],
        vec!["history", "fy", "--limit", "0"],
    ] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter().copied());
        let e = one_line_error(&tierstate(&full));
        assert!(e.contains("--limit"), "{e}");
    }
}

/// PostgreSQL's errors read as the server's message, without the line of the server's own
/// source code that sqlx appends.
#[test]
fn postgres_errors_do_not_end_in_a_source_line() {
    if common::pg_url("unused").is_none() {
        return;
    }
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_default();
    let (base, _) = url.rsplit_once('/').unwrap();
    let e = one_line_error(&tierstate(&[
        "--db",
        &format!("{base}/no_such_database"),
        "list",
    ]));
    assert!(e.contains("does not exist"), "{e}");
    assert!(!e.contains("at line"), "{e}");
}
