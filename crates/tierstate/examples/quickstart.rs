//! The main job on the embedded default: a strategy's state in a SQLite file, saved, updated with
//! compare-and-swap, a stale writer caught, and the process "restarted" to resume from disk.
//!
//! Run: `cargo run --release --example quickstart` (state file: ./quickstart-state.db, or the
//! path given as the first argument; runs again resume from it).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tierstate::{DeploymentId, Error, PutMode, StateManager, Tier};

/// What a market-making strategy keeps between restarts. Money is `rust_decimal` (stored as
/// decimal text, so "0.030" keeps its scale), never f64.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Strategy {
    symbol: String,
    position: Decimal,
    fills: u64,
    last_order_id: Option<String>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart-state.db".into());
    let id = DeploymentId::new("btc-perp-maker")?;
    println!("tierstate quickstart: state file {path}");

    // 1. Open HOT + durable SQLite (WAL, synchronous=FULL).
    let manager = StateManager::builder().sqlite(&path).build().await?;
    let start = match manager.load_as::<Strategy>(&id).await? {
        Some(found) => {
            println!(
                "found {id} at v{} on disk: {:?}; resuming",
                found.version, found.value
            );
            found
        }
        None => {
            let fresh = Strategy {
                symbol: "BTC-PERP".into(),
                position: Decimal::ZERO,
                fills: 0,
                last_order_id: None,
            };
            let saved = manager.save_as(&id, PutMode::Create, &fresh).await?;
            println!(
                "created {id} at v{} (checksum {})",
                saved.version, saved.checksum
            );
            manager
                .load_as::<Strategy>(&id)
                .await?
                .expect("just created")
        }
    };

    // 2. Three fills, each a compare-and-swap on the version we hold.
    let mut version = start.version;
    let mut s = start.value;
    for qty in ["0.010", "0.025", "-0.005"] {
        let qty: Decimal = qty.parse()?;
        s.fills += 1;
        s.position += qty;
        s.last_order_id = Some(format!("ord-{}", s.fills));
        let saved = manager
            .save_as(&id, PutMode::Update { expected: version }, &s)
            .await?;
        println!(
            "fill {qty:>7} -> position {:>7}, saved v{}",
            s.position, saved.version
        );
        version = saved.version;
    }

    // 3. A second writer still holding an old version is refused, not silently applied.
    let stale = version - 1;
    match manager
        .save_as(&id, PutMode::Update { expected: stale }, &s)
        .await
    {
        Err(Error::Conflict {
            expected, actual, ..
        }) => {
            println!(
                "stale writer caught: expected v{expected}, stored v{}",
                actual.unwrap_or(0)
            )
        }
        other => return Err(format!("a stale write must conflict, got {other:?}").into()),
    }

    // The conflict told HOT the stored version (v4, the one it holds), so loads stay in HOT.
    for _ in 0..2 {
        let d = manager.load(&id).await?.expect("present");
        println!("load served from {} at v{}", d.loaded_from, d.version);
    }
    let versions: Vec<u64> = manager
        .history(&id, 5)
        .await?
        .iter()
        .map(|d| d.version)
        .collect();
    println!("history (newest first): {versions:?}");

    // 4. "Restart": a brand-new manager over the same file resumes from what is on disk.
    drop(manager);
    let reopened = StateManager::builder()
        .sqlite(&path)
        .warm_up(false)
        .build()
        .await?;
    let back = reopened.load(&id).await?.expect("state survives a restart");
    assert_eq!(back.loaded_from, Tier::Warm);
    let decoded: Strategy = back.to_typed()?;
    println!(
        "after reopen: v{} position {} fills {} (checksum verified on read)",
        back.version, decoded.position, decoded.fills
    );
    for t in reopened.metrics().summary() {
        println!("metrics {t}");
    }
    Ok(())
}
