//! Values across the boundary, exactly: a state is a `dict` of JSON values (a `Decimal` is
//! kept as its exact text, as seed 000 stores it; an aware `datetime` as RFC 3339 UTC);
//! anything else (a set, a NaN, a non-string key, a naive datetime) is refused with the JSON
//! path of the field. Decimals parse from their text, never through a float.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};

use crate::errors::invalid;

/// A `dict` as a state: a JSON object.
///
/// # Errors
/// `InvalidInputError` naming the path of the first value that has no exact JSON form.
pub fn state_of(obj: &Bound<'_, PyAny>) -> PyResult<Map<String, Value>> {
    match json_of(obj, &mut String::from("$"))? {
        Value::Object(m) => Ok(m),
        _ => Err(invalid("state", "must be a dict")),
    }
}

fn json_of(obj: &Bound<'_, PyAny>, path: &mut String) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(invalid_at(
            path,
            "an integer beyond 64 bits has no exact JSON number here; store it as a str or Decimal",
        ));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value();
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| invalid_at(path, &format!("{f} is not a finite number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(invalid_at(path, &format!("key {} is not a str", k.repr()?)));
            };
            let k = k.to_str()?.to_owned();
            let len = path.len();
            path.push('.');
            path.push_str(&k);
            let v = json_of(&v, path)?;
            path.truncate(len);
            m.insert(k, v);
        }
        return Ok(Value::Object(m));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            out.push(json_of(&item?, path)?);
            path.truncate(len);
        }
        return Ok(Value::Array(out));
    }
    let class = obj.get_type().name()?.to_string();
    match class.as_str() {
        "Decimal" => {
            let d = decimal_of(obj).map_err(|e| invalid_at(path, &e.to_string()))?;
            Ok(Value::String(d.to_string()))
        }
        "datetime" => {
            let t = datetime_of(obj).map_err(|e| invalid_at(path, &e.to_string()))?;
            Ok(Value::String(
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ))
        }
        other => Err(invalid_at(
            path,
            &format!(
                "a {other} has no JSON form (use a dict, list, str, int, float, bool, None, Decimal or an aware datetime)"
            ),
        )),
    }
}

fn invalid_at(path: &str, why: &str) -> PyErr {
    invalid("state", format!("{path}: {why}"))
}

/// Any value as JSON, by the same rules as a state (for records given as `dict`s).
///
/// # Errors
/// `InvalidInputError` naming the path under `what`.
pub fn json_of_any(obj: &Bound<'_, PyAny>, what: &'static str) -> PyResult<Value> {
    json_of(obj, &mut String::from("$")).map_err(|e| {
        Python::attach(|py| {
            let msg =
                e.value(py)
                    .to_string()
                    .replacen("invalid state", &format!("invalid {what}"), 1);
            invalid(what, msg.trim_start_matches(&format!("invalid {what}: ")))
        })
    })
}

/// A JSON value as Python: objects are `dict`s, numbers `int` or `float`.
pub fn py_of<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let items: Vec<Bound<'py, PyAny>> =
                a.iter().map(|x| py_of(py, x)).collect::<PyResult<_>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => dict_of(py, m)?.into_any(),
    })
}

/// A JSON object as a `dict`.
pub fn dict_of<'py>(py: Python<'py>, m: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, py_of(py, v)?)?;
    }
    Ok(d)
}

/// A `Decimal` (or `int`, or decimal text) exactly; a `float` is refused (it has already
/// been rounded), as are NaN and infinities.
///
/// # Errors
/// `InvalidInputError` saying why.
pub fn decimal_of(obj: &Bound<'_, PyAny>) -> PyResult<Decimal> {
    if obj.is_instance_of::<PyFloat>() {
        return Err(invalid(
            "decimal",
            "a float is refused: it has already been rounded; pass a Decimal or its text",
        ));
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid("decimal", "a bool is not a number"));
    }
    let text: String = obj.str()?.to_str()?.to_owned();
    tierstate::parse_decimal("decimal", &text).map_err(|e| match e {
        tierstate::Error::InvalidInput { reason, .. } => invalid("decimal", reason),
        other => crate::errors::to_py(other),
    })
}

/// A `Decimal` for Python, from its exact text.
pub fn py_decimal<'py>(py: Python<'py>, d: Decimal) -> PyResult<Bound<'py, PyAny>> {
    py.import("decimal")?
        .getattr("Decimal")?
        .call1((d.to_string(),))
}

/// An aware `datetime` of any offset, as UTC; a naive one is refused.
///
/// # Errors
/// `InvalidInputError` for a naive datetime or another type.
pub fn datetime_of(obj: &Bound<'_, PyAny>) -> PyResult<DateTime<Utc>> {
    let class = obj.get_type().name()?.to_string();
    if class != "datetime" {
        return Err(invalid(
            "datetime",
            format!("expected an aware datetime, got a {class}"),
        ));
    }
    if obj.call_method0("utcoffset")?.is_none() {
        return Err(invalid(
            "datetime",
            "a naive datetime is refused: give it a timezone (e.g. tzinfo=timezone.utc)",
        ));
    }
    let text: String = obj.call_method0("isoformat")?.extract()?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| invalid("datetime", format!("{text}: {e}")))
}

/// A UTC time as an aware `datetime` (offset +00:00).
pub fn py_datetime<'py>(py: Python<'py>, t: DateTime<Utc>) -> PyResult<Bound<'py, PyAny>> {
    let text = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    py.import("datetime")?
        .getattr("datetime")?
        .call_method1("fromisoformat", (text,))
}

/// Round-trips a value through the binding's conversions, as tierstate would store and load
/// it: a dict as a state, a Decimal exactly, a datetime as UTC. For tests and for checking a
/// value before a write.
///
/// # Errors
/// `InvalidInputError` as a write would raise it.
#[pyfunction]
pub fn roundtrip<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let class = value.get_type().name()?.to_string();
    match class.as_str() {
        "Decimal" | "float" => py_decimal(py, decimal_of(value)?),
        "datetime" => py_datetime(py, datetime_of(value)?),
        _ => Ok(dict_of(py, &state_of(value)?)?.into_any()),
    }
}
