//! A real full disk: a small tmpfs is filled until redb's commits fail with ENOSPC, then space
//! is freed. The same store must recover by itself (it used to stay poisoned: 0 of 80 saves
//! succeeded) and every acknowledged write must survive. Needs permission to mount a tmpfs;
//! where that is refused the test says so and skips.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tierstate_core::{DeploymentId, Retention, StateStore, StateWrite};
use tierstate_redb::{RedbConfig, RedbStore};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &std::path::Path, size: &str) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mount(dir.to_path_buf()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn state(n: u64) -> serde_json::Map<String, serde_json::Value> {
    json!({"n": n, "pad": "x".repeat(16 * 1024)})
        .as_object()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_by_itself_after_the_disk_was_full() {
    let dir = tempfile::tempdir().unwrap();
    let _mount = match mount_tmpfs(dir.path(), "8m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({why}); io_failure.rs covers recovery with an injected fault"
            );
            return;
        }
    };
    let path = dir.path().join("db.redb");
    let store = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
    let d = DeploymentId::new("d").unwrap();
    let keep = Retention::KeepAll;
    let mut acked = store
        .put(StateWrite::create(d.clone(), state(0)), keep)
        .await
        .unwrap()
        .version;

    // Fill the disk, then write until redb fails.
    let filler = dir.path().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 64 * 1024]).is_ok() {}
    drop(f);
    let mut failures = 0;
    for _ in 0..200 {
        match store
            .put(StateWrite::update(d.clone(), acked, state(acked)), keep)
            .await
        {
            Ok(done) => acked = done.version,
            Err(_) => {
                failures += 1;
                if failures >= 5 {
                    break;
                }
            }
        }
    }
    assert!(failures > 0, "the full disk never made a commit fail");

    // Free the space: the same store reopens by itself and takes writes again.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..80 {
        loop {
            // A failed write at version `acked` may be retried as is: it wrote nothing.
            match store
                .put(StateWrite::update(d.clone(), acked, state(acked)), keep)
                .await
            {
                Ok(done) => {
                    acked = done.version;
                    break;
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("no recovery after space was freed: {e}"),
            }
        }
    }
    let cur = store.get(&d).await.unwrap().unwrap();
    assert_eq!(cur.version, acked);
    drop(store);

    // Reopened from disk: every acknowledged version is there, contiguous and verified.
    let store = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
    let hist = store.history(&d, usize::MAX).await.unwrap();
    assert_eq!(hist.len() as u64, acked, "an acknowledged write was lost");
    for (i, h) in hist.iter().enumerate() {
        assert_eq!(h.version, acked - i as u64);
        assert_eq!(h.state["n"], json!(h.version - 1));
    }
}
