//! `tierstate import`: a seed-000 (almanak `StateManager`) SQLite database, with the seed's
//! own column layout, comes into every backend exactly, once, and with damage named.

mod common;

use std::path::Path;

use common::{Run, pg_url, tierstate};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tierstate::accounting::{Amount, LedgerQuery, RegistryStatus, ValueConfidence};
use tierstate::{DeploymentId, Tierstate};

/// The seed's tables, with the columns the importer reads (as the seed's `SCHEMA_SQL` declares
/// them) and some it leaves alone.
const SEED_SCHEMA: &str = "
CREATE TABLE strategy_state (
    deployment_id TEXT PRIMARY KEY, version INTEGER NOT NULL DEFAULT 1,
    state_data TEXT NOT NULL, schema_version INTEGER NOT NULL DEFAULT 1,
    checksum TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE portfolio_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT, deployment_id TEXT NOT NULL, cycle_id TEXT DEFAULT '',
    execution_mode TEXT DEFAULT '', timestamp TEXT NOT NULL, iteration_number INTEGER DEFAULT 0,
    total_value_usd TEXT NOT NULL, available_cash_usd TEXT NOT NULL,
    deployed_capital_usd TEXT DEFAULT '0', wallet_total_value_usd TEXT DEFAULT '0',
    value_confidence TEXT DEFAULT 'HIGH', positions_json TEXT NOT NULL,
    token_prices_json TEXT DEFAULT '{}', wallet_balances_json TEXT DEFAULT '[]', chain TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE portfolio_metrics (
    deployment_id TEXT PRIMARY KEY, initial_value_usd TEXT NOT NULL,
    initial_timestamp TEXT NOT NULL, deposits_usd TEXT DEFAULT '0',
    withdrawals_usd TEXT DEFAULT '0', gas_spent_usd TEXT DEFAULT '0',
    total_value_usd TEXT DEFAULT '', positions_json TEXT DEFAULT '[]', cycle_id TEXT,
    execution_mode TEXT DEFAULT '', is_complete BOOLEAN DEFAULT 1, updated_at TEXT NOT NULL);
CREATE TABLE transaction_ledger (
    id TEXT PRIMARY KEY, cycle_id TEXT NOT NULL, deployment_id TEXT NOT NULL,
    execution_mode TEXT DEFAULT '', timestamp TEXT NOT NULL, intent_type TEXT NOT NULL,
    token_in TEXT, amount_in TEXT, token_out TEXT, amount_out TEXT, effective_price TEXT,
    slippage_bps REAL, gas_used INTEGER, gas_usd TEXT, tx_hash TEXT, chain TEXT, protocol TEXT,
    success BOOLEAN NOT NULL DEFAULT 1, error TEXT, extracted_data_json TEXT DEFAULT '',
    price_inputs_json TEXT DEFAULT '', pre_state_json TEXT DEFAULT '',
    post_state_json TEXT DEFAULT '');
CREATE TABLE position_registry (
    deployment_id TEXT NOT NULL, chain TEXT NOT NULL, primitive TEXT NOT NULL,
    accounting_category TEXT NOT NULL, physical_identity_hash TEXT NOT NULL,
    semantic_grouping_key TEXT NOT NULL, grouping_policy_version TEXT NOT NULL, handle TEXT,
    status TEXT NOT NULL, payload TEXT NOT NULL, opened_at_block INTEGER, opened_tx TEXT,
    closed_at_block INTEGER, closed_tx TEXT, last_reconciled_at_block INTEGER,
    matching_policy_version INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, chain, primitive, physical_identity_hash));
";

fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A seed database as the seed writes it: two deployments, one state stored unsorted by an
/// older version (its checksum over Python's sorted dump), decimals as `str(Decimal)`.
fn seed_db(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(SEED_SCHEMA).unwrap();
    // json.dumps(state, sort_keys=True, default=str): what the seed stores and checksums.
    let a =
        r#"{"cash": "1000.123456789012345678", "nested": {"pi": 3.14, "tiny": 1e-05}, "step": 7}"#;
    let b_stored = r#"{"z": 1.0, "a": ["caf\u00e9", true, null]}"#;
    let b_canonical = r#"{"a": ["caf\u00e9", true, null], "z": 1.0}"#;
    let now = "2026-11-01T10:00:00+00:00";
    for (id, body, sum) in [("alpha", a, sha(a)), ("beta", b_stored, sha(b_canonical))] {
        db.execute(
            "INSERT INTO strategy_state VALUES (?1, 12, ?2, 1, ?3, ?4, ?4)",
            rusqlite::params![id, body, sum, now],
        )
        .unwrap();
    }
    db.execute_batch(
        "INSERT INTO portfolio_snapshots (deployment_id, cycle_id, execution_mode, timestamp,
            iteration_number, total_value_usd, available_cash_usd, deployed_capital_usd,
            value_confidence, positions_json, token_prices_json, chain, created_at)
         VALUES
         ('alpha', 'c1', 'paper', '2026-11-01T10:00:00+00:00', 3, '1000.000000000000000001',
          '400.5', '599.5', 'HIGH', '[{\"symbol\": \"ETH\", \"value_usd\": \"599.5\"}]',
          '{\"arbitrum:0xeth\": {\"price_usd\": \"2398\"}}', 'arbitrum', '2026-11-01T10:00:01'),
         ('alpha', 'c2', '', '2026-11-01T11:00:00.250000', 4, '1010.25', '', '0', 'ESTIMATED',
          '[]', '{}', NULL, '2026-11-01T11:00:01');
         INSERT INTO portfolio_metrics VALUES ('alpha', '1000', '2026-11-01T09:00:00+00:00',
            '50', '0', '1.25', '', '[]', 'c2', 'paper', 1, '2026-11-01T11:00:00+00:00');
         INSERT INTO transaction_ledger (id, cycle_id, deployment_id, execution_mode, timestamp,
            intent_type, token_in, amount_in, token_out, amount_out, effective_price, slippage_bps,
            gas_used, gas_usd, tx_hash, chain, protocol, success, error, extracted_data_json)
         VALUES
         ('tx-1', 'c1', 'alpha', 'paper', '2026-11-01T10:00:00+00:00', 'SWAP', 'USDC',
          '599.500000000000000001', 'ETH', '0.25', '2398', -1.5, 120000, '0.42', '0xabc',
          'arbitrum', 'uniswap_v3', 1, NULL, '{\"fee\": \"0.3\"}'),
         ('tx-2', 'c2', 'alpha', 'paper', '2026-11-01T11:00:00+00:00', 'SWAP', 'ETH', '0.1',
          'USDC', NULL, NULL, NULL, NULL, NULL, NULL, 'arbitrum', 'uniswap_v3', 0, 'reverted', '');
         INSERT INTO position_registry VALUES ('alpha', 'arbitrum', 'lp', 'uniswap_v3_lp',
            'nft-77', 'pool-eth-usdc', '1', 'leg_a', 'open', '{\"tick_lower\": -10}', 123, '0xopen',
            NULL, NULL, 130, 2);",
    )
    .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn import(url: &str, seed: &Path) -> Run {
    tierstate(&["--db", url, "--json", "import", seed.to_str().unwrap()])
}

fn counts(r: &Run) -> Vec<(String, u64, u64, u64)> {
    let v: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} / {}", r.stdout, r.stderr));
    v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_owned(),
                t["imported"].as_u64().unwrap(),
                t["already_there"].as_u64().unwrap(),
                t["refused"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// What came in, read back through the library.
async fn check_imported(url: &str) {
    let ts = Tierstate::open(url).await.unwrap();
    let alpha = DeploymentId::new("alpha").unwrap();
    let beta = DeploymentId::new("beta").unwrap();

    let a = ts
        .state()
        .load(&alpha)
        .await
        .unwrap()
        .expect("alpha's state");
    assert_eq!(a.version, 1, "versions start again at 1");
    assert_eq!(a.state["cash"], json!("1000.123456789012345678"));
    assert_eq!(a.state["nested"]["tiny"], json!(1e-05));
    let b = ts.state().load(&beta).await.unwrap().expect("beta's state");
    assert_eq!(
        Value::Object(b.state.clone()),
        json!({"a": ["café", true, null], "z": 1.0})
    );

    let p = ts.portfolio(&alpha);
    let first = p.first().await.unwrap().unwrap();
    assert_eq!(first.total_value, d("1000.000000000000000001"), "exact");
    assert_eq!(first.available_cash, Amount::Measured(d("400.5")));
    assert_eq!(first.cycle_id.as_deref(), Some("c1"));
    assert_eq!(
        first.legacy_positions,
        Some(json!([{"symbol": "ETH", "value_usd": "599.5"}]))
    );
    assert_eq!(
        serde_json::Value::Object(first.extra.clone()),
        json!({"iteration_number": 3, "deployed_capital_usd": "599.5", "chain": "arbitrum",
               "wallet_total_value_usd": "0",
               "token_prices": {"arbitrum:0xeth": {"price_usd": "2398"}}}),
        "the seed's other columns are kept"
    );
    let last = p.latest().await.unwrap().unwrap();
    assert_eq!(last.total_value, d("1010.25"));
    assert_eq!(
        last.available_cash,
        Amount::Unmeasured,
        "'' is unmeasured, not zero"
    );
    assert_eq!(last.value_confidence, ValueConfidence::Medium);
    assert_eq!(
        last.time.timestamp_subsec_micros(),
        250_000,
        "a naive time is UTC"
    );
    assert_eq!(
        last.execution_mode.as_str(),
        "live",
        "the default for an empty mode"
    );

    let m = p.load_metrics().await.unwrap().unwrap().metrics;
    assert_eq!(
        (m.initial_value, m.deposits, m.gas_spent),
        (d("1000"), d("50"), d("1.25"))
    );
    assert_eq!(m.last_total_value, Amount::Unmeasured);

    let ledger = ts.ledger(&alpha);
    let page = ledger.entries(&LedgerQuery::newest(10)).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    let tx1 = ledger.get("tx-1").await.unwrap().unwrap().entry;
    assert_eq!(tx1.amount_in, Some(d("599.500000000000000001")));
    assert_eq!(tx1.slippage_bps, Some(d("-1.5")));
    assert_eq!(tx1.gas_used, Some(120_000));
    assert_eq!(tx1.extracted_data, Some(json!({"fee": "0.3"})));
    let tx2 = ledger.get("tx-2").await.unwrap().unwrap().entry;
    assert!(!tx2.success);
    assert_eq!(tx2.error.as_deref(), Some("reverted"));
    assert_eq!(ledger.stats().await.unwrap().gas_usd, d("0.42"));

    let rows = ts
        .registry(&alpha)
        .open_rows(&Default::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.status, r.handle.as_deref()),
        (RegistryStatus::Open, Some("leg_a"))
    );
    assert_eq!(r.identity_hash, "nft-77");
    assert_eq!(r.last_reconciled_block, Some(130));
    assert_eq!(r.payload["opened_tx"], json!("0xopen"));
    assert_eq!(r.payload["tick_lower"], json!(-10));
    ts.close().await;
}

fn imports_once_and_exactly(url: &str, seed: &Path) {
    let first = import(url, seed);
    assert_eq!(first.code, 0, "{} {}", first.stdout, first.stderr);
    let want_first = vec![
        ("strategy_state".to_owned(), 2, 0, 0),
        ("portfolio_snapshots".to_owned(), 2, 0, 0),
        ("portfolio_metrics".to_owned(), 1, 0, 0),
        ("transaction_ledger".to_owned(), 2, 0, 0),
        ("position_registry".to_owned(), 1, 0, 0),
    ];
    assert_eq!(counts(&first), want_first);
    runtime().block_on(check_imported(url));

    // A second run writes nothing and says so.
    let again = import(url, seed);
    assert_eq!(again.code, 0, "{} {}", again.stdout, again.stderr);
    let all_there: Vec<_> = want_first
        .iter()
        .map(|(t, n, _, _)| (t.clone(), 0, *n, 0))
        .collect();
    assert_eq!(counts(&again), all_there);
    runtime().block_on(check_imported(url));

    let verify = tierstate(&["--db", url, "verify"]);
    assert_eq!(verify.code, 0, "{} {}", verify.stdout, verify.stderr);
}

#[test]
fn a_seed_database_comes_into_sqlite_and_redb_once_and_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("almanak.db");
    seed_db(&seed);
    for url in [
        format!("sqlite:{}", dir.path().join("t.db").display()),
        format!("redb:{}", dir.path().join("t.redb").display()),
    ] {
        imports_once_and_exactly(&url, &seed);
    }
}

#[test]
fn a_seed_database_comes_into_postgres_once_and_exactly() {
    // A schema of its own per run: the first import finds it empty.
    let Some(url) = pg_url(&format!("cli_import_{}", std::process::id())) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("almanak.db");
    seed_db(&seed);
    imports_once_and_exactly(&url, &seed);
}

#[test]
fn damaged_and_conflicting_rows_are_named_and_the_rest_comes_in() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("almanak.db");
    seed_db(&seed);
    let db = rusqlite::Connection::open(&seed).unwrap();
    // A state whose text no longer matches its checksum, and a ledger row with a negative
    // amount (refused by the ledger's own check).
    db.execute_batch(
        "UPDATE strategy_state SET state_data = replace(state_data, '7', '8')
            WHERE deployment_id = 'alpha';
         UPDATE transaction_ledger SET amount_out = '-1' WHERE id = 'tx-2';",
    )
    .unwrap();
    drop(db);
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let r = import(&url, &seed);
    assert_eq!(r.code, 1, "{} {}", r.stdout, r.stderr);
    assert_eq!(r.stderr.trim(), "error: 2 row(s) not imported");
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["table"], "strategy_state");
    assert_eq!(refused[0]["key"], "alpha");
    assert!(refused[0]["reason"].as_str().unwrap().contains("damaged"));
    assert_eq!(refused[1]["key"], "alpha / tx-2");
    assert!(
        refused[1]["reason"]
            .as_str()
            .unwrap()
            .contains("amount out"),
        "{refused:?}"
    );
    assert_eq!(
        counts(&r)[0],
        ("strategy_state".to_owned(), 1, 0, 1),
        "beta's state came in"
    );

    // tierstate moved on; a later import does not overwrite it, and says so.
    runtime().block_on(async {
        let ts = Tierstate::open(&url).await.unwrap();
        let beta = DeploymentId::new("beta").unwrap();
        let mut s = ts.state().load(&beta).await.unwrap().unwrap().state.clone();
        s.insert("z".into(), json!(2));
        ts.state().update(&beta, 1, s).await.unwrap();
        ts.close().await;
    });
    let r = import(&url, &seed);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let reasons: Vec<&str> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("different state (version 2)")),
        "{reasons:?}"
    );
}

#[test]
fn the_older_strategy_id_spelling_and_bad_sources_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("old.db");
    let body = r#"{"n": 1}"#;
    let db = rusqlite::Connection::open(&seed).unwrap();
    db.execute_batch(
        "CREATE TABLE strategy_state (strategy_id TEXT PRIMARY KEY, version INTEGER,
            state_data TEXT, schema_version INTEGER, checksum TEXT, created_at TEXT,
            updated_at TEXT);",
    )
    .unwrap();
    db.execute(
        "INSERT INTO strategy_state VALUES ('old-bot', 3, ?1, 1, ?2, '', '')",
        rusqlite::params![body, sha(body)],
    )
    .unwrap();
    drop(db);
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let r = import(&url, &seed);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert_eq!(counts(&r), vec![("strategy_state".to_owned(), 1, 0, 0)]);

    let missing = tierstate(&["--db", &url, "import", "/nonexistent/almanak.db"]);
    assert!(common::one_line_error(&missing).contains("/nonexistent/almanak.db"));
    let not_seed = dir.path().join("other.db");
    rusqlite::Connection::open(&not_seed)
        .unwrap()
        .execute_batch("CREATE TABLE x (y)")
        .unwrap();
    let r = tierstate(&["--db", &url, "import", not_seed.to_str().unwrap()]);
    assert!(common::one_line_error(&r).contains("not a seed-000 database"));
    let r = tierstate(&[
        "--db",
        &url,
        "import",
        "--execution-mode",
        "real",
        not_seed.to_str().unwrap(),
    ]);
    assert!(
        common::one_line_error(&r).contains("live, paper, dry_run"),
        "{}",
        r.stderr
    );
}
