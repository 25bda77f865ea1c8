//! `Store` (the front door's handle) and `State` (one stored version) for Python. Every call
//! blocks on the process's runtime with the GIL released; the package adds the async twins.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tierstate::{DeploymentId, StateData, Tierstate};

use crate::convert::{dict_of, py_datetime, state_of};
use crate::domain;
use crate::errors::to_py;
use crate::runtime::block_on;
use crate::trading;

/// Opens the store at `url` (`sqlite:PATH`, `redb:PATH`, `postgres://…`, `memory:`).
///
/// # Errors
/// `InvalidInputError` for a bad URL; the store's errors.
#[pyfunction]
#[pyo3(signature = (url, *, hot = true))]
pub fn open(py: Python<'_>, url: &str, hot: bool) -> PyResult<Store> {
    let url = url.to_owned();
    let ts = block_on(py, async move {
        let mut b = Tierstate::builder().url(&url)?;
        if !hot {
            b = b.without_hot();
        }
        b.open().await
    })?
    .map_err(to_py)?;
    Ok(Store { ts: Arc::new(ts) })
}

/// One store: states with versions and history, metrics.
#[pyclass(frozen, module = "tierstate._native")]
pub struct Store {
    ts: Arc<Tierstate>,
}

fn id_of(s: &str) -> PyResult<DeploymentId> {
    DeploymentId::new(s).map_err(to_py)
}

#[pymethods]
impl Store {
    /// The current state of `deployment_id`, or `None`.
    fn load(&self, py: Python<'_>, deployment_id: &str) -> PyResult<Option<State>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let got = block_on(py, async move { ts.state().load(&id).await })?.map_err(to_py)?;
        Ok(got.map(State))
    }

    /// The current state if HOT holds it (and may be trusted now), with no I/O and without
    /// releasing the GIL; `None` otherwise (then [`Store::load`] reads WARM). What an async
    /// caller asks first, so a HOT hit never waits for a thread.
    fn load_cached(&self, deployment_id: &str) -> PyResult<Option<State>> {
        Ok(self
            .ts
            .state()
            .load_cached(&id_of(deployment_id)?)
            .map(State))
    }

    /// Creates the first version; `AlreadyExistsError` if there is one.
    fn create(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<State> {
        let (ts, id, state) = (self.ts.clone(), id_of(deployment_id)?, state_of(state)?);
        let done =
            block_on(py, async move { ts.state().create(&id, state).await })?.map_err(to_py)?;
        Ok(State(done))
    }

    /// Replaces exactly version `expected`; `ConflictError` (with both versions) otherwise.
    fn update(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        expected: u64,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<State> {
        let (ts, id, state) = (self.ts.clone(), id_of(deployment_id)?, state_of(state)?);
        let done = block_on(
            py,
            async move { ts.state().update(&id, expected, state).await },
        )?
        .map_err(to_py)?;
        Ok(State(done))
    }

    /// Writes a new version whatever is stored (creating the first).
    fn overwrite(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<State> {
        let (ts, id, state) = (self.ts.clone(), id_of(deployment_id)?, state_of(state)?);
        let done = block_on(py, async move {
            ts.state()
                .save(tierstate::StateWrite::overwrite(id, state))
                .await
        })?
        .map_err(to_py)?;
        Ok(State(done))
    }

    /// Deletes the state and its history; `True` if there was one.
    fn delete(&self, py: Python<'_>, deployment_id: &str) -> PyResult<bool> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        block_on(py, async move { ts.state().delete(&id).await })?.map_err(to_py)
    }

    /// Up to `limit` retained versions, newest first.
    #[pyo3(signature = (deployment_id, limit = 20))]
    fn history(&self, py: Python<'_>, deployment_id: &str, limit: usize) -> PyResult<Vec<State>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let got =
            block_on(py, async move { ts.state().history(&id, limit).await })?.map_err(to_py)?;
        Ok(got.into_iter().map(|s| State(Arc::new(s))).collect())
    }

    /// One retained version, or `None`.
    fn load_version(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        version: u64,
    ) -> PyResult<Option<State>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let got = block_on(
            py,
            async move { ts.state().load_version(&id, version).await },
        )?
        .map_err(to_py)?;
        Ok(got.map(|s| State(Arc::new(s))))
    }

    /// Drops `deployment_id` from HOT (every deployment if `None`); the next load reads WARM.
    #[pyo3(signature = (deployment_id = None))]
    fn invalidate(&self, deployment_id: Option<&str>) -> PyResult<()> {
        match deployment_id {
            Some(d) => self.ts.state().invalidate(&id_of(d)?),
            None => self.ts.state().invalidate_all(),
        }
        Ok(())
    }

    /// Every deployment holding a state, in id order.
    fn deployments(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let ts = self.ts.clone();
        block_on(py, async move {
            let mut out = Vec::new();
            let mut after: Option<DeploymentId> = None;
            loop {
                let page = ts.warm().list(after.as_ref(), 1000).await?;
                let full = page.len() == 1000;
                after = page.last().cloned();
                out.extend(page.into_iter().map(|d| d.as_str().to_owned()));
                if !full {
                    return Ok(out);
                }
            }
        })?
        .map_err(to_py)
    }

    /// The most recent operations, newest first: dicts of domain, tier, op, latency_us and
    /// outcome.
    #[pyo3(signature = (limit = 100))]
    fn metrics<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in self.ts.metrics().latest(limit) {
            let d = PyDict::new(py);
            d.set_item("domain", r.domain)?;
            d.set_item("tier", r.tier.to_string())?;
            d.set_item("op", r.op.name())?;
            d.set_item("latency_us", r.latency.as_secs_f64() * 1e6)?;
            d.set_item("outcome", format!("{:?}", r.outcome).to_lowercase())?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Per tier: operations, hits and misses, outcomes, hit and success rates, and mean, p50
    /// and p99 latency in milliseconds.
    fn metrics_summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        for t in self.ts.metrics().summary() {
            let d = PyDict::new(py);
            d.set_item("total", t.total)?;
            d.set_item("hits", t.hits)?;
            d.set_item("misses", t.misses)?;
            d.set_item("ok", t.ok)?;
            d.set_item("conflicts", t.conflicts)?;
            d.set_item("not_found", t.not_found)?;
            d.set_item("errors", t.errors)?;
            d.set_item("hit_rate", t.hit_rate)?;
            d.set_item("success_rate", t.success_rate)?;
            d.set_item("mean_ms", ms(t.mean))?;
            d.set_item("p50_ms", ms(t.p50))?;
            d.set_item("p99_ms", ms(t.p99))?;
            out.set_item(t.tier.to_string(), d)?;
        }
        Ok(out)
    }

    /// Forgets the recorded operations.
    fn clear_metrics(&self) {
        self.ts.metrics().clear();
    }

    /// The WARM backend's name: `sqlite`, `redb`, `postgres` or `memory`.
    #[getter]
    fn backend(&self) -> String {
        self.ts.warm().backend().to_owned()
    }

    /// One strategy tick in one transaction: the state (a dict) over version `expected`
    /// (`None`: the first tick), the tick's trades, the positions as of now (optional) and
    /// metric points (name to number). Returns `(version, new_trades, replayed_trades)`.
    #[pyo3(signature = (deployment_id, state, *, expected, time, trades = None, positions = None, metrics = None))]
    #[allow(clippy::too_many_arguments)]
    fn strategy_tick(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        state: &Bound<'_, PyAny>,
        expected: Option<u64>,
        time: &Bound<'_, PyAny>,
        trades: Option<&Bound<'_, PyAny>>,
        positions: Option<&Bound<'_, PyAny>>,
        metrics: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, usize, usize)> {
        let (ts, id, state) = (self.ts.clone(), id_of(deployment_id)?, state_of(state)?);
        let time = crate::convert::datetime_of(time)?;
        let trades = trades
            .map(trading::trades_of)
            .transpose()?
            .unwrap_or_default();
        let positions = positions.map(trading::positions_of).transpose()?;
        let metrics = metrics
            .map(trading::metrics_of)
            .transpose()?
            .unwrap_or_default();
        let done = block_on(py, async move {
            let points: Vec<(&str, f64)> = metrics.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            ts.strategy::<trading::StateMap>(&id)
                .tick(tierstate::strategy::Tick {
                    time,
                    expected,
                    state: &state,
                    trades: &trades,
                    positions: positions.as_deref(),
                    metrics: &points,
                })
                .await
        })?
        .map_err(to_py)?;
        Ok((done.version, done.new_trades, done.replayed_trades))
    }

    /// The strategy's trades in commit order from the `from_seq`-th (1-based), at most `limit`.
    #[pyo3(signature = (deployment_id, from_seq = 1, limit = 1000))]
    fn strategy_trades<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        from_seq: u64,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let trades = block_on(py, async move {
            ts.strategy::<trading::StateMap>(&id)
                .trades(from_seq, limit)
                .await
        })?
        .map_err(to_py)?;
        let out = PyList::empty(py);
        for t in &trades {
            out.append(domain::dict_of_trading(py, t)?)?;
        }
        Ok(out)
    }

    /// A strategy metric's newest point as `(time, value)`, or `None`.
    fn strategy_latest_metric<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        name: &str,
    ) -> PyResult<Option<(Bound<'py, PyAny>, f64)>> {
        let (ts, id, name) = (self.ts.clone(), id_of(deployment_id)?, name.to_owned());
        let p = block_on(py, async move {
            ts.strategy::<trading::StateMap>(&id)
                .latest_metric(&name)
                .await
        })?
        .map_err(to_py)?;
        p.map(|p| Ok((py_datetime(py, p.time)?, p.value)))
            .transpose()
    }

    /// Stores a new order intent (a dict of `OrderIntent`'s fields); returns it with its
    /// `version`. The same create again returns what is stored.
    fn intent_create<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        intent: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ts, id, intent) = (
            self.ts.clone(),
            id_of(deployment_id)?,
            trading::intent_of(intent)?,
        );
        let stored = block_on(
            py,
            async move { ts.orders(&id).create_intent(&intent).await },
        )?
        .map_err(trading::orders)?;
        trading::intent_dict(py, &stored)
    }

    /// Replaces an intent over its stored `expected_version` (a conflict if it moved).
    fn intent_update<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        intent: &Bound<'py, PyAny>,
        expected_version: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ts, id, next) = (
            self.ts.clone(),
            id_of(deployment_id)?,
            trading::intent_of(intent)?,
        );
        let stored = block_on(py, async move {
            let o = ts.orders(&id);
            let current = o.intent(&next.intent_id).await?.ok_or_else(|| {
                tierstate::orders::OrdersError::IntentNotFound {
                    deployment: id.to_string(),
                    intent: next.intent_id.clone(),
                }
            })?;
            // Over the version the caller read: the store's CAS refuses it with expected and
            // actual if the intent moved since.
            let read = tierstate::orders::StoredIntent {
                version: expected_version,
                ..current
            };
            o.update_intent(&read, next).await
        })?
        .map_err(trading::orders)?;
        trading::intent_dict(py, &stored)
    }

    /// Withdraws an intent (the engine cancels its order); `False` if there was none.
    fn intent_delete(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        intent_id: &str,
    ) -> PyResult<bool> {
        let (ts, id, intent_id) = (self.ts.clone(), id_of(deployment_id)?, intent_id.to_owned());
        block_on(py, async move {
            let o = ts.orders(&id);
            match o.intent(&intent_id).await? {
                Some(current) => o
                    .delete_intent(&current, chrono::Utc::now())
                    .await
                    .map(|()| true),
                None => Ok(false),
            }
        })?
        .map_err(trading::orders)
    }

    /// The deployment's intents (each with its `version`), optionally of one symbol.
    #[pyo3(signature = (deployment_id, symbol = None))]
    fn intents<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        symbol: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let all = block_on(py, async move {
            ts.orders(&id).intents(symbol.as_deref(), None).await
        })?
        .map_err(trading::orders)?;
        let out = PyList::empty(py);
        for i in &all {
            out.append(trading::intent_dict(py, i)?)?;
        }
        Ok(out)
    }

    /// The orders on the venue as last synced (each with `version`, `synced_at`, `recon`).
    #[pyo3(signature = (deployment_id, symbol = None))]
    fn actual_orders<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        symbol: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let all = block_on(py, async move {
            ts.orders(&id).actuals(symbol.as_deref(), None).await
        })?
        .map_err(trading::orders)?;
        let out = PyList::empty(py);
        for a in &all {
            out.append(trading::actual_dict(py, a)?)?;
        }
        Ok(out)
    }

    /// One reconciliation pass of the deployment's intents against `venue`: places, syncs,
    /// modifies (beyond `tolerance`, a price distance) and cancels; returns
    /// `{"actions": [(kind, intent_id)], "errors": [(intent_id, message)]}`.
    #[pyo3(signature = (deployment_id, venue, tolerance = None))]
    fn reconcile<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        venue: &trading::SimVenue,
        tolerance: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let tolerance = tolerance
            .map(crate::convert::decimal_of)
            .transpose()?
            .unwrap_or_default();
        let exchange: Arc<dyn tierstate::orders::Exchange> = venue.venue.clone();
        let pass = block_on(py, async move {
            tierstate::orders::Reconciler::new(ts.orders(&id), exchange, tolerance)
                .reconcile_all()
                .await
        })?
        .map_err(trading::orders)?;
        trading::pass_dict(py, &pass)
    }

    /// Appends a ledger entry (a dict of `LedgerEntry`'s fields); idempotent by its id:
    /// returns `("appended", seq)` or `("duplicate", seq)`.
    fn ledger_append(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        entry: &Bound<'_, PyAny>,
    ) -> PyResult<(&'static str, u64)> {
        let (ts, id, entry) = (
            self.ts.clone(),
            id_of(deployment_id)?,
            domain::entry_of(entry)?,
        );
        let r = block_on(py, async move { ts.ledger(&id).append(&entry).await })?
            .map_err(domain::acct)?;
        Ok(domain::recorded(r))
    }

    /// The newest ledger entries (each with its `seq`), optionally since an aware time and of
    /// one intent type.
    #[pyo3(signature = (deployment_id, limit = 20, since = None, intent_type = None))]
    fn ledger_entries<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        limit: usize,
        since: Option<&Bound<'py, PyAny>>,
        intent_type: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (ts, id, q) = (
            self.ts.clone(),
            id_of(deployment_id)?,
            domain::query(limit, since, intent_type)?,
        );
        let page =
            block_on(py, async move { ts.ledger(&id).entries(&q).await })?.map_err(domain::acct)?;
        domain::entries(py, &page.entries)
    }

    /// The ledger's running totals: count, successes, gas, volume per token, first and last
    /// times.
    fn ledger_stats<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let st =
            block_on(py, async move { ts.ledger(&id).stats().await })?.map_err(domain::acct)?;
        domain::dict_of_record(py, &st)
    }

    /// Saves a portfolio snapshot (a dict of `PortfolioSnapshot`'s fields): `("stored", seq)`,
    /// or `("unchanged", None)` for the same one again; a different one at that time is an
    /// `AlreadyExistsError` unless `upsert` (then `("replaced", seq)`).
    #[pyo3(signature = (deployment_id, snapshot, upsert = false))]
    fn snapshot_save(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        snapshot: &Bound<'_, PyAny>,
        upsert: bool,
    ) -> PyResult<(&'static str, Option<u64>)> {
        let (ts, id, snap) = (
            self.ts.clone(),
            id_of(deployment_id)?,
            domain::snapshot_of(snapshot)?,
        );
        let r = block_on(py, async move {
            let p = ts.portfolio(&id);
            if upsert {
                p.upsert_snapshot(&snap).await
            } else {
                p.save_snapshot(&snap).await
            }
        })?
        .map_err(domain::acct)?;
        Ok(domain::saved(r))
    }

    /// The newest snapshot, or `None`.
    fn snapshot_latest<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let s =
            block_on(py, async move { ts.portfolio(&id).latest().await })?.map_err(domain::acct)?;
        s.map(|s| domain::dict_of_record(py, &s)).transpose()
    }

    /// The oldest snapshot, or `None`.
    fn snapshot_first<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let s =
            block_on(py, async move { ts.portfolio(&id).first().await })?.map_err(domain::acct)?;
        s.map(|s| domain::dict_of_record(py, &s)).transpose()
    }

    /// The snapshot at or before an aware time, or `None`.
    fn snapshot_at<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        time: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (ts, id, t) = (
            self.ts.clone(),
            id_of(deployment_id)?,
            crate::convert::datetime_of(time)?,
        );
        let s = block_on(py, async move { ts.portfolio(&id).at_or_before(t).await })?
            .map_err(domain::acct)?;
        s.map(|s| domain::dict_of_record(py, &s)).transpose()
    }

    /// The newest `n` snapshots, oldest first.
    fn snapshots_recent<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        n: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let s = block_on(py, async move { ts.portfolio(&id).recent(n).await })?
            .map_err(domain::acct)?;
        domain::snapshot_list(py, &s)
    }

    /// The portfolio metrics (a dict of `PortfolioMetrics`'s fields) and their version, or
    /// `None`.
    fn metrics_load<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
    ) -> PyResult<Option<(Bound<'py, PyAny>, u64)>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let m = block_on(py, async move { ts.portfolio(&id).load_metrics().await })?
            .map_err(domain::acct)?;
        m.map(|m| Ok((domain::dict_of_record(py, &m.metrics)?, m.version)))
            .transpose()
    }

    /// Saves the portfolio metrics over version `expected` (`None`: the first save); returns
    /// the new version (`ConflictError` if another writer saved first).
    #[pyo3(signature = (deployment_id, metrics, expected = None))]
    fn metrics_save(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        metrics: &Bound<'_, PyAny>,
        expected: Option<u64>,
    ) -> PyResult<u64> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let m: tierstate::accounting::PortfolioMetrics =
            domain::record_of("portfolio metrics", metrics)?;
        m.validate().map_err(domain::acct)?;
        block_on(py, async move {
            ts.portfolio(&id).save_metrics(&m, expected).await
        })?
        .map_err(domain::acct)
    }

    /// A versioned document of `deployment_id` (any collection and key the caller names), as
    /// `{"value": dict, "version": int, "created_at": datetime, "updated_at": datetime}`, or
    /// `None`. Its checksum is verified on the read.
    fn document<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        collection: &str,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let (ts, addr) = (self.ts.clone(), doc_addr(deployment_id, collection, key)?);
        let got = block_on(py, async move {
            ts.records("documents").get_document(&addr).await
        })?
        .map_err(to_py)?;
        got.map(|d| doc_dict(py, &d)).transpose()
    }

    /// Writes a document: the first version (`expected=None`), over exactly version
    /// `expected` (`ConflictError` with both versions otherwise), or with `overwrite=True`
    /// whatever is there. Returns the document as stored.
    #[pyo3(signature = (deployment_id, collection, key, value, expected = None, overwrite = false))]
    #[allow(clippy::too_many_arguments)]
    fn document_put<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        collection: &str,
        key: &str,
        value: &Bound<'py, PyAny>,
        expected: Option<u64>,
        overwrite: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (ts, addr) = (self.ts.clone(), doc_addr(deployment_id, collection, key)?);
        let value = state_of(value)?;
        let mode = match (overwrite, expected) {
            (true, _) => tierstate::PutMode::Overwrite,
            (false, Some(v)) => tierstate::PutMode::Update { expected: v },
            (false, None) => tierstate::PutMode::Create,
        };
        let write = tierstate::DocWrite::new(addr, mode, value);
        let done = block_on(py, async move {
            ts.records("documents").put_document(write).await
        })?
        .map_err(to_py)?;
        doc_dict(py, &done)
    }

    /// Removes a document and its history (only at version `expected` if given); whether
    /// there was one.
    #[pyo3(signature = (deployment_id, collection, key, expected = None))]
    fn document_delete(
        &self,
        py: Python<'_>,
        deployment_id: &str,
        collection: &str,
        key: &str,
        expected: Option<u64>,
    ) -> PyResult<bool> {
        let (ts, addr) = (self.ts.clone(), doc_addr(deployment_id, collection, key)?);
        block_on(py, async move {
            ts.records("documents")
                .delete_document(&addr, expected)
                .await
        })?
        .map_err(to_py)
    }

    /// Removes every deployment's portfolio snapshots older than `retention_days` days (each
    /// deployment's lifetime NAV fold is kept) and returns how many went.
    #[pyo3(signature = (retention_days = 7))]
    fn cleanup_old_snapshots(&self, py: Python<'_>, retention_days: u32) -> PyResult<u64> {
        let ts = self.ts.clone();
        block_on(
            py,
            async move { ts.cleanup_old_snapshots(retention_days).await },
        )?
        .map_err(domain::acct)
    }

    /// Snapshots with `start <= time <= end` (either open), oldest first.
    #[pyo3(signature = (deployment_id, start = None, end = None))]
    fn snapshots<'py>(
        &self,
        py: Python<'py>,
        deployment_id: &str,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        let start = start.map(crate::convert::datetime_of).transpose()?;
        let end = end.map(crate::convert::datetime_of).transpose()?;
        let w = block_on(py, async move {
            ts.portfolio(&id).window(start, end, None).await
        })?
        .map_err(domain::acct)?;
        let out = PyList::empty(py);
        for s in &w.snapshots {
            out.append(domain::dict_of_record(py, s)?)?;
        }
        Ok(out)
    }

    /// Loads `deployment_id` `n` times in Rust and returns nanoseconds per load: the same HOT
    /// hit without Python, for measuring what the binding adds (the benches use it).
    fn _bench_hot_hits(&self, py: Python<'_>, deployment_id: &str, n: u64) -> PyResult<f64> {
        let (ts, id) = (self.ts.clone(), id_of(deployment_id)?);
        block_on(py, async move {
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(ts.state().load(&id).await?);
            }
            Ok(t.elapsed().as_nanos() as f64 / n.max(1) as f64)
        })?
        .map_err(to_py)
    }

    /// Closes the store: file locks are released (the same file reopens in this process);
    /// later calls fail.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let ts = self.ts.clone();
        block_on(py, async move { ts.close().await })
    }
}

/// A document's address from the caller's names (each checked).
fn doc_addr(deployment_id: &str, collection: &str, key: &str) -> PyResult<tierstate::DocAddr> {
    tierstate::DocAddr::new(deployment_id, collection, key).map_err(to_py)
}

/// A document as the dict the Python calls return.
fn doc_dict<'py>(py: Python<'py>, d: &tierstate::Document) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("value", crate::convert::dict_of(py, &d.value)?)?;
    out.set_item("version", d.version)?;
    out.set_item("created_at", crate::convert::py_datetime(py, d.created_at)?)?;
    out.set_item("updated_at", crate::convert::py_datetime(py, d.updated_at)?)?;
    Ok(out)
}

/// One stored version of a deployment's state.
#[pyclass(frozen, module = "tierstate._native")]
pub struct State(pub Arc<StateData>);

#[pymethods]
impl State {
    /// The deployment.
    #[getter]
    fn deployment_id(&self) -> &str {
        self.0.deployment_id.as_str()
    }
    /// The version (1, 2, 3 …).
    #[getter]
    fn version(&self) -> u64 {
        self.0.version
    }
    /// The state, a new `dict` on each access.
    #[getter]
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict_of(py, &self.0.state)
    }
    /// The payload schema version.
    #[getter]
    fn schema_version(&self) -> u32 {
        self.0.schema_version
    }
    /// SHA-256 of the canonical JSON, hex.
    #[getter]
    fn checksum(&self) -> String {
        self.0.checksum.to_hex()
    }
    /// When the first version was written (UTC).
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py_datetime(py, self.0.created_at)
    }
    /// When this version was written (UTC).
    #[getter]
    fn updated_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py_datetime(py, self.0.updated_at)
    }
    /// `HOT` or `WARM`: where this read came from.
    #[getter]
    fn loaded_from(&self) -> String {
        self.0.loaded_from.to_string()
    }
    fn __repr__(&self) -> String {
        format!(
            "State(deployment_id={:?}, version={}, checksum={:?})",
            self.0.deployment_id.as_str(),
            self.0.version,
            &self.0.checksum.to_hex()[..12]
        )
    }
}
