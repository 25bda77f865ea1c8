//! A strategy's per-tick persistence: one tick = one transaction. The state checkpoint
//! (compare-and-swap), the tick's trades (idempotent by trade id), a positions snapshot and the
//! metric points commit in one batch, or nothing does — a crash can never leave a portfolio
//! that reflects fills missing from the trade log.
//!
//! Layout (in the deployment's records): the state is the deployment's versioned state;
//! journals `strategy.trades` (keyed by trade id), `strategy.positions` (one snapshot per
//! tick) and `strategy.m.<metric>` (one point per tick, by time).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    Append, DeploymentId, Error, JournalQuery, Name, PutMode, Result, StateStore, StateWrite,
    StreamAddr, WriteBatch,
};
use tierstate_positions::PositionRecord;

/// The trades journal.
pub const TRADES: &str = "strategy.trades";
/// The positions snapshots journal.
pub const POSITIONS: &str = "strategy.positions";
/// Prefix of each metric's journal.
pub const METRIC_PREFIX: &str = "strategy.m.";

/// Cash and positions per asset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdings {
    /// Cash per currency.
    pub cash: BTreeMap<String, Decimal>,
    /// Position size per symbol.
    pub positions: BTreeMap<String, Decimal>,
}

/// A strategy's state as most strategies keep it; any serde type can be used instead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyState {
    /// The time of the last tick.
    pub last_time: Option<DateTime<Utc>>,
    /// The last market event processed.
    pub last_event_id: Option<String>,
    /// Cash and positions.
    pub portfolio: Holdings,
    /// The strategy's own runtime values.
    pub runtime: Map<String, Value>,
    /// Running figures (PnL, exposure …).
    pub metrics: BTreeMap<String, Decimal>,
}

/// Which way a trade went: the one [`tierstate_core::Side`] of every domain.
pub use tierstate_core::Side;

/// One trade (a fill the strategy booked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trade {
    /// Unique per deployment: the idempotency key.
    pub trade_id: String,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The market.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Price.
    pub price: Decimal,
    /// Size (positive).
    pub size: Decimal,
    /// Fee paid.
    pub fee: Decimal,
    /// The position it changed (seed 003's trade rows carry one), if the strategy tracks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_id: Option<String>,
}

/// Where [`StrategyStore::trades_between`] continues: after this trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeCursor {
    time_us: i64,
    seq: u64,
}

/// One page of trades by time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradePage {
    /// The trades, oldest first by (time, commit order).
    pub trades: Vec<Trade>,
    /// Where the next page starts, if more trades are in the window.
    pub next: Option<TradeCursor>,
}

/// A stored positions snapshot: the one position record of every domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionsSnapshot {
    /// The tick's time.
    pub time: DateTime<Utc>,
    /// The positions.
    pub positions: Vec<PositionRecord>,
}

impl PositionsSnapshot {
    /// Decodes an entry of the positions journal; rows of the shape written before the one
    /// position record read through their step.
    ///
    /// # Errors
    /// `InvalidInput` for an entry that is neither.
    pub fn from_entry(value: Map<String, Value>) -> Result<Self> {
        let v1 = value
            .get("positions")
            .and_then(Value::as_array)
            .is_some_and(|p| {
                p.first()
                    .is_some_and(|r| r.get("symbol").is_some() && r.get("chain").is_none())
            });
        if v1 {
            decode::<PositionsSnapshotV1>("positions snapshot", value)?.step()
        } else {
            decode("positions snapshot", value)
        }
    }
}

/// A snapshot as tierstate up to 6e4015a wrote it: `{symbol, size, avg_price}` rows. Read as
/// perps on `venue` (its journal entries are never rewritten: the chain covers them).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PositionsSnapshotV1 {
    time: DateTime<Utc>,
    positions: Vec<PositionRowV1>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PositionRowV1 {
    symbol: String,
    size: Decimal,
    avg_price: Decimal,
}

impl PositionsSnapshotV1 {
    fn step(self) -> Result<PositionsSnapshot> {
        let positions = self
            .positions
            .into_iter()
            .map(|r| {
                let mut p = PositionRecord::perp(&r.symbol, "venue", &r.symbol)
                    .and_then(|p| p.with_times(self.time, self.time))
                    .map_err(|e| Error::invalid("positions snapshot", e.to_string()))?;
                p.amount = r.size;
                p.entry_price = (!r.avg_price.is_zero()).then_some(r.avg_price);
                p.validate()
                    .map_err(|e| Error::invalid("positions snapshot", e.to_string()))?;
                Ok(p)
            })
            .collect::<Result<_>>()?;
        Ok(PositionsSnapshot {
            time: self.time,
            positions,
        })
    }
}

/// One point of a metric series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    /// The tick's time.
    pub time: DateTime<Utc>,
    /// The value (always finite).
    pub value: f64,
}

/// What one tick commits.
#[derive(Debug, Clone)]
pub struct Tick<'a, S> {
    /// The tick's time (trades keep their own).
    pub time: DateTime<Utc>,
    /// The state version this tick follows (`None`: the first tick).
    pub expected: Option<u64>,
    /// The new state.
    pub state: &'a S,
    /// The tick's trades.
    pub trades: &'a [Trade],
    /// The positions as of this tick, if they are snapshotted.
    pub positions: Option<&'a [PositionRecord]>,
    /// Metric points (name, finite value).
    pub metrics: &'a [(&'a str, f64)],
}

/// A stored state checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<S> {
    /// The state.
    pub state: S,
    /// Its version: the next tick's `expected`.
    pub version: u64,
}

/// A planned tick ([`StrategyStore::plan_tick`]): add it to a batch with the tick's other
/// records and commit the batch.
#[derive(Debug, Clone)]
pub struct TickPlan {
    deployment: DeploymentId,
    trades: StreamAddr,
    trade_count: usize,
    batch: WriteBatch,
}

impl tierstate_core::Plan for TickPlan {
    fn ops(&self) -> &[tierstate_core::BatchOp] {
        self.batch.ops()
    }
}

impl TickPlan {
    /// What the tick committed, read from the commit of the batch it was part of.
    pub fn committed(&self, done: &tierstate_core::Committed) -> TickCommitted {
        let fresh = done
            .entries
            .iter()
            .filter(|e| e.entry.stream == self.trades && e.fresh)
            .count();
        TickCommitted {
            version: done
                .states
                .iter()
                .find(|s| s.deployment_id == self.deployment)
                .map_or(0, |s| s.version),
            new_trades: fresh,
            replayed_trades: self.trade_count - fresh.min(self.trade_count),
        }
    }
}

/// What a tick committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickCommitted {
    /// The state's new version.
    pub version: u64,
    /// Trades written now.
    pub new_trades: usize,
    /// Trades already stored with the same content (a replayed tick): nothing written.
    pub replayed_trades: usize,
}

/// A strategy's persistence on any [`StateStore`].
pub struct StrategyStore<S = StrategyState> {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    _state: PhantomData<fn() -> S>,
}

impl<S> Clone for StrategyStore<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            deployment: self.deployment.clone(),
            _state: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for StrategyStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrategyStore")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl<S: Serialize + DeserializeOwned> StrategyStore<S> {
    /// The strategy of `deployment` in `store`.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        Self {
            store,
            deployment: deployment.clone(),
            _state: PhantomData,
        }
    }

    fn stream(&self, name: &str) -> Result<StreamAddr> {
        Ok(StreamAddr {
            deployment_id: self.deployment.clone(),
            stream: Name::stream(name)?,
        })
    }

    fn metric_stream(&self, metric: &str) -> Result<StreamAddr> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if metric.is_empty() || metric.len() > 48 || !metric.chars().all(ok) {
            return Err(Error::invalid(
                "metric",
                format!("{metric:?}: must be 1..=48 bytes of A-Z a-z 0-9 _ . -"),
            ));
        }
        self.stream(&format!("{METRIC_PREFIX}{metric}"))
    }

    /// The last checkpoint, if any, decoded into `S`.
    ///
    /// # Errors
    /// `Integrity` for damaged bytes; `InvalidInput` if the stored state is not an `S`.
    pub async fn load(&self) -> Result<Option<Checkpoint<S>>> {
        let Some(d) = self.store.get(&self.deployment).await? else {
            return Ok(None);
        };
        let state = tierstate_core::exact::from_map(&d.state).map_err(|e| {
            Error::invalid(
                "strategy state",
                format!("{} v{} does not decode: {e}", self.deployment, d.version),
            )
        })?;
        Ok(Some(Checkpoint {
            state,
            version: d.version,
        }))
    }

    /// Commits one tick in one transaction: the state (compare-and-swap on `expected`), the
    /// trades, the positions snapshot and the metric points. A trade id stored with the same
    /// content is a replay (nothing written); with different content the whole tick fails.
    ///
    /// # Errors
    /// `Conflict`/`AlreadyExists` if the state moved since `expected`; `KeyReused` naming the
    /// trade; `InvalidInput` for a non-finite metric, a bad name, a non-positive trade size or
    /// a state that is not a JSON object. Nothing is written on error.
    pub async fn tick(&self, t: Tick<'_, S>) -> Result<TickCommitted> {
        let plan = self.plan_tick(t)?;
        let done = self.store.write(WriteBatch::new().with(&plan)).await?;
        Ok(plan.committed(&done))
    }

    /// Plans one tick: the records [`StrategyStore::tick`] commits, for a batch that also holds
    /// the tick's other records (ledger entries, a portfolio snapshot, order records), so all
    /// of them commit or none does. Read what it did with [`TickPlan::committed`].
    ///
    /// # Errors
    /// As [`StrategyStore::tick`], for the tick's own input.
    pub fn plan_tick(&self, t: Tick<'_, S>) -> Result<TickPlan> {
        // Typed: NaN and ±Infinity are refused with their field path (serde_json would store
        // them as null), as every typed state write does.
        let mode = match t.expected {
            Some(expected) => PutMode::Update { expected },
            None => PutMode::Create,
        };
        let write = StateWrite::typed(self.deployment.clone(), mode, t.state)?;
        let mut batch = WriteBatch::new().put(write);
        let trades = self.stream(TRADES)?;
        for tr in t.trades {
            batch = batch.append(self.trade_append(tr)?);
        }
        if let Some(rows) = t.positions {
            batch = batch.append(self.positions_append(t.time, rows)?);
        }
        for (name, value) in t.metrics {
            batch = batch.append(self.metric_append(t.time, name, *value)?);
        }
        Ok(TickPlan {
            deployment: self.deployment.clone(),
            trades,
            trade_count: t.trades.len(),
            batch,
        })
    }

    fn trade_append(&self, tr: &Trade) -> Result<Append> {
        if tr.size <= Decimal::ZERO || tr.price < Decimal::ZERO || tr.fee < Decimal::ZERO {
            return Err(Error::invalid(
                "trade",
                format!(
                    "{}: size must be positive, price and fee not negative",
                    tr.trade_id
                ),
            ));
        }
        if let Some(p) = &tr.position_id {
            tierstate_core::check_id("position id", p)?;
        }
        Ok(Append::typed(self.stream(TRADES)?, tr.time, tr)?.with_key(Name::key(&tr.trade_id)?))
    }

    fn positions_append(&self, time: DateTime<Utc>, rows: &[PositionRecord]) -> Result<Append> {
        for p in rows {
            p.validate()
                .map_err(|e| Error::invalid("positions", e.to_string()))?;
        }
        let snap = PositionsSnapshot {
            time,
            positions: rows.to_vec(),
        };
        Append::typed(self.stream(POSITIONS)?, time, &snap)
    }

    fn metric_append(&self, time: DateTime<Utc>, name: &str, value: f64) -> Result<Append> {
        if !value.is_finite() {
            return Err(Error::invalid(
                "metric",
                format!("{name} = {value}: only finite values are stored"),
            ));
        }
        let mut m = Map::new();
        m.insert("value".into(), Value::from(value));
        Ok(Append::new(self.metric_stream(name)?, time, m))
    }

    /// The idempotency key of a record stored once per `time` (microseconds).
    fn at_key(time: DateTime<Utc>) -> Result<Name> {
        Name::key(time.timestamp_micros().to_string())
    }

    /// Books one trade outside a tick, in its own transaction; idempotent by trade id (a
    /// replay with the same content writes nothing and returns `false`).
    ///
    /// # Errors
    /// `InvalidInput` for a bad trade; `KeyReused` if the id holds a different trade.
    pub async fn append_trade(&self, trade: &Trade) -> Result<bool> {
        let done = self
            .store
            .write(WriteBatch::new().append(self.trade_append(trade)?))
            .await?;
        Ok(done.entries.iter().any(|e| e.fresh))
    }

    /// Stores the positions as of `time` outside a tick, once per time: the same snapshot
    /// again writes nothing (`false`); a different one at the same time is `KeyReused`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad position; `KeyReused`.
    pub async fn upsert_positions(
        &self,
        time: DateTime<Utc>,
        positions: &[PositionRecord],
    ) -> Result<bool> {
        let append = self
            .positions_append(time, positions)?
            .with_key(Self::at_key(time)?);
        let done = self.store.write(WriteBatch::new().append(append)).await?;
        Ok(done.entries.iter().any(|e| e.fresh))
    }

    /// Stores metric points at `time` outside a tick, in one transaction, once per (time,
    /// name): a replay writes nothing; another value for the same (time, name) is
    /// `KeyReused`. Returns how many points were new.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name or a non-finite value (nothing is written); `KeyReused`.
    pub async fn append_metrics(
        &self,
        time: DateTime<Utc>,
        points: &[(&str, f64)],
    ) -> Result<usize> {
        let key = Self::at_key(time)?;
        let mut batch = WriteBatch::new();
        for (name, value) in points {
            batch = batch.append(
                self.metric_append(time, name, *value)?
                    .with_key(key.clone()),
            );
        }
        let done = self.store.write(batch).await?;
        Ok(done.entries.iter().filter(|e| e.fresh).count())
    }

    /// Trades with time in `[from, to)`, oldest first, at most `limit`, continuing after
    /// `after` (seed 003's trades by time range with a cursor).
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit or `from > to`; as [`StrategyStore::trades`].
    pub async fn trades_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
        after: Option<TradeCursor>,
    ) -> Result<TradePage> {
        if limit == 0 || from > to {
            return Err(Error::invalid(
                "trades",
                "the limit must be positive and from not after to",
            ));
        }
        let q = JournalQuery::Window {
            from,
            to,
            after: after.map(|c| (c.time_us, c.seq)),
            limit,
        };
        let page = self.store.read_journal(&self.stream(TRADES)?, q).await?;
        let next = if page.truncated || page.next.is_some() {
            page.entries.last().map(|e| TradeCursor {
                time_us: e.event_time.timestamp_micros(),
                seq: e.seq,
            })
        } else {
            None
        };
        let trades = page
            .entries
            .into_iter()
            .map(|e| decode("trade", e.value))
            .collect::<Result<_>>()?;
        Ok(TradePage { trades, next })
    }

    /// The positions snapshots with time in `[from, to)`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit; as [`StrategyStore::trades`].
    pub async fn position_history(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PositionsSnapshot>> {
        if limit == 0 {
            return Err(Error::invalid("limit", "must be positive"));
        }
        let page = self
            .store
            .read_journal(
                &self.stream(POSITIONS)?,
                JournalQuery::window(from, to, limit),
            )
            .await?;
        page.entries
            .into_iter()
            .map(|e| PositionsSnapshot::from_entry(e.value))
            .collect()
    }

    /// Several metrics' points with time in `[from, to)`, by name, each oldest first and at
    /// most `limit`; a name with no points maps to an empty series.
    ///
    /// # Errors
    /// As [`StrategyStore::metric`], for the first name that fails.
    pub async fn metrics(
        &self,
        names: &[&str],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<BTreeMap<String, Vec<MetricPoint>>> {
        let mut out = BTreeMap::new();
        for name in names {
            out.insert(
                (*name).to_owned(),
                self.metric(name, from, to, limit).await?,
            );
        }
        Ok(out)
    }

    /// The names of every metric this deployment has stored, in order.
    ///
    /// # Errors
    /// `Store` if the catalog cannot be read.
    pub async fn metric_names(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut after: Option<Name> = Name::stream(METRIC_PREFIX).ok();
        loop {
            let page = self
                .store
                .streams(&self.deployment, after.as_ref(), 1000)
                .await?;
            let full = page.len() == 1000;
            for s in &page {
                match s.as_str().strip_prefix(METRIC_PREFIX) {
                    Some(m) => out.push(m.to_owned()),
                    None if s.as_str() > METRIC_PREFIX => return Ok(out),
                    None => {}
                }
            }
            match page.last() {
                Some(last) if full => after = Some(last.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Every trade in commit order, from the `from`-th (1-based sequence), at most `limit`.
    ///
    /// # Errors
    /// `Integrity` for a damaged entry; `InvalidInput` for an entry that is not a trade.
    pub async fn trades(&self, from: u64, limit: usize) -> Result<Vec<Trade>> {
        let page = self
            .store
            .read_journal(
                &self.stream(TRADES)?,
                JournalQuery::from_seq(from.max(1), limit),
            )
            .await?;
        page.entries
            .into_iter()
            .map(|e| decode("trade", e.value))
            .collect()
    }

    /// The latest positions snapshot at or before `at` (`None`: the latest).
    ///
    /// # Errors
    /// As [`StrategyStore::trades`].
    pub async fn positions(&self, at: Option<DateTime<Utc>>) -> Result<Option<PositionsSnapshot>> {
        let q = match at {
            Some(t) => JournalQuery::AtOrBefore(t),
            None => JournalQuery::Last,
        };
        let page = self.store.read_journal(&self.stream(POSITIONS)?, q).await?;
        page.entries
            .into_iter()
            .next()
            .map(|e| PositionsSnapshot::from_entry(e.value))
            .transpose()
    }

    /// A metric's points with time in `[from, to)`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad name or an empty window; as [`StrategyStore::trades`].
    pub async fn metric(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<MetricPoint>> {
        let page = self
            .store
            .read_journal(
                &self.metric_stream(name)?,
                JournalQuery::window(from, to, limit),
            )
            .await?;
        page.entries.into_iter().map(|e| point(name, e)).collect()
    }

    /// A metric's newest point (by commit order), if it has any: what a dashboard shows.
    ///
    /// # Errors
    /// As [`StrategyStore::metric`].
    pub async fn latest_metric(&self, name: &str) -> Result<Option<MetricPoint>> {
        let page = self
            .store
            .read_journal(&self.metric_stream(name)?, JournalQuery::Last)
            .await?;
        page.entries
            .into_iter()
            .next()
            .map(|e| point(name, e))
            .transpose()
    }
}

/// A metric entry as its point.
fn point(name: &str, e: tierstate_core::JournalEntry) -> Result<MetricPoint> {
    let value = e
        .value
        .get("value")
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::invalid("metric", format!("{name} #{} holds no value", e.seq)))?;
    Ok(MetricPoint {
        time: e.event_time,
        value,
    })
}

fn decode<T: DeserializeOwned + Serialize>(what: &'static str, v: Map<String, Value>) -> Result<T> {
    tierstate_core::exact::from_map(&v).map_err(|e| Error::invalid(what, e.to_string()))
}
