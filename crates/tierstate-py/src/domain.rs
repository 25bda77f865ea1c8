//! The accounting domain for Python: ledger entries and portfolio snapshots cross the
//! boundary as `dict`s of the records' own field names, decoded by the records' own serde
//! (every field checked, decimals exact, unknown fields refused) and returned with `Decimal`
//! and aware `datetime` values.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tierstate::accounting::{
    AccountingError, LedgerEntry, LedgerQuery, PortfolioSnapshot, Recorded, Saved,
};

use crate::convert::{json_of_any, py_datetime, py_decimal, py_of};
use crate::errors::{invalid, raise_named, to_py};

/// Fields holding a decimal (as text in the record's JSON form) in accounting records. Only
/// these are typed: a snapshot's free-form maps (positions, balances) come back as stored.
const DECIMALS: &[&str] = &[
    "initial_value",
    "gas_spent",
    "last_total_value",
    "amount_in",
    "amount_out",
    "effective_price",
    "slippage_bps",
    "gas_usd",
    "total_value",
    "available_cash",
    "deposits",
    "withdrawals",
];
/// The decimal fields of trades, positions and orders (records with no free-form maps of
/// money but `metadata`, which is left as stored).
pub const TRADING_DECIMALS: &[&str] = &[
    "price",
    "size",
    "fee",
    "amount",
    "value_usd",
    "entry_price",
    "mark_price",
    "unrealized_pnl",
    "leverage",
    "liquidation_price",
];
/// Lists of typed records inside a trading record (an order's fills).
const TRADING_LISTS: &[&str] = &["fills", "prior"];
/// Fields holding a time.
const TIMES: &[&str] = &[
    "time",
    "first_time",
    "last_time",
    "updated_at",
    "initial_time",
    "created_at",
    "synced_at",
];

/// A record of type `T` from a `dict` of its fields.
///
/// # Errors
/// `InvalidInputError` naming what is wrong.
pub fn record_of<T: DeserializeOwned>(what: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<T> {
    // A decimal field given as a float has already been rounded: refused, never stored, at
    // any depth (an intent's `spec.price`).
    refuse_float_decimals(obj, what, &mut String::new())?;
    let v = json_of_any(obj, what)?;
    serde_json::from_value(v).map_err(|e| invalid(what, e))
}

/// Refuses a float under a decimal field's name anywhere in `obj`, naming its path.
fn refuse_float_decimals(
    obj: &Bound<'_, PyAny>,
    what: &'static str,
    path: &mut String,
) -> PyResult<()> {
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            let Ok(k) = k.extract::<String>() else {
                continue;
            };
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&k);
            if (DECIMALS.contains(&k.as_str()) || TRADING_DECIMALS.contains(&k.as_str()))
                && v.is_instance_of::<pyo3::types::PyFloat>()
            {
                return Err(invalid(
                    what,
                    format!(
                        "{path}: a float is refused (it has already been rounded); pass a Decimal or its text"
                    ),
                ));
            }
            refuse_float_decimals(&v, what, path)?;
            path.truncate(len);
        }
    } else if let Ok(l) = obj.cast::<PyList>() {
        for (i, v) in l.iter().enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            refuse_float_decimals(&v, what, path)?;
            path.truncate(len);
        }
    }
    Ok(())
}

/// A record as a `dict`, decimals as `Decimal` and times as aware `datetime`s.
///
/// # Errors
/// If the record cannot be serialized (it always can).
pub fn dict_of_record<'py, T: Serialize>(py: Python<'py>, r: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(r).map_err(|e| invalid("record", e))?;
    typed(py, None, &v, DECIMALS, false)
}

/// A trade, position or order as a `dict`: its decimal fields as `Decimal` (its fills'
/// too), times as aware `datetime`s, `metadata` as stored.
///
/// # Errors
/// If the record cannot be serialized (it always can).
pub fn dict_of_trading<'py, T: Serialize>(py: Python<'py>, r: &T) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(r).map_err(|e| invalid("record", e))?;
    typed(py, None, &v, TRADING_DECIMALS, true)
}

fn typed<'py>(
    py: Python<'py>,
    key: Option<&str>,
    v: &Value,
    decimals: &[&str],
    lists: bool,
) -> PyResult<Bound<'py, PyAny>> {
    match (key, v) {
        (Some("metadata"), _) => py_of(py, v),
        (Some(k), Value::String(s)) if decimals.contains(&k) && s != "unmeasured" => {
            py_decimal(py, tierstate::parse_decimal("decimal", s).map_err(to_py)?)
        }
        (Some(k), Value::String(s)) if TIMES.contains(&k) => {
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| invalid(k, e))?;
            py_datetime(py, t.with_timezone(&chrono::Utc))
        }
        (Some("volume"), Value::Object(m)) => {
            let d = PyDict::new(py);
            for (token, amount) in m {
                d.set_item(
                    token,
                    typed(py, Some("amount_in"), amount, DECIMALS, false)?,
                )?;
            }
            Ok(d.into_any())
        }
        (_, Value::Object(m)) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, typed(py, Some(k), x, decimals, lists)?)?;
            }
            Ok(d.into_any())
        }
        // A trading record's lists of records (an order's `fills`).
        (Some(k), Value::Array(a)) if lists && TRADING_LISTS.contains(&k) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(typed(py, None, x, decimals, lists)?)?;
            }
            Ok(l.into_any())
        }
        _ => py_of(py, v),
    }
}

/// An accounting error as the Python exception.
pub fn acct(e: AccountingError) -> PyErr {
    let message = e.to_string();
    match e {
        AccountingError::Store(e) => to_py(e),
        AccountingError::InvalidInput { .. }
        | AccountingError::UnknownValue { .. }
        | AccountingError::InvalidTime { .. } => raise_named("InvalidInputError", message),
        AccountingError::SnapshotExists { .. }
        | AccountingError::LedgerEntryConflict { .. }
        | AccountingError::EventConflict { .. } => raise_named("AlreadyExistsError", message),
        AccountingError::NewerSchema { .. } => raise_named("SchemaError", message),
        AccountingError::Contended { .. } => raise_named("ConflictError", message),
        _ => raise_named("TierstateError", message),
    }
}

/// `(how, seq)` of an append: `("appended", n)` or `("duplicate", n)`.
pub fn recorded(r: Recorded) -> (&'static str, u64) {
    match r {
        Recorded::Appended(n) => ("appended", n),
        Recorded::Duplicate(n) => ("duplicate", n),
    }
}

/// What a snapshot save did: `("stored", seq)`, `("unchanged", None)` or
/// `("replaced", seq)`, with the write's sequence number.
pub fn saved(s: Saved) -> (&'static str, Option<u64>) {
    match s {
        Saved::Stored(n) => ("stored", Some(n)),
        Saved::Unchanged => ("unchanged", None),
        Saved::Replaced(n) => ("replaced", Some(n)),
    }
}

/// Snapshots as a list of dicts.
///
/// # Errors
/// As [`dict_of_record`].
pub fn snapshot_list<'py>(
    py: Python<'py>,
    snaps: &[PortfolioSnapshot],
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for s in snaps {
        out.append(dict_of_record(py, s)?)?;
    }
    Ok(out)
}

/// A ledger page as a list of entry dicts, each with its `seq`.
///
/// # Errors
/// As [`dict_of_record`].
pub fn entries<'py>(
    py: Python<'py>,
    page: &[tierstate::accounting::StoredLedgerEntry],
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for e in page {
        let d = dict_of_record(py, &e.entry)?;
        d.set_item("seq", e.seq)?;
        out.append(d)?;
    }
    Ok(out)
}

/// A ledger query: the newest `limit`, optionally since a time and of one intent type.
///
/// # Errors
/// `InvalidInputError` for a naive `since`.
pub fn query(
    limit: usize,
    since: Option<&Bound<'_, PyAny>>,
    intent_type: Option<String>,
) -> PyResult<LedgerQuery> {
    let mut q = LedgerQuery::newest(limit);
    q.since = since.map(crate::convert::datetime_of).transpose()?;
    q.intent_type = intent_type;
    Ok(q)
}

/// A snapshot from a `dict`.
///
/// # Errors
/// `InvalidInputError` naming the field.
pub fn snapshot_of(obj: &Bound<'_, PyAny>) -> PyResult<PortfolioSnapshot> {
    let s: PortfolioSnapshot = record_of("snapshot", obj)?;
    s.validate().map_err(acct)?;
    Ok(s)
}

/// A ledger entry from a `dict`.
///
/// # Errors
/// `InvalidInputError` naming the field.
pub fn entry_of(obj: &Bound<'_, PyAny>) -> PyResult<LedgerEntry> {
    let e: LedgerEntry = record_of("ledger entry", obj)?;
    e.validate().map_err(acct)?;
    Ok(e)
}
