//! PostgreSQL outage: stop the real server mid-run. Saves fail with a retryable typed error, HOT
//! is not updated, loads of cached states keep working; start it again and the same manager
//! recovers without a restart.
//!
//! Needs control of the server: `cargo xtask test` passes its throwaway cluster's pg_ctl
//! settings (`TIERSTATE_PG_*`). Against an external `TEST_DATABASE_URL` the test is skipped.
//! It is alone in its test binary because it stops the shared server.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tierstate::{PostgresConfig, StateManager, Tier};
use tierstate_tests::{dep, fresh_schema, pg_url};

struct Server {
    bin: String,
    data: String,
    options: String,
    as_postgres: bool,
}

impl Server {
    fn from_env() -> Option<Self> {
        Some(Self {
            bin: std::env::var("TIERSTATE_PG_BIN").ok()?,
            data: std::env::var("TIERSTATE_PG_DATA").ok()?,
            options: std::env::var("TIERSTATE_PG_OPTIONS").ok()?,
            as_postgres: std::env::var("TIERSTATE_PG_AS_POSTGRES").as_deref() == Ok("1"),
        })
    }

    fn pg_ctl(&self, args: &[&str]) {
        let exe = format!("{}/pg_ctl", self.bin);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &exe]);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(["-D", &self.data, "-w"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    fn start(&self) {
        let log = format!("{}/outage.log", self.data);
        self.pg_ctl(&["-l", &log, "-o", &self.options, "start"]);
    }
}

fn n(v: u64) -> serde_json::Map<String, serde_json::Value> {
    json!({"n": v}).as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_saves_keeps_cached_loads_and_recovers() {
    let Some(url) = pg_url() else { return };
    let Some(server) = Server::from_env() else {
        eprintln!("SKIPPED: the outage test needs control of the server (run `cargo xtask test`)");
        return;
    };
    let cfg = PostgresConfig::new(&url)
        .schema(&fresh_schema("outage"))
        .unwrap()
        .acquire_timeout(Duration::from_secs(1));
    let manager = StateManager::builder().postgres(cfg).build().await.unwrap();
    let x = dep("x");
    manager.create(&x, n(1)).await.unwrap();
    assert_eq!(
        manager.load(&x).await.unwrap().unwrap().loaded_from,
        Tier::Hot
    );

    server.stop();
    // A write racing the shutdown may reach a backend as it ends: its outcome is unknown. Once
    // the store has seen the outage (its listener lost its connection), no write is sent on a
    // connection the server ended, so each fails as not applied.
    let seen = Instant::now() + Duration::from_secs(10);
    while manager.hot_is_coherent() && Instant::now() < seen {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Run the outage checks as a task: if one fails, the server is still restarted first.
    let (m, id) = (manager.clone(), x.clone());
    let outcome = tokio::spawn(async move {
        assert!(
            !m.hot_is_coherent(),
            "the listener never noticed the outage"
        );
        let err = m.update(&id, 1, n(2)).await.unwrap_err();
        assert!(err.is_retryable(), "an outage must be retryable: {err:?}");
        assert!(err.is_not_applied(), "nothing reached the server: {err:?}");
        for _ in 0..3 {
            let cached = m
                .load(&id)
                .await
                .expect("cached loads keep working")
                .unwrap();
            assert_eq!(cached.version, 1, "HOT must not hold the failed write");
            assert_eq!(cached.loaded_from, Tier::Hot);
        }
    })
    .await;
    server.start();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }

    // Same manager, no restart: the pool reconnects, and the listener resumes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let saved = loop {
        match manager.update(&x, 1, n(2)).await {
            Ok(d) => break d,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the manager did not recover: {e:?}"),
        }
    };
    assert_eq!(saved.version, 2);
    assert_eq!(manager.load(&x).await.unwrap().unwrap().version, 2);
    while !manager.hot_is_coherent() {
        assert!(Instant::now() < deadline, "the listener never resumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
