//! The strategy and orders domains for Python: a strategy tick (state, trades, positions and
//! metrics in one transaction), order intents beside the venue's actual orders, and the
//! reconciliation engine against the simulated venue (`SimVenue`). Records cross as `dict`s of
//! their own field names, decoded by the records' own serde (decimals exact, floats refused).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{Map, Value};
use tierstate::orders::{
    Action, OrderIntent, OrdersError, SimExchange, StoredActual, StoredIntent,
};
use tierstate::strategy::{PositionRecord, Trade};

use crate::domain::{dict_of_trading, record_of};
use crate::errors::{invalid, raise_named, to_py};

/// An orders error as the Python exception.
pub fn orders(e: OrdersError) -> PyErr {
    let message = e.to_string();
    match e {
        OrdersError::Store(e) => to_py(e),
        OrdersError::InvalidInput { .. } | OrdersError::InvalidTransition { .. } => {
            raise_named("InvalidInputError", message)
        }
        OrdersError::IntentNotFound { .. } | OrdersError::OrderNotFound { .. } => {
            raise_named("NotFoundError", message)
        }
        OrdersError::NewerSchema { .. } => raise_named("SchemaError", message),
        _ => raise_named("TierstateError", message),
    }
}

/// A list of records of type `T` from a sequence of `dict`s.
///
/// # Errors
/// `InvalidInputError` naming the item and field.
pub fn records_of<T: serde::de::DeserializeOwned>(
    what: &'static str,
    items: &Bound<'_, PyAny>,
) -> PyResult<Vec<T>> {
    let mut out = Vec::new();
    for (i, item) in items.try_iter()?.enumerate() {
        let item = item?;
        out.push(
            record_of(what, &item)
                .map_err(|e| invalid(what, format!("item {i}: {}", e.value(item.py()))))?,
        );
    }
    Ok(out)
}

/// The tick's trades.
///
/// # Errors
/// `InvalidInputError` naming the trade and field.
pub fn trades_of(items: &Bound<'_, PyAny>) -> PyResult<Vec<Trade>> {
    records_of("trade", items)
}

/// The tick's positions, each checked as the book checks a record.
///
/// # Errors
/// `InvalidInputError` naming the position and field.
pub fn positions_of(items: &Bound<'_, PyAny>) -> PyResult<Vec<PositionRecord>> {
    records_of("position", items)
}

/// Metric points from a `dict` of name to a finite number.
///
/// # Errors
/// `InvalidInputError` for a value that is not a finite number.
pub fn metrics_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(String, f64)>> {
    let d = obj
        .cast::<PyDict>()
        .map_err(|_| invalid("metrics", "must be a dict of name to number"))?;
    let mut out = Vec::new();
    for (k, v) in d.iter() {
        let name: String = k
            .extract()
            .map_err(|_| invalid("metrics", "names must be strings"))?;
        let value: f64 = v
            .extract()
            .map_err(|_| invalid("metrics", format!("{name}: must be a number")))?;
        if !value.is_finite() {
            return Err(invalid("metrics", format!("{name}: must be finite")));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// An intent from a `dict` of `OrderIntent`'s fields.
///
/// # Errors
/// `InvalidInputError` naming the field.
pub fn intent_of(obj: &Bound<'_, PyAny>) -> PyResult<OrderIntent> {
    let i: OrderIntent = record_of("intent", obj)?;
    i.validate().map_err(orders)?;
    Ok(i)
}

/// A stored intent as a `dict`: the intent's fields and its document `version`.
///
/// # Errors
/// As [`dict_of_trading`].
pub fn intent_dict<'py>(py: Python<'py>, s: &StoredIntent) -> PyResult<Bound<'py, PyAny>> {
    let d = dict_of_trading(py, &s.intent)?;
    d.set_item("version", s.version)?;
    Ok(d)
}

/// An actual order as a `dict`: the order's fields, its `version`, `synced_at` and `recon`.
///
/// # Errors
/// As [`dict_of_trading`].
pub fn actual_dict<'py>(py: Python<'py>, a: &StoredActual) -> PyResult<Bound<'py, PyAny>> {
    let d = dict_of_trading(py, &a.order)?;
    d.set_item("version", a.version)?;
    d.set_item("synced_at", crate::convert::py_datetime(py, a.synced_at)?)?;
    d.set_item(
        "recon",
        serde_json::to_value(a.recon)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", a.recon)),
    )?;
    Ok(d)
}

/// A reconciliation pass as `{"actions": [(kind, intent)], "errors": [(intent, message)]}`.
///
/// # Errors
/// If Python cannot build the dict.
pub fn pass_dict<'py>(
    py: Python<'py>,
    pass: &tierstate::orders::Pass,
) -> PyResult<Bound<'py, PyDict>> {
    let actions = PyList::empty(py);
    for a in &pass.actions {
        let (kind, intent) = match a {
            Action::Place { intent, .. } => ("place", intent),
            Action::Adopt { intent } => ("adopt", intent),
            Action::Sync { intent } => ("sync", intent),
            Action::Modify { intent } => ("modify", intent),
            Action::Cancel { intent } => ("cancel", intent),
            Action::Done { intent } => ("done", intent),
        };
        actions.append((kind, intent.as_str()))?;
    }
    let errors = PyList::empty(py);
    for (intent, e) in &pass.errors {
        errors.append((intent.as_str(), e.to_string()))?;
    }
    let d = PyDict::new(py);
    d.set_item("actions", actions)?;
    d.set_item("errors", errors)?;
    Ok(d)
}

/// A strategy's state as the `dict` it was given.
pub type StateMap = Map<String, Value>;

/// The simulated venue (a real matching engine): in memory, or durable in its own file,
/// which it owns exclusively. Market makers' orders (`maker`) give the strategy's orders
/// something to trade against.
#[pyclass(frozen, module = "tierstate._native")]
pub struct SimVenue {
    pub(crate) venue: Arc<SimExchange>,
}

#[pymethods]
impl SimVenue {
    /// A venue in memory, or durable at `path` (created if missing, resumed if there).
    #[new]
    #[pyo3(signature = (path = None))]
    fn new(path: Option<std::path::PathBuf>) -> PyResult<Self> {
        let venue = match path {
            None => SimExchange::new(tierstate::orders::FaultPlan::none()),
            Some(p) => SimExchange::durable(
                &p,
                tierstate::orders::FaultPlan::none(),
                std::time::Duration::ZERO,
            )
            .map_err(|e| raise_named("BackendError", e.to_string()))?,
        };
        Ok(Self {
            venue: Arc::new(venue),
        })
    }

    /// Rests a market maker's limit order (or trades it against the book); returns it.
    fn maker<'py>(
        &self,
        py: Python<'py>,
        symbol: &str,
        side: &str,
        price: &Bound<'py, PyAny>,
        size: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let side = side.parse().map_err(|_| invalid("side", "buy or sell"))?;
        let price = crate::convert::decimal_of(price)?;
        let size = crate::convert::decimal_of(size)?;
        let o = self
            .venue
            .maker(symbol, side, price, size)
            .map_err(|e| raise_named("BackendError", e.to_string()))?;
        dict_of_trading(py, &o)
    }

    /// Every order placed with a client id, as the venue holds it.
    fn client_orders<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for o in self.venue.client_orders() {
            out.append(dict_of_trading(py, &o)?)?;
        }
        Ok(out)
    }
}
