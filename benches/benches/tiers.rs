//! Criterion benches of the three hot paths: HOT get, WARM load (SQLite), durable CAS update.
//! `cargo xtask bench` prints the summary table with baselines; these give criterion's detail.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tierstate::{DeploymentId, HotConfig, PutMode, SqliteConfig, StateManager, StateWrite};
use tierstate_benches::state_of_size;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir_in(".").unwrap();
    let id = DeploymentId::new("bench").unwrap();
    let (hot_m, cold_m) = rt.block_on(async {
        let path = dir.path().join("c.db");
        let hot = StateManager::builder()
            .sqlite_config(SqliteConfig::new(&path))
            .hot(HotConfig::default())
            .build()
            .await
            .unwrap();
        hot.create(&id, state_of_size(1024, 0)).await.unwrap();
        let cold = StateManager::builder()
            .sqlite(&path)
            .without_hot()
            .build()
            .await
            .unwrap();
        (hot, cold)
    });
    let mut g = c.benchmark_group("tiers");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("hot_load_1k", |b| {
        b.to_async(&rt)
            .iter(|| async { hot_m.load(&id).await.unwrap() })
    });
    g.bench_function("warm_load_1k_sqlite", |b| {
        b.to_async(&rt)
            .iter(|| async { cold_m.load(&id).await.unwrap() })
    });
    let version = Arc::new(std::sync::atomic::AtomicU64::new(1));
    g.sample_size(20);
    g.bench_function("durable_cas_1k_sqlite", |b| {
        b.to_async(&rt).iter(|| async {
            let v = version.load(std::sync::atomic::Ordering::Relaxed);
            let w = StateWrite::new(
                id.clone(),
                PutMode::Update { expected: v },
                state_of_size(1024, v),
            );
            let d = hot_m.save(w).await.unwrap();
            version.store(d.version, std::sync::atomic::Ordering::Relaxed);
        })
    });
    g.finish();
}

criterion_group!(tiers, benches);
criterion_main!(tiers);
