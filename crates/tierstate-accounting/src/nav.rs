//! The NAV series and its fold: high-water mark and maximum drawdown, in value and percent.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One point of the NAV series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavPoint {
    /// The snapshot time.
    pub time: DateTime<Utc>,
    /// The snapshot's write sequence number (the header's counter when it was saved).
    pub seq: u64,
    /// Its total value.
    pub value: Decimal,
    /// Cash within it, USD, or unmeasured (seed 000's component columns).
    pub available_cash: crate::amount::Amount,
    /// How far the value can be trusted.
    pub value_confidence: crate::snapshot::ValueConfidence,
    /// Deposits and withdrawals to date, where the snapshot recorded them.
    pub flows: Option<crate::snapshot::Flows>,
}

/// Where an incremental NAV read continues: after the point at (`time`, `seq`), as long as the
/// series has not been rewritten since (`epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NavCursor {
    /// Time of the last point read.
    pub time: DateTime<Utc>,
    /// Its sequence number.
    pub seq: u64,
    /// The series' epoch when it was read.
    pub epoch: u64,
}

/// A page of the NAV series, oldest first.
#[derive(Debug, Clone)]
pub struct NavPage {
    /// The points.
    pub points: Vec<NavPoint>,
    /// More points matched than the scan cap allowed.
    pub truncated: bool,
    /// Where to continue (also when not truncated: the next incremental read).
    pub cursor: Option<NavCursor>,
}

/// The fold of a NAV series in time order: high-water mark and maximum drawdown. Maximum
/// drawdown in value and in percent are tracked separately (they can come from different
/// peaks). Percent is of the peak, rounded to 8 decimal places; a peak of zero gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NavFold {
    /// Points folded.
    pub points: u64,
    /// The highest value seen (`0` before any point).
    pub high_water_mark: Decimal,
    /// The largest fall from a preceding peak, USD.
    pub max_drawdown: Decimal,
    /// The largest fall from a preceding peak, percent of that peak.
    pub max_drawdown_pct: Decimal,
    /// The last value folded.
    pub last_value: Decimal,
}

impl NavFold {
    /// Folds one more value (the next in time order).
    pub fn push(&mut self, value: Decimal) {
        if self.points == 0 || value > self.high_water_mark {
            self.high_water_mark = value;
        }
        let drawdown = self.high_water_mark - value;
        if drawdown > self.max_drawdown {
            self.max_drawdown = drawdown;
        }
        if self.high_water_mark > Decimal::ZERO {
            let pct = (drawdown * Decimal::ONE_HUNDRED / self.high_water_mark).round_dp(8);
            if pct > self.max_drawdown_pct {
                self.max_drawdown_pct = pct;
            }
        }
        self.last_value = value;
        self.points += 1;
    }

    /// The fold of `values` in order, continuing from `self`.
    pub fn extended(mut self, values: impl IntoIterator<Item = Decimal>) -> Self {
        for v in values {
            self.push(v);
        }
        self
    }

    /// The fold of `values` in order.
    pub fn over(values: impl IntoIterator<Item = Decimal>) -> Self {
        Self::default().extended(values)
    }

    /// The current drawdown from the high-water mark, USD.
    pub fn drawdown(&self) -> Decimal {
        self.high_water_mark - self.last_value
    }

    /// The current drawdown from the high-water mark, percent of it (rounded to 6 decimal
    /// places; `0` while the mark is not positive).
    pub fn drawdown_pct(&self) -> Decimal {
        if self.high_water_mark > Decimal::ZERO {
            (self.drawdown() * Decimal::ONE_HUNDRED / self.high_water_mark).round_dp(6)
        } else {
            Decimal::ZERO
        }
    }
}
