//! Baseline metrics that survive restarts, and the PnL figures they give.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::amount::Amount;
use crate::error::{AccountingError, Result};
use crate::snapshot::{ExecutionMode, Flows, PortfolioSnapshot, non_negative};
use crate::text::check_id;
use crate::time::truncate_to_micros;

/// A deployment's baseline: what it started with and what moved in and out since, so PnL is
/// never confused with deposits. Saved with compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PortfolioMetrics {
    /// Value when the deployment started, USD.
    pub initial_value: Decimal,
    /// When it started.
    pub initial_time: DateTime<Utc>,
    /// Deposits to date, USD.
    pub deposits: Decimal,
    /// Withdrawals to date, USD.
    pub withdrawals: Decimal,
    /// Gas spent to date, USD.
    pub gas_spent: Decimal,
    /// The last total value measured, or unmeasured.
    pub last_total_value: Amount,
    /// The positions behind it.
    pub positions: Value,
    /// The cycle that last updated it.
    pub cycle_id: Option<String>,
    /// Live, paper or dry run.
    pub execution_mode: ExecutionMode,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl PortfolioMetrics {
    /// A baseline of `initial_value` at `initial_time`, nothing moved yet.
    ///
    /// # Errors
    /// `InvalidInput` for a negative initial value.
    pub fn new(
        initial_value: Decimal,
        initial_time: DateTime<Utc>,
        execution_mode: ExecutionMode,
    ) -> Result<Self> {
        non_negative("initial value", initial_value)?;
        Ok(Self {
            initial_value,
            initial_time: truncate_to_micros(initial_time),
            deposits: Decimal::ZERO,
            withdrawals: Decimal::ZERO,
            gas_spent: Decimal::ZERO,
            last_total_value: Amount::Measured(initial_value),
            positions: Value::Array(Vec::new()),
            cycle_id: None,
            execution_mode,
            updated_at: truncate_to_micros(initial_time),
        })
    }

    /// Adds a deposit.
    ///
    /// # Errors
    /// `InvalidInput` unless `amount` is positive.
    pub fn deposit(&mut self, amount: Decimal) -> Result<()> {
        positive("deposit", amount)?;
        self.deposits += amount;
        Ok(())
    }

    /// Adds a withdrawal.
    ///
    /// # Errors
    /// `InvalidInput` unless `amount` is positive.
    pub fn withdraw(&mut self, amount: Decimal) -> Result<()> {
        positive("withdrawal", amount)?;
        self.withdrawals += amount;
        Ok(())
    }

    /// Adds gas spent.
    ///
    /// # Errors
    /// `InvalidInput` for a negative amount.
    pub fn spend_gas(&mut self, amount: Decimal) -> Result<()> {
        non_negative("gas", amount)?;
        self.gas_spent += amount;
        Ok(())
    }

    /// Records the latest measured value (or that it could not be measured) at `at`.
    ///
    /// # Errors
    /// `InvalidInput` for a negative value.
    pub fn observe(&mut self, value: Amount, at: DateTime<Utc>) -> Result<()> {
        if let Amount::Measured(v) = value {
            non_negative("total value", v)?;
        }
        self.last_total_value = value;
        self.updated_at = truncate_to_micros(at);
        Ok(())
    }

    /// Deposits and withdrawals to date.
    pub fn flows(&self) -> Flows {
        Flows {
            deposits: self.deposits,
            withdrawals: self.withdrawals,
        }
    }

    /// PnL since inception: last value − initial value − (deposits − withdrawals);
    /// unmeasured if the last value is.
    pub fn pnl_since_inception(&self) -> Amount {
        match self.last_total_value {
            Amount::Measured(v) => Amount::Measured(v - self.initial_value - self.flows().net()),
            Amount::Unmeasured => Amount::Unmeasured,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        non_negative("initial value", self.initial_value)?;
        non_negative("deposits", self.deposits)?;
        non_negative("withdrawals", self.withdrawals)?;
        non_negative("gas spent", self.gas_spent)?;
        if let Amount::Measured(v) = self.last_total_value {
            non_negative("last total value", v)?;
        }
        if let Some(c) = &self.cycle_id {
            check_id("cycle id", c)?;
        }
        Ok(())
    }
}

/// PnL from `start` to `end`: the change in total value less the net deposits between them;
/// unmeasured unless both snapshots carry their flows to date.
///
/// # Errors
/// `InvalidInput` if `end` is before `start`.
pub fn pnl_between(start: &PortfolioSnapshot, end: &PortfolioSnapshot) -> Result<Amount> {
    if end.time < start.time {
        return Err(AccountingError::invalid(
            "window",
            format!("end {} is before start {}", end.time, start.time),
        ));
    }
    Ok(match (start.flows, end.flows) {
        (Some(a), Some(b)) => {
            Amount::Measured(end.total_value - start.total_value - (b.net() - a.net()))
        }
        _ => Amount::Unmeasured,
    })
}

fn positive(field: &'static str, v: Decimal) -> Result<()> {
    if v <= Decimal::ZERO {
        return Err(AccountingError::invalid(
            field,
            format!("must be positive, got {v}"),
        ));
    }
    Ok(())
}
