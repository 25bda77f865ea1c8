//! A CLOB order, its fills, and the status machine every change goes through.
//!
//! | from \ to        | Submitted | Live | PartiallyFilled | Filled | Cancelled | Expired | Failed |
//! |------------------|:---------:|:----:|:---------------:|:------:|:---------:|:-------:|:------:|
//! | Pending          | yes       |      |                 |        | yes       | yes     | yes    |
//! | Submitted        |           | yes  | fill            | fill   | yes       | yes     | yes    |
//! | Live             |           |      | fill            | fill   | yes       | yes     | yes    |
//! | PartiallyFilled  |           |      | fill            | fill   | yes       | yes     | yes    |
//! | Filled, Cancelled, Expired, Failed | | |              |        |           |         |        |
//!
//! "fill": reached only by recording a fill ([`ClobOrder::apply_fill`]), never by setting a
//! status, so the status always agrees with the fills. The last four are terminal: a terminal
//! order never changes again.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AccountingError, Result};
use crate::time::truncate_to_micros;

/// Longest id (order, fill, market, token, intent, counterparty), in bytes: the one id rule
/// of every domain.
pub use tierstate_core::MAX_ID_LEN;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $field:literal, $expected:literal { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::AccountingError;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($s => Ok($name::$v),)*
                    _ => Err($crate::AccountingError::UnknownValue {
                        field: $field,
                        value: s.to_owned(),
                        expected: $expected,
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use text_enum;

/// Which way an order goes: the one [`tierstate_core::Side`] of every domain.
pub use tierstate_core::Side;

text_enum!(
    /// How long an order rests on the book.
    OrderType, "order type", "GTC, IOC, FOK" {
        /// Good till cancelled.
        Gtc = "GTC",
        /// Immediate or cancel: what does not fill at once is cancelled.
        Ioc = "IOC",
        /// Fill or kill: fills completely at once or not at all.
        Fok = "FOK",
    }
);

text_enum!(
    /// Where an order is in its life; see the module docs for the allowed transitions.
    OrderStatus, "order status",
    "pending, submitted, live, partially_filled, filled, cancelled, expired, failed" {
        /// Created here, not yet sent.
        Pending = "pending",
        /// Sent; the venue has not acknowledged it yet.
        Submitted = "submitted",
        /// Resting on the book.
        Live = "live",
        /// Some of its size has filled.
        PartiallyFilled = "partially_filled",
        /// All of its size has filled. Terminal.
        Filled = "filled",
        /// Cancelled. Terminal.
        Cancelled = "cancelled",
        /// Expired. Terminal.
        Expired = "expired",
        /// Rejected or failed to submit. Terminal.
        Failed = "failed",
    }
);

impl OrderStatus {
    /// True for the four statuses an order never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Cancelled | Self::Expired | Self::Failed
        )
    }

    /// True while the order may still trade (pending, submitted, live, partially filled).
    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }

    /// True if [`ClobOrder::set_status`] may move an order from `self` to `to`. Partially
    /// filled and filled are reached only through fills ([`OrderStatus::fill_may_reach`]).
    pub fn may_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        match (self, to) {
            (Pending, Submitted) | (Submitted, Live) => true,
            (from, Cancelled | Expired | Failed) => from.is_open(),
            _ => false,
        }
    }

    /// True if a fill may arrive in this status (submitted, live, partially filled).
    pub fn fill_may_reach(self) -> bool {
        matches!(self, Self::Submitted | Self::Live | Self::PartiallyFilled)
    }
}

/// One execution against an order. Fills are append-only and idempotent by `fill_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClobFill {
    /// Unique within its order.
    pub fill_id: String,
    /// The order it executed against.
    pub order_id: String,
    /// Execution price (positive).
    pub price: Decimal,
    /// Executed size (positive).
    pub size: Decimal,
    /// Fee paid, in USD (may be negative: a maker rebate).
    pub fee: Decimal,
    /// When it executed (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// The other side, if the venue says.
    pub counterparty: Option<String>,
}

impl ClobFill {
    /// A validated fill.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id, a price or size that is not positive.
    pub fn new(
        fill_id: impl Into<String>,
        order_id: impl Into<String>,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        time: DateTime<Utc>,
    ) -> Result<Self> {
        let f = Self {
            fill_id: fill_id.into(),
            order_id: order_id.into(),
            price,
            size,
            fee,
            time: truncate_to_micros(time),
            counterparty: None,
        };
        f.validate()?;
        Ok(f)
    }

    /// Sets the counterparty.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id.
    pub fn with_counterparty(mut self, c: impl Into<String>) -> Result<Self> {
        let c = c.into();
        check_id("counterparty", &c)?;
        self.counterparty = Some(c);
        Ok(self)
    }

    fn validate(&self) -> Result<()> {
        check_id("fill id", &self.fill_id)?;
        check_id("order id", &self.order_id)?;
        positive("fill price", self.price)?;
        positive("fill size", self.size)?;
        if let Some(c) = &self.counterparty {
            check_id("counterparty", c)?;
        }
        Ok(())
    }
}

/// What [`ClobOrder::apply_fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillOutcome {
    /// The fill was new and is now recorded.
    Applied,
    /// The same fill was already recorded: nothing changed.
    Duplicate,
}

/// The state of one CLOB order. Filled size and average fill price are derived from the fills
/// and cannot disagree with them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClobOrder {
    /// The order id, unique per deployment.
    pub order_id: String,
    /// The deployment that placed it.
    pub deployment_id: String,
    /// The market.
    pub market_id: String,
    /// The token traded.
    pub token_id: String,
    /// Buy or sell.
    pub side: Side,
    /// GTC, IOC or FOK.
    pub order_type: OrderType,
    /// Limit price (positive).
    pub price: Decimal,
    /// Size (positive).
    pub size: Decimal,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Its fills, in the order they were recorded.
    pub fills: Vec<ClobFill>,
    /// The intent it was placed for, if any.
    pub intent_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was submitted, once it was.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Anything else the strategy keeps with it.
    pub metadata: Map<String, Value>,
}

impl ClobOrder {
    /// A new pending order, created at `at`.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id or a price or size that is not positive.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_id: impl Into<String>,
        deployment_id: impl Into<String>,
        market_id: impl Into<String>,
        token_id: impl Into<String>,
        side: Side,
        order_type: OrderType,
        price: Decimal,
        size: Decimal,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let o = Self {
            order_id: order_id.into(),
            deployment_id: deployment_id.into(),
            market_id: market_id.into(),
            token_id: token_id.into(),
            side,
            order_type,
            price,
            size,
            status: OrderStatus::Pending,
            fills: Vec::new(),
            intent_id: None,
            created_at: truncate_to_micros(at),
            submitted_at: None,
            updated_at: truncate_to_micros(at),
            error: None,
            metadata: Map::new(),
        };
        o.validate()?;
        Ok(o)
    }

    /// Sets the intent it is placed for.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id.
    pub fn with_intent(mut self, intent_id: impl Into<String>) -> Result<Self> {
        let i = intent_id.into();
        check_id("intent id", &i)?;
        self.intent_id = Some(i);
        Ok(self)
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sum of the fills' sizes (`0` with none).
    pub fn filled_size(&self) -> Decimal {
        self.fills.iter().map(|f| f.size).sum()
    }

    /// What is left to fill.
    pub fn remaining(&self) -> Decimal {
        self.size - self.filled_size()
    }

    /// Size-weighted average fill price; `0` (never absent) before the first fill.
    pub fn average_fill_price(&self) -> Decimal {
        let filled = self.filled_size();
        if filled.is_zero() {
            return Decimal::ZERO;
        }
        let notional: Decimal = self.fills.iter().map(|f| f.price * f.size).sum();
        (notional / filled).normalize()
    }

    /// Moves the order to `to` at `at`, with an error text for `Failed`.
    ///
    /// # Errors
    /// `InvalidTransition` if the table does not allow it (nothing changes).
    pub fn set_status(
        &mut self,
        to: OrderStatus,
        at: DateTime<Utc>,
        error: Option<String>,
    ) -> Result<()> {
        if !self.status.may_become(to) {
            return Err(self.refuse(to));
        }
        if to == OrderStatus::Submitted {
            self.submitted_at = Some(truncate_to_micros(at));
        }
        if error.is_some() {
            self.error = error;
        }
        self.status = to;
        self.updated_at = truncate_to_micros(at);
        Ok(())
    }

    /// Records a fill: the same fill again is a no-op; reaching the size moves the order to
    /// `Filled`, otherwise to `PartiallyFilled`.
    ///
    /// # Errors
    /// `FillForOtherOrder`; `FillConflict` for a known fill id with other content;
    /// `InvalidTransition` if the order cannot fill in its status; `Overfill` past the size.
    pub fn apply_fill(&mut self, fill: ClobFill) -> Result<FillOutcome> {
        fill.validate()?;
        if fill.order_id != self.order_id {
            return Err(AccountingError::FillForOtherOrder {
                fill_id: fill.fill_id,
                order: self.order_id.clone(),
                fill_order: fill.order_id,
            });
        }
        if let Some(known) = self.fills.iter().find(|f| f.fill_id == fill.fill_id) {
            return if *known == fill {
                Ok(FillOutcome::Duplicate)
            } else {
                Err(AccountingError::FillConflict {
                    order: self.order_id.clone(),
                    fill_id: fill.fill_id,
                })
            };
        }
        let remaining = self.remaining();
        let to = if fill.size == remaining {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        if !self.status.fill_may_reach() {
            return Err(self.refuse(to));
        }
        if fill.size > remaining {
            return Err(AccountingError::Overfill {
                order: self.order_id.clone(),
                fill_id: fill.fill_id,
                fill_size: fill.size,
                remaining,
            });
        }
        self.updated_at = self.updated_at.max(fill.time);
        self.fills.push(fill);
        self.status = to;
        Ok(FillOutcome::Applied)
    }

    fn refuse(&self, to: OrderStatus) -> AccountingError {
        AccountingError::InvalidTransition {
            order: self.order_id.clone(),
            from: self.status,
            to,
        }
    }

    /// Checks every field and that the status agrees with the fills (for orders built by a
    /// caller or read from storage).
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        check_id("order id", &self.order_id)?;
        check_id("deployment id", &self.deployment_id)?;
        check_id("market id", &self.market_id)?;
        check_id("token id", &self.token_id)?;
        if let Some(i) = &self.intent_id {
            check_id("intent id", i)?;
        }
        positive("price", self.price)?;
        positive("size", self.size)?;
        let mut seen = std::collections::HashSet::new();
        for f in &self.fills {
            f.validate()?;
            if f.order_id != self.order_id {
                return Err(AccountingError::FillForOtherOrder {
                    fill_id: f.fill_id.clone(),
                    order: self.order_id.clone(),
                    fill_order: f.order_id.clone(),
                });
            }
            if !seen.insert(&f.fill_id) {
                return Err(AccountingError::invalid(
                    "fills",
                    format!("fill {} appears twice", f.fill_id),
                ));
            }
        }
        let filled = self.filled_size();
        if filled > self.size {
            return Err(AccountingError::invalid(
                "fills",
                format!("fills total {filled}, more than the size {}", self.size),
            ));
        }
        let consistent = match self.status {
            OrderStatus::Filled => filled == self.size,
            OrderStatus::PartiallyFilled => !filled.is_zero() && filled < self.size,
            OrderStatus::Pending | OrderStatus::Submitted | OrderStatus::Live => filled.is_zero(),
            OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::Failed => {
                filled < self.size
            }
        };
        if !consistent {
            return Err(AccountingError::invalid(
                "status",
                format!(
                    "{} disagrees with {filled} filled of {}",
                    self.status, self.size
                ),
            ));
        }
        Ok(())
    }
}

/// Refuses an empty, oversized or control-character id.
/// The one id rule ([`tierstate_core::check_id`]), as this crate's `InvalidInput`.
pub(crate) fn check_id(field: &'static str, s: &str) -> Result<()> {
    tierstate_core::check_id(field, s).map_err(|e| match e {
        tierstate_core::Error::InvalidInput { field, reason } => {
            AccountingError::invalid(field, reason)
        }
        other => other.into(),
    })
}

fn positive(field: &'static str, v: Decimal) -> Result<()> {
    if v.is_sign_negative() || v.is_zero() {
        return Err(AccountingError::invalid(
            field,
            format!("must be positive, got {v}"),
        ));
    }
    Ok(())
}
