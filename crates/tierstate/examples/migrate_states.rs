//! Bulk payload migration of a whole store, with a progress bar: every deployment is rewritten
//! to the registry's current schema in atomic batches. Idempotent and resumable: interrupt it
//! (even with kill -9) and run it again.
//!
//! `cargo run --release --example migrate_states -- [STATES] [FILE]`
//! (defaults: 100000 states, ./migrate-demo.db; the file is seeded at schema 1 when new).

use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tierstate::{
    DeploymentId, MigrationRegistry, Retention, SqliteConfig, SqliteStore, StateMigration,
    StateStore, StateWrite, WriteBatch,
};

/// The demo schema's history: v2 renames `qty` to `size`, v3 adds `venue`.
fn registry() -> MigrationRegistry {
    let mut reg = MigrationRegistry::new();
    reg.register(StateMigration::new(2, "rename qty to size", 2, |mut s| {
        let q = s.remove("qty").ok_or("qty is missing")?;
        s.insert("size".into(), q);
        Ok(s)
    }))
    .expect("v2");
    reg.register(StateMigration::new(3, "add venue", 2, |mut s| {
        s.entry("venue").or_insert(json!("default"));
        Ok(s)
    }))
    .expect("v3");
    reg
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let states: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let path = args.next().unwrap_or_else(|| "migrate-demo.db".into());
    let fresh = !std::path::Path::new(&path).exists();
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(SqliteConfig::new(&path)).await?);

    if fresh {
        let t = Instant::now();
        let bar = ProgressBar::new(states as u64).with_message("seeding at schema 1");
        for chunk in (0..states).collect::<Vec<_>>().chunks(1000) {
            let mut b = WriteBatch::new();
            for i in chunk {
                let state = json!({"qty": format!("{}.5", i), "symbol": "BTC-PERP", "pad": "x".repeat(900)});
                let w = StateWrite::create(
                    DeploymentId::new(format!("dep-{i:07}"))?,
                    state.as_object().cloned().unwrap_or_default(),
                );
                b = b.put(w);
            }
            store.commit(b).await?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        println!(
            "seeded {states} states of ~1 KiB at schema 1 in {:.2?}",
            t.elapsed()
        );
    }

    let reg = registry();
    let bar = ProgressBar::new(states as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {per_sec} {msg}")?
            .progress_chars("=> "),
    );
    let t = Instant::now();
    let report = tierstate::migrate_states(&store, &reg, 1000, Retention::DEFAULT, |scanned, r| {
        bar.set_position(scanned);
        bar.set_message(format!(
            "migrated {} current {} failed {}",
            r.migrated, r.already_current, r.failed
        ));
    })
    .await?;
    bar.finish_and_clear();
    let took = t.elapsed();
    println!(
        "migrated {} / already current {} / failed {} in {:.2?} ({:.0} states/s) to schema {}",
        report.migrated,
        report.already_current,
        report.failed,
        took,
        (report.migrated + report.already_current) as f64 / took.as_secs_f64(),
        reg.current_version()
    );
    for (id, why) in report.failures.iter().take(5) {
        println!("  failed {id:?}: {why}");
    }
    Ok(())
}
