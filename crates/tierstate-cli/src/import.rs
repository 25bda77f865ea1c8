//! `tierstate import`: a seed-000 (almanak `StateManager`) SQLite database into tierstate, so a
//! running strategy's history moves with it: states, portfolio snapshots and metrics, the
//! transaction ledger and the position registry. Every row goes through the handle's domain
//! calls, so it is validated and checksummed as a new write would be; a second run writes
//! nothing. A row that cannot come in (damaged, refused, or different from what is already
//! stored) is named and the rest still comes in; the command then exits non-zero.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::types::Value as Sql;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tierstate::accounting::{
    Amount, ExecutionMode, LedgerEntry, PortfolioMetrics, PortfolioSnapshot, Recorded, RegistryRow,
    RegistryStatus, Saved, ValueConfidence,
};
use tierstate::{DeploymentId, Tierstate, parse_decimal, truncate_to_micros};

use crate::error::{CliError, Result};
use crate::out::{Report, table};

/// The seed's tables this command reads, in the order it imports them.
pub const TABLES: [&str; 5] = [
    "strategy_state",
    "portfolio_snapshots",
    "portfolio_metrics",
    "transaction_ledger",
    "position_registry",
];

/// What happened to one table's rows.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    imported: u64,
    present: u64,
    refused: u64,
}

/// A row that did not come in, and why.
struct Refusal {
    table: &'static str,
    key: String,
    why: String,
}

/// One seed row: its columns by name.
type Row = BTreeMap<String, Sql>;

/// Imports every seed-000 table found in `source` through `ts`. Rows with an empty execution
/// mode (written before the seed recorded one) take `mode`.
///
/// # Errors
/// `Missing`/`Other` if `source` is not a readable seed-000 database; `RefusedReport` (after
/// the report) if any row did not come in.
pub async fn run(ts: &Tierstate, source: &Path, mode: ExecutionMode) -> Result<Report> {
    if !source.exists() {
        return Err(CliError::Missing(source.to_owned()));
    }
    let db = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| seed_error(source, &e))?;
    let present = tables(&db).map_err(|e| seed_error(source, &e))?;
    if !present.iter().any(|t| TABLES.contains(&t.as_str())) {
        return Err(CliError::Other(format!(
            "{}: no seed-000 tables (strategy_state, portfolio_snapshots, …): not a seed-000 database",
            source.display()
        )));
    }
    let mut tallies: Vec<(&'static str, Tally)> = Vec::new();
    let mut refused: Vec<Refusal> = Vec::new();
    for table in TABLES {
        if !present.iter().any(|t| t == table) {
            continue;
        }
        let rows = read_rows(&db, table).map_err(|e| seed_error(source, &e))?;
        let mut tally = Tally::default();
        for row in &rows {
            let key = row_key(table, row);
            match import_row(ts, table, row, mode).await {
                Ok(true) => tally.imported += 1,
                Ok(false) => tally.present += 1,
                Err(why) => {
                    tally.refused += 1;
                    refused.push(Refusal { table, key, why });
                }
            }
        }
        tallies.push((table, tally));
    }
    let report = report(source, &tallies, &refused);
    if refused.is_empty() {
        Ok(report)
    } else {
        Err(CliError::RefusedReport(report, refused.len() as u64))
    }
}

fn seed_error(source: &Path, e: &rusqlite::Error) -> CliError {
    CliError::Other(format!(
        "{}: cannot read it as a seed-000 SQLite database: {e}",
        source.display()
    ))
}

fn tables(db: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let mut s = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    s.query_map([], |r| r.get(0))?.collect()
}

/// Every row of `table`, oldest first where the table has an order (its rowid).
fn read_rows(db: &rusqlite::Connection, table: &str) -> rusqlite::Result<Vec<Row>> {
    // `table` is one of TABLES, never input.
    let mut s = db.prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))?;
    let names: Vec<String> = s.column_names().into_iter().map(str::to_owned).collect();
    s.query_map([], |r| {
        let mut row = Row::new();
        for (i, n) in names.iter().enumerate() {
            row.insert(n.clone(), r.get::<_, Sql>(i)?);
        }
        Ok(row)
    })?
    .collect()
}

/// How a refused row is named: its table's key columns.
fn row_key(table: &str, row: &Row) -> String {
    let d = deployment(row).unwrap_or_else(|_| "?".into());
    let get = |c: &str| text(row, c).ok().flatten().unwrap_or_else(|| "?".into());
    match table {
        "strategy_state" | "portfolio_metrics" => d,
        "portfolio_snapshots" => format!("{d} @ {}", get("timestamp")),
        "transaction_ledger" => format!("{d} / {}", get("id")),
        _ => format!(
            "{d} / {}|{}|{}",
            get("chain"),
            get("primitive"),
            get("physical_identity_hash")
        ),
    }
}

/// Imports one row: `Ok(true)` written, `Ok(false)` already there (nothing written),
/// `Err(why)` refused.
async fn import_row(
    ts: &Tierstate,
    table: &str,
    row: &Row,
    mode: ExecutionMode,
) -> std::result::Result<bool, String> {
    let id = DeploymentId::new(deployment(row)?).map_err(|e| e.to_string())?;
    match table {
        "strategy_state" => import_state(ts, &id, row).await,
        "portfolio_snapshots" => {
            let s = snapshot(row, mode)?;
            match ts.portfolio(&id).save_snapshot(&s).await {
                Ok(Saved::Stored(_) | Saved::Replaced(_)) => Ok(true),
                Ok(Saved::Unchanged) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        }
        "portfolio_metrics" => {
            let m = metrics(row, mode)?;
            let p = ts.portfolio(&id);
            match p.load_metrics().await.map_err(|e| e.to_string())? {
                Some(stored) if stored.metrics == m => Ok(false),
                Some(_) => Err(
                    "tierstate already holds different portfolio metrics for this deployment; \
                     not overwritten"
                        .into(),
                ),
                None => p
                    .save_metrics(&m, None)
                    .await
                    .map(|_| true)
                    .map_err(|e| e.to_string()),
            }
        }
        "transaction_ledger" => {
            let e = ledger_entry(row, id.as_str(), mode)?;
            match ts.ledger(&id).append(&e).await {
                Ok(Recorded::Appended(_)) => Ok(true),
                Ok(Recorded::Duplicate(_)) => Ok(false),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => {
            let r = registry_row(row, id.as_str())?;
            let (stored, inserted) = ts
                .registry(&id)
                .insert_if_absent(&r)
                .await
                .map_err(|e| e.to_string())?;
            if !inserted && !same_registry_row(&stored.row, &r) {
                return Err(
                    "tierstate already holds a different registry row at this key; not overwritten"
                        .into(),
                );
            }
            Ok(inserted)
        }
    }
}

/// A state: its checksum checked as the seed computes it, then created; an equal state
/// already there is left alone, a different one is refused.
async fn import_state(
    ts: &Tierstate,
    id: &DeploymentId,
    row: &Row,
) -> std::result::Result<bool, String> {
    let body = text(row, "state_data")?.ok_or("state_data is empty")?;
    let state: Value =
        serde_json::from_str(&body).map_err(|e| format!("state_data is not JSON: {e}"))?;
    let Value::Object(state) = state else {
        return Err("state_data is not a JSON object".into());
    };
    let stored = text(row, "checksum")?.unwrap_or_default();
    if !seed_checksum_matches(&body, &Value::Object(state.clone()), &stored) {
        return Err(format!(
            "damaged: the seed's checksum {stored:?} does not match its state_data"
        ));
    }
    match ts.state().load(id).await.map_err(|e| e.to_string())? {
        Some(s) if s.state == state => Ok(false),
        Some(s) => Err(format!(
            "tierstate already holds a different state (version {}); not overwritten",
            s.version
        )),
        None => ts
            .state()
            .create(id, state)
            .await
            .map(|_| true)
            .map_err(|e| e.to_string()),
    }
}

/// The seed's checksum: SHA-256 of `json.dumps(state, sort_keys=True, default=str)`. Its
/// `state_data` column holds exactly that text; an older row may hold it unsorted, so the
/// canonical text is rebuilt from the parsed value as Python writes it.
fn seed_checksum_matches(body: &str, state: &Value, stored: &str) -> bool {
    let hex = |b: &[u8]| {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let stored = stored.to_ascii_lowercase();
    hex(body.as_bytes()) == stored || hex(python_json(state).as_bytes()) == stored
}

/// `json.dumps(value, sort_keys=True)` as CPython writes it: `", "` and `": "` separators,
/// non-ASCII escaped, floats as `repr` does.
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_py(v, &mut out);
    out
}

fn write_py(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => python_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_string(k, out);
                out.push_str(": ");
                write_py(&m[k], out);
            }
            out.push('}');
        }
    }
}

fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr`: the shortest digits that round-trip, fixed notation for
/// exponents -4..16 (with `.0` when whole), otherwise `d.ddde+XX`.
fn python_float(f: f64) -> String {
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let int_len = (exp + 1) as usize;
            if digits.len() <= int_len {
                format!("{digits:0<int_len$}.0")
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

fn snapshot(row: &Row, mode: ExecutionMode) -> std::result::Result<PortfolioSnapshot, String> {
    let time = time(row, "timestamp")?.ok_or("timestamp is empty")?;
    let total = decimal(row, "total_value_usd")?.ok_or("total_value_usd is empty")?;
    let confidence = confidence(text(row, "value_confidence")?.as_deref())?;
    let mut s = PortfolioSnapshot::new(time, total, confidence, execution_mode(row, mode)?)
        .map_err(|e| e.to_string())?
        .with_cash(amount(decimal(row, "available_cash_usd")?));
    if let Some(c) = non_empty(text(row, "cycle_id")?) {
        s = s.with_cycle(c).map_err(|e| e.to_string())?;
    }
    // The seed's positions are its own rows: kept as written, as schema-1 snapshots keep theirs.
    if let Some(p) = non_empty(text(row, "positions_json")?) {
        let v: Value = serde_json::from_str(&p).map_err(|e| format!("positions_json: {e}"))?;
        if v != json!([]) {
            s.legacy_positions = Some(v);
        }
    }
    // The seed's other columns have no field of their own: kept beside the value, as written.
    let mut extra = Map::new();
    for c in [
        "iteration_number",
        "deployed_capital_usd",
        "wallet_total_value_usd",
        "chain",
    ] {
        if let Some(v) = row.get(c).and_then(sql_json) {
            extra.insert(c.into(), v);
        }
    }
    for (c, empty) in [
        ("token_prices_json", json!({})),
        ("wallet_balances_json", json!([])),
    ] {
        if let Some(v) = json_column(row, c)?.filter(|v| *v != empty) {
            extra.insert(c.trim_end_matches("_json").into(), v);
        }
    }
    Ok(s.with_extra(extra))
}

fn metrics(row: &Row, mode: ExecutionMode) -> std::result::Result<PortfolioMetrics, String> {
    let initial = decimal(row, "initial_value_usd")?.ok_or("initial_value_usd is empty")?;
    let at = time(row, "initial_timestamp")?.ok_or("initial_timestamp is empty")?;
    let mut m = PortfolioMetrics::new(initial, at, execution_mode(row, mode)?)
        .map_err(|e| e.to_string())?;
    m.deposits = decimal(row, "deposits_usd")?.unwrap_or_default();
    m.withdrawals = decimal(row, "withdrawals_usd")?.unwrap_or_default();
    m.gas_spent = decimal(row, "gas_spent_usd")?.unwrap_or_default();
    // The seed's '' is "unmeasured", never a measured zero.
    m.last_total_value = amount(decimal(row, "total_value_usd")?);
    if let Some(p) = non_empty(text(row, "positions_json")?) {
        m.positions = serde_json::from_str(&p).map_err(|e| format!("positions_json: {e}"))?;
    }
    m.cycle_id = non_empty(text(row, "cycle_id")?);
    m.updated_at = time(row, "updated_at")?.unwrap_or(m.initial_time);
    m.validate().map_err(|e| e.to_string())?;
    Ok(m)
}

fn ledger_entry(
    row: &Row,
    deployment: &str,
    mode: ExecutionMode,
) -> std::result::Result<LedgerEntry, String> {
    let id = text(row, "id")?.ok_or("id is empty")?;
    let time = time(row, "timestamp")?.ok_or("timestamp is empty")?;
    let intent = text(row, "intent_type")?.ok_or("intent_type is empty")?;
    let success = integer(row, "success")?.is_none_or(|s| s != 0);
    let mut e = LedgerEntry::new(
        id,
        deployment,
        execution_mode(row, mode)?,
        time,
        intent,
        success,
    )
    .map_err(|e| e.to_string())?;
    e.cycle_id = non_empty(text(row, "cycle_id")?);
    e.token_in = non_empty(text(row, "token_in")?);
    e.amount_in = decimal(row, "amount_in")?;
    e.token_out = non_empty(text(row, "token_out")?);
    e.amount_out = decimal(row, "amount_out")?;
    e.effective_price = decimal(row, "effective_price")?;
    e.slippage_bps = decimal(row, "slippage_bps")?;
    e.gas_used = integer(row, "gas_used")?
        .map(|g| u64::try_from(g).map_err(|_| format!("gas_used: {g} is negative")))
        .transpose()?;
    e.gas_usd = decimal(row, "gas_usd")?;
    e.tx_hash = non_empty(text(row, "tx_hash")?);
    e.chain = non_empty(text(row, "chain")?);
    e.protocol = non_empty(text(row, "protocol")?);
    e.error = non_empty(text(row, "error")?);
    e.extracted_data = json_column(row, "extracted_data_json")?;
    e.price_inputs = json_column(row, "price_inputs_json")?;
    e.pre_state = json_column(row, "pre_state_json")?;
    e.post_state = json_column(row, "post_state_json")?;
    e.validate().map_err(|e| e.to_string())?;
    Ok(e)
}

fn registry_row(row: &Row, deployment: &str) -> std::result::Result<RegistryRow, String> {
    let need = |c: &'static str| -> std::result::Result<String, String> {
        text(row, c)?.ok_or_else(|| format!("{c} is empty"))
    };
    let mut r = RegistryRow::open(
        deployment,
        need("chain")?,
        need("primitive")?,
        need("physical_identity_hash")?,
        need("accounting_category")?,
        need("semantic_grouping_key")?,
        Utc::now(),
    )
    .map_err(|e| e.to_string())?;
    r.status = match need("status")?.as_str() {
        "open" => RegistryStatus::Open,
        "closed" => RegistryStatus::Closed,
        "reorg_invalidated" => RegistryStatus::ReorgInvalidated,
        other => {
            return Err(format!(
                "status {other:?} is not open, closed or reorg_invalidated"
            ));
        }
    };
    r.handle = non_empty(text(row, "handle")?);
    r.payload = match json_column(row, "payload")? {
        Some(Value::Object(m)) => m,
        None => Map::new(),
        Some(_) => return Err("payload is not a JSON object".into()),
    };
    // Where the position opened has no field of its own in tierstate's row: it stays in the
    // payload under the seed's column names (unless the payload already uses them).
    for (col, v) in [
        (
            "opened_at_block",
            integer(row, "opened_at_block")?.map(Value::from),
        ),
        (
            "opened_tx",
            non_empty(text(row, "opened_tx")?).map(Value::from),
        ),
    ] {
        if let Some(v) = v {
            r.payload.entry(col).or_insert(v);
        }
    }
    let block = |c: &'static str| -> std::result::Result<Option<u64>, String> {
        integer(row, c)?
            .map(|b| u64::try_from(b).map_err(|_| format!("{c}: {b} is negative")))
            .transpose()
    };
    r.closing_block = block("closed_at_block")?;
    r.closing_tx = non_empty(text(row, "closed_tx")?);
    r.last_reconciled_block = block("last_reconciled_at_block")?;
    for c in ["grouping_policy_version", "matching_policy_version"] {
        if let Some(v) = row.get(c).and_then(sql_json) {
            r.policy_versions.insert(c.into(), v);
        }
    }
    r.validate().map_err(|e| e.to_string())?;
    Ok(r)
}

/// Two registry rows hold the same position facts (the import time aside).
fn same_registry_row(a: &RegistryRow, b: &RegistryRow) -> bool {
    let mut b = b.clone();
    b.updated_at = a.updated_at;
    *a == b
}

// ----- columns -----

/// The deployment: `deployment_id`, or `strategy_id` in databases from before the seed's
/// rename.
fn deployment(row: &Row) -> std::result::Result<String, String> {
    for c in ["deployment_id", "strategy_id"] {
        if let Some(d) = non_empty(text(row, c)?) {
            return Ok(d);
        }
    }
    Err("no deployment_id (or strategy_id)".into())
}

fn text(row: &Row, col: &str) -> std::result::Result<Option<String>, String> {
    match row.get(col) {
        None | Some(Sql::Null) => Ok(None),
        Some(Sql::Text(s)) => Ok(Some(s.clone())),
        Some(Sql::Integer(i)) => Ok(Some(i.to_string())),
        Some(Sql::Real(f)) => Ok(Some(f.to_string())),
        Some(Sql::Blob(_)) => Err(format!("{col} is a blob, not text")),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn integer(row: &Row, col: &str) -> std::result::Result<Option<i64>, String> {
    match row.get(col) {
        None | Some(Sql::Null) => Ok(None),
        Some(Sql::Integer(i)) => Ok(Some(*i)),
        Some(Sql::Text(s)) if s.trim().is_empty() => Ok(None),
        Some(Sql::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{col}: {s:?} is not an integer")),
        Some(other) => Err(format!("{col}: {other:?} is not an integer")),
    }
}

/// A decimal column, exactly: text as written (the seed stores `str(Decimal)`), a REAL by its
/// shortest round-trip digits; empty is absent.
fn decimal(row: &Row, col: &'static str) -> std::result::Result<Option<Decimal>, String> {
    let t = match row.get(col) {
        None | Some(Sql::Null) => return Ok(None),
        Some(Sql::Real(f)) if !f.is_finite() => return Err(format!("{col}: {f} is not finite")),
        _ => text(row, col)?,
    };
    match non_empty(t) {
        None => Ok(None),
        Some(t) => parse_decimal(col, t.trim())
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

fn amount(d: Option<Decimal>) -> Amount {
    d.map_or(Amount::Unmeasured, Amount::Measured)
}

/// A time as the seed writes it (`isoformat()`): with an offset, or naive, which the seed
/// always wrote in UTC.
fn time(row: &Row, col: &str) -> std::result::Result<Option<DateTime<Utc>>, String> {
    let Some(t) = non_empty(text(row, col)?) else {
        return Ok(None);
    };
    let t = t.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(Some(truncate_to_micros(d.with_timezone(&Utc))));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(Some(truncate_to_micros(n.and_utc())));
        }
        if let Ok(d) = DateTime::parse_from_str(t, &format!("{f}%:z")) {
            return Ok(Some(truncate_to_micros(d.with_timezone(&Utc))));
        }
    }
    Err(format!("{col}: {t:?} is not an ISO 8601 time"))
}

fn json_column(row: &Row, col: &str) -> std::result::Result<Option<Value>, String> {
    match non_empty(text(row, col)?) {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| format!("{col} is not JSON: {e}")),
    }
}

fn sql_json(v: &Sql) -> Option<Value> {
    match v {
        Sql::Integer(i) => Some(Value::from(*i)),
        Sql::Text(s) if !s.is_empty() => Some(Value::from(s.clone())),
        _ => None,
    }
}

fn execution_mode(row: &Row, default: ExecutionMode) -> std::result::Result<ExecutionMode, String> {
    match non_empty(text(row, "execution_mode")?) {
        None => Ok(default),
        Some(m) => m
            .to_ascii_lowercase()
            .parse()
            .map_err(|e: tierstate::accounting::AccountingError| e.to_string()),
    }
}

/// The seed's four confidence words in tierstate's scale: HIGH, ESTIMATED → medium, STALE →
/// low, UNAVAILABLE; absent is HIGH, the seed's column default.
fn confidence(v: Option<&str>) -> std::result::Result<ValueConfidence, String> {
    match v
        .map(str::trim)
        .unwrap_or("HIGH")
        .to_ascii_uppercase()
        .as_str()
    {
        "" | "HIGH" => Ok(ValueConfidence::High),
        "ESTIMATED" | "MEDIUM" => Ok(ValueConfidence::Medium),
        "STALE" | "LOW" => Ok(ValueConfidence::Low),
        "UNAVAILABLE" => Ok(ValueConfidence::Unavailable),
        other => Err(format!(
            "value_confidence {other:?} is not HIGH, ESTIMATED, STALE or UNAVAILABLE"
        )),
    }
}

fn report(source: &Path, tallies: &[(&'static str, Tally)], refused: &[Refusal]) -> Report {
    let rows: Vec<Vec<String>> = tallies
        .iter()
        .map(|(t, n)| {
            vec![
                (*t).to_owned(),
                n.imported.to_string(),
                n.present.to_string(),
                n.refused.to_string(),
            ]
        })
        .collect();
    let mut text = format!("import from {}\n", source.display());
    text.push_str(&table(
        &["table", "imported", "already there", "refused"],
        &rows,
    ));
    for r in refused {
        text.push_str(&format!("refused {} {}: {}\n", r.table, r.key, r.why));
    }
    let json = json!({
        "source": source.display().to_string(),
        "tables": tallies.iter().map(|(t, n)| json!({
            "table": t, "imported": n.imported, "already_there": n.present, "refused": n.refused,
        })).collect::<Vec<_>>(),
        "refused": refused.iter().map(|r| json!({
            "table": r.table, "key": r.key, "reason": r.why,
        })).collect::<Vec<_>>(),
    });
    Report { text, json }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_python_repr_writes_them() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123_456_789_012_345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (-0.0, "-0.0"),
            (1e300, "1e+300"),
            (100.0, "100.0"),
        ] {
            assert_eq!(python_float(f), want, "{f:e}");
        }
    }

    #[test]
    fn json_is_written_as_python_dumps_with_sorted_keys() {
        let v: Value = serde_json::from_str(
            r#"{"b": [1, 2.0, "x\ny"], "a": {"é": null, "z": true}, "c": "\u0001"}"#,
        )
        .unwrap();
        assert_eq!(
            python_json(&v),
            r#"{"a": {"z": true, "\u00e9": null}, "b": [1, 2.0, "x\ny"], "c": "\u0001"}"#
        );
        let emoji = Value::String("😀".into());
        assert_eq!(python_json(&emoji), r#""\ud83d\ude00""#);
    }
}
