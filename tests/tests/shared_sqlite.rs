//! One SQLite file, several processes. By default a file belongs to one process and a second
//! is refused; opened with `Sharing::Shared` everywhere, a HOT hit in one process is never older
//! than a commit another process finished before the load began.

use std::process::Command;

use tierstate::{Sharing, SqliteConfig, StateManager, Tier};
use tierstate_tests::{count_of, counter, dep};

const WRITER: &str = env!("CARGO_BIN_EXE_tierstate-crash-writer");

/// Runs one other process that increments deployment `shared` once and exits.
fn other_process_increments(path: &std::path::Path) {
    let out = Command::new(WRITER)
        .args(["sqlite", path.to_str().unwrap(), "contend", "1"])
        .output()
        .expect("start the other process");
    assert!(
        out.status.success(),
        "the other process failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_file_keeps_hot_coherent_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let m = StateManager::builder()
        .sqlite_config(SqliteConfig::new(&path).sharing(Sharing::Shared))
        .build()
        .await
        .unwrap();
    m.create(&dep("shared"), counter(0)).await.unwrap();
    for round in 1..=5 {
        // Cached in this process...
        let before = m.load(&dep("shared")).await.unwrap().unwrap();
        let again = m.load(&dep("shared")).await.unwrap().unwrap();
        assert_eq!(
            (again.version, again.loaded_from),
            (before.version, Tier::Hot),
            "round {round}: HOT is used between commits"
        );
        // ...then another process commits.
        other_process_increments(&path);
        let after = m.load(&dep("shared")).await.unwrap().unwrap();
        assert_eq!(
            (after.version, count_of(&after)),
            (before.version + 1, count_of(&before) + 1),
            "round {round}: served v{} from {:?} after another process committed v{}",
            after.version,
            after.loaded_from,
            before.version + 1
        );
        // This process's own writes do not make it distrust HOT.
        let mine = m
            .update(&dep("shared"), after.version, counter(count_of(&after) + 1))
            .await
            .unwrap();
        let hit = m.load(&dep("shared")).await.unwrap().unwrap();
        assert_eq!((hit.version, hit.loaded_from), (mine.version, Tier::Hot));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_file_refuses_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.db");
    let m = StateManager::builder().sqlite(&path).build().await.unwrap();
    m.create(&dep("shared"), counter(0)).await.unwrap();
    let out = Command::new(WRITER)
        .args(["sqlite", path.to_str().unwrap(), "contend", "1"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a second process opened an exclusive file"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Locked") && stderr.contains("Sharing::Shared"),
        "the refusal says why and what to do: {stderr}"
    );
    assert_eq!(m.load(&dep("shared")).await.unwrap().unwrap().version, 1);
    // A second store in this process is refused the same way.
    let err = tierstate::SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(m);
    // Once the holder is gone, the file opens again.
    tierstate::SqliteStore::open(SqliteConfig::new(&path))
        .await
        .expect("opens after the holder closed");
}
