//! What the CLI tests share: running the binary, and a fixture database written through the
//! library with fixed event times, so the human output is the same on every run (commit
//! times are masked).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use tierstate::accounting::{
    Amount, ExecutionMode, Ledger, LedgerEntry, Portfolio, PortfolioSnapshot, ValueConfidence,
};
use tierstate::orders::{
    Exchange, FaultPlan, OrderIntent, OrderSpec, OrderStore, Reconciler, Side, SimExchange,
};
use tierstate::strategy::{Holdings, PositionRecord, StrategyState, StrategyStore, Tick, Trade};
use tierstate::{DeploymentId, SqliteConfig, SqliteStore, StateStore, StateWrite, WriteBatch};

/// The binary's exit code, stdout and stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `tierstate ARGS` with no database from the environment.
pub fn tierstate(args: &[&str]) -> Run {
    tierstate_in(Path::new("."), args)
}

/// Runs the CLI in `dir`, for commands that write files named relative to it.
pub fn tierstate_in(dir: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_tierstate"))
        .args(args)
        .current_dir(dir)
        .env_remove("TIERSTATE_DB")
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The PostgreSQL test server's URL with `schema=S` added; `None` (the test skips, saying why)
/// without one, which `TIERSTATE_REQUIRE_POSTGRES` (CI) turns into a failure.
pub fn pg_url(schema: &str) -> Option<String> {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("TIERSTATE_REQUIRE_POSTGRES").is_none(),
            "TEST_DATABASE_URL is required here"
        );
        eprintln!("skipped: TEST_DATABASE_URL is not set (cargo xtask test sets it)");
        return None;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}schema={schema}"))
}

/// Asserts a failure reported as one `error: …` line, and returns it.
pub fn one_line_error(r: &Run) -> String {
    assert_ne!(r.code, 0, "expected a failure, got stdout {}", r.stdout);
    let lines: Vec<&str> = r.stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got {:?}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("backtrace"));
    lines[0].to_owned()
}

pub fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000 + s, 0).unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Writes the fixture into a new SQLite file at `path`.
pub async fn fixture(path: &Path) {
    let store: Arc<dyn StateStore> =
        Arc::new(SqliteStore::open(SqliteConfig::new(path)).await.unwrap());
    let id = DeploymentId::new("fx").unwrap();
    let strategy = StrategyStore::<StrategyState>::new(store.clone(), &id);
    let ledger = Ledger::new(store.clone(), &id);
    let portfolio = Portfolio::new(store.clone(), &id);
    let mut version = None;
    let mut cash = d("10000.00");
    let mut pos = d("0");
    for n in 1..=3i64 {
        let price = d("2500.00") + Decimal::from(n * 10);
        let trade = Trade {
            trade_id: format!("tr-{n}"),
            time: t(n * 60),
            symbol: "ETH-USD".into(),
            side: if n == 2 { Side::Sell } else { Side::Buy },
            price,
            size: d("0.50"),
            fee: d("0.10"),
            position_id: None,
        };
        let signed = if n == 2 { -trade.size } else { trade.size };
        pos += signed;
        cash -= signed * price + trade.fee;
        let nav = cash + pos * price;
        let state = StrategyState {
            last_time: Some(t(n * 60)),
            last_event_id: Some(format!("tick-{n}")),
            portfolio: Holdings {
                cash: [("USD".to_owned(), cash)].into(),
                positions: [("ETH-USD".to_owned(), pos)].into(),
            },
            runtime: json!({"tick": n}).as_object().unwrap().clone(),
            metrics: [("nav".to_owned(), nav)].into(),
        };
        let mut entry = LedgerEntry::new(
            &trade.trade_id,
            "fx",
            ExecutionMode::Paper,
            trade.time,
            "MM_FILL",
            true,
        )
        .unwrap();
        entry.token_in = Some("USD".into());
        entry.amount_in = Some(price * trade.size);
        entry.token_out = Some("ETH".into());
        entry.amount_out = Some(trade.size);
        entry.effective_price = Some(price);
        let snap =
            PortfolioSnapshot::new(t(n * 60), nav, ValueConfidence::High, ExecutionMode::Paper)
                .unwrap()
                .with_cash(Amount::Measured(cash));
        let extra = WriteBatch::new().with(&portfolio.plan_snapshot(&snap).await.unwrap());
        let extra = extra.with(
            &ledger
                .plan_append_batch(std::slice::from_ref(&entry))
                .await
                .unwrap(),
        );
        let mut row = PositionRecord::perp("ETH-USD", "sim", "ETH-USD").unwrap();
        row.amount = pos;
        row.entry_price = Some(price);
        row.mark(price).unwrap();
        let rows = [row];
        let tick = strategy
            .plan_tick(Tick {
                time: t(n * 60),
                expected: version,
                state: &state,
                trades: std::slice::from_ref(&trade),
                positions: Some(&rows),
                metrics: &[("nav", 10_000.0 + n as f64)],
            })
            .unwrap();
        let done = store.write(extra.with(&tick)).await.unwrap();
        version = Some(tick.committed(&done).version);
    }
    // Two orders through the engine on an in-process venue: one resting, one partly filled.
    let orders = OrderStore::new(store.clone(), &id);
    let venue = Arc::new(SimExchange::new(FaultPlan::none()));
    let exchange: Arc<dyn Exchange> = venue.clone();
    let engine = Reconciler::new(orders.clone(), exchange, d("0.01"));
    for (intent, side, price) in [
        ("bid-1", Side::Buy, "2490.00"),
        ("ask-1", Side::Sell, "2540.00"),
    ] {
        let spec = OrderSpec::limit("ETH-USD", side, d(price), d("0.50")).unwrap();
        orders
            .create_intent(&OrderIntent::new(intent, "fx", spec, t(200)).unwrap())
            .await
            .unwrap();
        engine.reconcile_intent(intent).await.unwrap();
    }
    venue
        .maker("ETH-USD", Side::Buy, d("2540.00"), d("0.20"))
        .unwrap();
    engine.reconcile_intent("ask-1").await.unwrap();
    // A second deployment with two versions of a plain state.
    let other = DeploymentId::new("fy").unwrap();
    let v1 = store
        .put(
            StateWrite::create(
                other.clone(),
                json!({"limit": "5", "mode": "paper"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            Default::default(),
        )
        .await
        .unwrap();
    store
        .put(
            StateWrite::update(
                other,
                v1.version,
                json!({"limit": "7", "venues": ["sim"]})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            Default::default(),
        )
        .await
        .unwrap();
}

/// A fixture in a new temporary directory: (the directory, `sqlite:PATH`).
pub fn fixture_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fx.db");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(fixture(&path));
    let url = format!("sqlite:{}", path.display());
    (dir, url)
}

/// `s` as a regular expression matching it literally (for insta filters).
pub fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
