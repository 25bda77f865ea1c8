//! A portfolio snapshot: what the portfolio was worth at one instant.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_positions::PositionRecord;

use crate::amount::Amount;
use crate::error::{AccountingError, Result};
use crate::text::{check_id, text_enum};
use crate::time::{parse_utc, truncate_to_micros};

text_enum!(
    /// How far the snapshot's total value can be trusted.
    ValueConfidence, "value confidence", "high, medium, low, unavailable" {
        /// Every position priced from a live source.
        High = "high",
        /// Some positions priced from a fallback source.
        Medium = "medium",
        /// Stale or estimated prices.
        Low = "low",
        /// The value could not be established.
        Unavailable = "unavailable",
    }
);

text_enum!(
    /// Whether the strategy trades for real.
    ExecutionMode, "execution mode", "live, paper, dry_run" {
        /// Real orders on a real venue.
        Live = "live",
        /// Simulated fills against real prices.
        Paper = "paper",
        /// Decisions only, no orders.
        DryRun = "dry_run",
    }
);

/// Deposits and withdrawals to date, as recorded when a snapshot was taken: what lets PnL over
/// a window exclude money moved in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flows {
    /// Deposits to date, USD.
    pub deposits: Decimal,
    /// Withdrawals to date, USD.
    pub withdrawals: Decimal,
}

impl Flows {
    /// Deposits minus withdrawals.
    pub fn net(self) -> Decimal {
        self.deposits - self.withdrawals
    }
}

/// The portfolio at one instant. One per (deployment, time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PortfolioSnapshot {
    /// When (UTC, microseconds): the snapshot's identity within its deployment.
    pub time: DateTime<Utc>,
    /// Total value, USD.
    pub total_value: Decimal,
    /// Cash available, USD, or unmeasured (not zero).
    pub available_cash: Amount,
    /// How far the total can be trusted.
    pub value_confidence: ValueConfidence,
    /// The positions behind the total: the one position record.
    pub positions: Vec<PositionRecord>,
    /// What a snapshot written before the one position record (schema 1) held as positions
    /// when that was not a list of positions, as written. New snapshots never set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_positions: Option<Value>,
    /// The strategy cycle that took it.
    pub cycle_id: Option<String>,
    /// Live, paper or dry run.
    pub execution_mode: ExecutionMode,
    /// Deposits and withdrawals to date, if known (filled in by
    /// [`crate::Portfolio::save_snapshot_and_metrics`]).
    pub flows: Option<Flows>,
    /// What the strategy keeps beside the value, as given (e.g. an imported seed-000
    /// snapshot's deployed capital, wallet value and token prices).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

impl PortfolioSnapshot {
    /// A snapshot at `time` (truncated to microseconds) with no positions, cash unmeasured.
    ///
    /// # Errors
    /// `InvalidInput` for a negative total value.
    pub fn new(
        time: DateTime<Utc>,
        total_value: Decimal,
        value_confidence: ValueConfidence,
        execution_mode: ExecutionMode,
    ) -> Result<Self> {
        let s = Self {
            time: truncate_to_micros(time),
            total_value,
            available_cash: Amount::Unmeasured,
            value_confidence,
            positions: Vec::new(),
            legacy_positions: None,
            cycle_id: None,
            execution_mode,
            flows: None,
            extra: Map::new(),
        };
        s.validate()?;
        Ok(s)
    }

    /// A snapshot at a time given as RFC 3339 text with an offset, normalized to UTC.
    ///
    /// # Errors
    /// `InvalidTime` for text without an offset or not RFC 3339; as [`PortfolioSnapshot::new`].
    pub fn at_text(
        time: &str,
        total_value: Decimal,
        value_confidence: ValueConfidence,
        execution_mode: ExecutionMode,
    ) -> Result<Self> {
        Self::new(
            parse_utc("snapshot time", time)?,
            total_value,
            value_confidence,
            execution_mode,
        )
    }

    /// Sets the available cash.
    pub fn with_cash(mut self, cash: Amount) -> Self {
        self.available_cash = cash;
        self
    }

    /// Sets the positions.
    pub fn with_positions(mut self, positions: Vec<PositionRecord>) -> Self {
        self.positions = positions;
        self
    }

    /// Sets the cycle id.
    ///
    /// # Errors
    /// `InvalidInput` for an empty, oversized or control-character id.
    pub fn with_cycle(mut self, cycle_id: impl Into<String>) -> Result<Self> {
        let c = cycle_id.into();
        check_id("cycle id", &c)?;
        self.cycle_id = Some(c);
        Ok(self)
    }

    /// Sets what the strategy keeps beside the value.
    pub fn with_extra(mut self, extra: Map<String, Value>) -> Self {
        self.extra = extra;
        self
    }

    /// Sets the flows to date.
    pub fn with_flows(mut self, flows: Flows) -> Self {
        self.flows = Some(flows);
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        non_negative("total value", self.total_value)?;
        if let Amount::Measured(c) = self.available_cash {
            non_negative("available cash", c)?;
        }
        if let Some(c) = &self.cycle_id {
            check_id("cycle id", c)?;
        }
        if let Some(f) = self.flows {
            non_negative("deposits", f.deposits)?;
            non_negative("withdrawals", f.withdrawals)?;
        }
        for p in &self.positions {
            p.validate()
                .map_err(|e| AccountingError::invalid("positions", e.to_string()))?;
        }
        if truncate_to_micros(self.time) != self.time {
            return Err(AccountingError::invalid(
                "snapshot time",
                "has sub-microsecond digits; build snapshots with new or at_text",
            ));
        }
        Ok(())
    }
}

pub(crate) fn non_negative(field: &'static str, v: Decimal) -> Result<()> {
    if v.is_sign_negative() && !v.is_zero() {
        return Err(AccountingError::invalid(
            field,
            format!("must not be negative, got {v}"),
        ));
    }
    Ok(())
}

/// The step from a schema-1 snapshot body, whose positions were any JSON: a list of position
/// records (the book's shape, or the `{symbol, size, avg_price | mid}` rows the demo wrote,
/// read as perps) becomes typed positions; anything else is kept as written in
/// `legacy_positions`.
pub(crate) fn step_from_v1(body: &mut Map<String, Value>) {
    let raw = body.remove("positions").unwrap_or(Value::Null);
    let at = body.get("time").cloned().unwrap_or(Value::Null);
    match typed_v1(&raw, &at) {
        Some(typed) => {
            body.insert("positions".into(), Value::Array(typed));
        }
        None => {
            body.insert("positions".into(), Value::Array(Vec::new()));
            body.insert("legacy_positions".into(), raw);
        }
    }
}

/// Each element of a schema-1 positions list as a position record body; `None` if one is not.
fn typed_v1(raw: &Value, at: &Value) -> Option<Vec<Value>> {
    let items = raw.as_array()?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let o = item.as_object()?;
        let mut p = if o.contains_key("chain") && o.contains_key("type") {
            o.clone()
        } else {
            let symbol = o.get("symbol")?.as_str()?;
            let size: Decimal = o.get("size")?.as_str()?.parse().ok()?;
            let mut r = PositionRecord::perp(symbol, "venue", symbol).ok()?;
            r.amount = size;
            let entry = o.get("avg_price").and_then(Value::as_str);
            r.entry_price = entry
                .and_then(|e| e.parse().ok())
                .filter(|e: &Decimal| !e.is_zero());
            if let Some(mid) = o.get("mid").and_then(Value::as_str) {
                r.mark(mid.parse().ok()?).ok()?;
            }
            match serde_json::to_value(&r).ok()? {
                Value::Object(m) => m,
                _ => return None,
            }
        };
        for k in ["created_at", "updated_at"] {
            p.entry(k).or_insert_with(|| at.clone());
        }
        p.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        p.entry("protocol").or_insert(Value::Null);
        let p = Value::Object(p);
        serde_json::from_value::<PositionRecord>(p.clone()).ok()?;
        out.push(p);
    }
    Some(out)
}
