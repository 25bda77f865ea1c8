//! A database written by an earlier tierstate (the demo of commit 6e4015a, 20 ticks, seed 5,
//! in `fixtures/`) still opens, reads and verifies, and its run resumes on it: the records'
//! stored names and shapes did not change.

mod common;

use common::tierstate;

#[test]
fn a_database_written_by_6e4015a_opens_verifies_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let db_path = dir.path().join("demo.db");
    let venue = dir.path().join("demo.venue.json");
    std::fs::copy(fixtures.join("demo-6e4015a.db"), &db_path).unwrap();
    std::fs::copy(fixtures.join("demo-6e4015a.venue.json"), &venue).unwrap();
    let db = format!("sqlite:{}", db_path.display());
    let v = tierstate(&["--db", &db, "verify"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("no damage found"), "{}", v.stdout);
    for args in [
        vec!["inspect", "mm-demo"],
        vec!["orders", "mm-demo"],
        vec!["ledger", "mm-demo"],
        vec!["positions", "mm-demo"],
    ] {
        let mut full = vec!["--db", db.as_str()];
        full.extend(args.iter().copied());
        let r = tierstate(&full);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_tierstate"))
        .args([
            "--db", &db, "demo", "--ticks", "30", "--seed", "5", "--venue",
        ])
        .arg(&venue)
        .arg("--chart")
        .arg(dir.path().join("nav.svg"))
        .env_remove("TIERSTATE_DB")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        stdout.contains("tick 30/30") && stdout.contains(": agree"),
        "{stdout}"
    );
    let v = tierstate(&["--db", &db, "verify"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}
