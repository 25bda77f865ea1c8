//! The one venue order of every domain: what was (or will be) sent, where it stands, and what
//! filled. The engine's actual state, the CLOB collection and a venue's own report are all
//! this [`Order`]; its status moves only as the table below allows.
//!
//! | from \ to        | Submitted | Live | CancelRequested | PartiallyFilled, Filled | Cancelled, Expired, Failed |
//! |------------------|:---------:|:----:|:---------------:|:-----------------------:|:--------------------------:|
//! | Pending          | yes       | yes  | yes             |                         | yes                        |
//! | Submitted        |           | yes  | yes             | fill                    | yes                        |
//! | Live             |           |      | yes             | fill                    | yes                        |
//! | PartiallyFilled  |           |      | yes             | fill                    | yes                        |
//! | CancelRequested  |           |      |                 | fill                    | yes                        |
//! | Filled, Cancelled, Expired, Failed | | |              |                         |                            |
//!
//! "fill": reached only by recording a fill ([`Order::apply_fill`]), never by setting a status,
//! so the status agrees with the fills (a fill on a cancel-requested order keeps it cancel
//! requested until it completes). The last four are terminal. The reconciliation engine moves
//! an order by the events of its journal ([`crate::fold`]), which follow the venue: the venue
//! is the truth about an order it holds.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{OrdersError, Result};

/// Longest id (intent, symbol, OCO group, client and exchange order ids, fill id), in bytes:
/// the one id rule of every domain.
pub use tierstate_core::MAX_ID_LEN;

/// Which way an order trades: the one [`tierstate_core::Side`] of every domain.
pub use tierstate_core::Side;

/// Limit or market.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    /// Rests at its price.
    Limit,
    /// Takes what the book offers.
    Market,
}

/// How long an order stays on the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel: what does not fill at once is cancelled.
    Ioc,
    /// Fill or kill: fills completely at once or not at all.
    Fok,
}

/// The order sent to a venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    /// The instrument: a market such as `ETH-USD`, or a CLOB's outcome token.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderKind,
    /// Limit price (`None` for a market order).
    pub price: Option<Decimal>,
    /// Size (positive).
    pub size: Decimal,
    /// Time in force.
    pub tif: TimeInForce,
}

impl OrderSpec {
    /// A GTC limit order.
    ///
    /// # Errors
    /// `InvalidInput` for a bad symbol, a non-positive price or size.
    pub fn limit(
        symbol: impl Into<String>,
        side: Side,
        price: Decimal,
        size: Decimal,
    ) -> Result<Self> {
        let s = Self {
            symbol: symbol.into(),
            side,
            kind: OrderKind::Limit,
            price: Some(price),
            size,
            tif: TimeInForce::Gtc,
        };
        s.validate()?;
        Ok(s)
    }

    /// The same order with another time in force.
    pub fn with_tif(mut self, tif: TimeInForce) -> Self {
        self.tif = tif;
        self
    }

    /// Checks the fields.
    ///
    /// # Errors
    /// `InvalidInput` naming the field.
    pub fn validate(&self) -> Result<()> {
        check_id("symbol", &self.symbol)?;
        positive("size", self.size)?;
        match (self.kind, self.price) {
            (OrderKind::Limit, Some(p)) => positive("price", p),
            (OrderKind::Limit, None) => {
                Err(OrdersError::invalid("price", "a limit order needs one"))
            }
            (OrderKind::Market, None) => Ok(()),
            (OrderKind::Market, Some(_)) => {
                Err(OrdersError::invalid("price", "a market order has none"))
            }
        }
    }
}

/// Where an order stands; see the module docs for the moves allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Durable here, not yet sent (or found not to have arrived): resolve by client id.
    #[serde(alias = "pending_submit")]
    Pending,
    /// Sent; the venue has not answered (a timeout is this too): resolve by client id, never by
    /// a blind resend.
    #[serde(alias = "unknown")]
    Submitted,
    /// On the book.
    #[serde(alias = "open")]
    Live,
    /// On the book, partly filled.
    PartiallyFilled,
    /// A cancel was sent; the venue has not confirmed it.
    CancelRequested,
    /// All of its size has filled. Terminal.
    Filled,
    /// Cancelled. Terminal.
    Cancelled,
    /// Expired (an IOC remainder, a time limit). Terminal.
    Expired,
    /// Refused by the venue or failed to submit. Terminal.
    #[serde(alias = "rejected")]
    Failed,
}

impl OrderStatus {
    /// Every status, in declaration order.
    pub const ALL: [OrderStatus; 9] = [
        Self::Pending,
        Self::Submitted,
        Self::Live,
        Self::PartiallyFilled,
        Self::CancelRequested,
        Self::Filled,
        Self::Cancelled,
        Self::Expired,
        Self::Failed,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Live => "live",
            Self::PartiallyFilled => "partially_filled",
            Self::CancelRequested => "cancel_requested",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Failed => "failed",
        }
    }

    /// True for the four statuses an order never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Cancelled | Self::Expired | Self::Failed
        )
    }

    /// True while the order may still trade.
    pub fn is_open(self) -> bool {
        !self.is_terminal()
    }

    /// True while the order rests on the book (live or partly filled).
    pub fn is_working(self) -> bool {
        matches!(self, Self::Live | Self::PartiallyFilled)
    }

    /// True while the outcome of a send is not known (pending or submitted).
    pub fn is_unresolved(self) -> bool {
        matches!(self, Self::Pending | Self::Submitted)
    }

    /// True if [`Order::request`] may move an order from `self` to `to`.
    pub fn may_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        match (self, to) {
            (Pending, Submitted) => true,
            (Pending | Submitted, Live) => true,
            (Pending | Submitted | Live | PartiallyFilled, CancelRequested) => true,
            (from, Cancelled | Expired | Failed) => from.is_open(),
            _ => false,
        }
    }

    /// True if a fill may arrive in this status.
    pub fn fill_may_reach(self) -> bool {
        matches!(
            self,
            Self::Submitted | Self::Live | Self::PartiallyFilled | Self::CancelRequested
        )
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = OrdersError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                OrdersError::invalid(
                    "order status",
                    format!(
                        "{s:?}: expected one of {}",
                        Self::ALL.map(Self::as_str).join(", ")
                    ),
                )
            })
    }
}

/// One execution against an order. Fills are append-only and idempotent by `fill_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    /// Unique within its order.
    pub fill_id: String,
    /// Execution price (positive).
    pub price: Decimal,
    /// Executed size (positive).
    pub size: Decimal,
    /// Fee paid (negative: a maker rebate); zero when the venue does not say.
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub fee: Decimal,
    /// When it executed (UTC, microseconds), if the venue says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    /// The other side, if the venue says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
}

impl Fill {
    /// A validated fill with no fee, time or counterparty.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id or a price or size that is not positive.
    pub fn new(fill_id: impl Into<String>, price: Decimal, size: Decimal) -> Result<Self> {
        let f = Self {
            fill_id: fill_id.into(),
            price,
            size,
            fee: Decimal::ZERO,
            time: None,
            counterparty: None,
        };
        f.validate()?;
        Ok(f)
    }

    /// Sets the fee.
    pub fn with_fee(mut self, fee: Decimal) -> Self {
        self.fee = fee;
        self
    }

    /// Sets the execution time (truncated to microseconds).
    pub fn at(mut self, time: chrono::DateTime<chrono::Utc>) -> Self {
        self.time = Some(tierstate_core::truncate_to_micros(time));
        self
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

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput` naming the field.
    pub fn validate(&self) -> Result<()> {
        check_id("fill id", &self.fill_id)?;
        positive("fill price", self.price)?;
        positive("fill size", self.size)?;
        if let Some(c) = &self.counterparty {
            check_id("counterparty", c)?;
        }
        Ok(())
    }
}

/// What [`Order::apply_fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillOutcome {
    /// The fill was new and is now recorded.
    Applied,
    /// The same fill was already recorded: nothing changed.
    Duplicate,
}

/// What the earlier placements of an intent filled in one direction: an intent may trade only
/// its size minus everything filled across all its placements in its direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorFills {
    /// The market.
    pub symbol: String,
    /// The side.
    pub side: Side,
    /// Size filled that way by placements that were replaced.
    pub filled: Decimal,
}

/// A venue order. Filled size and average price derive from the fills and cannot disagree with
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Order {
    /// The intent it was placed for, if any.
    #[serde(default)]
    pub intent_id: Option<String>,
    /// The intent revision it serves (0: not placed for an intent).
    #[serde(default)]
    pub revision: u32,
    /// Ours: unique per deployment, sent with the order, so a resend is recognised.
    pub client_order_id: String,
    /// The venue's id, once known.
    pub exchange_order_id: Option<String>,
    /// The order as placed (or last modified).
    pub spec: OrderSpec,
    /// Where it stands.
    pub status: OrderStatus,
    /// Its fills, each once, in the order they were recorded.
    pub fills: Vec<Fill>,
    /// Why it failed, if it did.
    #[serde(default, alias = "reject_reason")]
    pub error: Option<String>,
    /// What earlier placements of its intent filled, per direction (empty until a placement is
    /// replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prior: Vec<PriorFills>,
}

impl Order {
    /// A pending order under `client_order_id`, not placed for an intent.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id or spec.
    pub fn new(client_order_id: impl Into<String>, spec: OrderSpec) -> Result<Self> {
        let o = Self {
            intent_id: None,
            revision: 0,
            client_order_id: client_order_id.into(),
            exchange_order_id: None,
            spec,
            status: OrderStatus::Pending,
            fills: Vec::new(),
            error: None,
            prior: Vec::new(),
        };
        o.validate()?;
        Ok(o)
    }

    /// The placement of an intent's `revision`, pending its send, carrying what earlier
    /// placements filled.
    pub(crate) fn placement(
        intent_id: &str,
        revision: u32,
        client_order_id: &str,
        spec: &OrderSpec,
        prior: Vec<PriorFills>,
    ) -> Self {
        Self {
            intent_id: Some(intent_id.to_owned()),
            revision,
            client_order_id: client_order_id.to_owned(),
            exchange_order_id: None,
            spec: spec.clone(),
            status: OrderStatus::Pending,
            fills: Vec::new(),
            error: None,
            prior,
        }
    }

    /// An order a venue accepted under `client_order_id`: on the book, no fills yet.
    pub(crate) fn placement_on_venue(client_order_id: String, spec: OrderSpec) -> Self {
        Self {
            intent_id: None,
            revision: 0,
            client_order_id,
            exchange_order_id: None,
            spec,
            status: OrderStatus::Live,
            fills: Vec::new(),
            error: None,
            prior: Vec::new(),
        }
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

    /// Filled size: the sum of the fills (`0` with none).
    pub fn filled(&self) -> Decimal {
        self.fills.iter().map(|f| f.size).sum()
    }

    /// What is left to fill.
    pub fn remaining(&self) -> Decimal {
        self.spec.size - self.filled()
    }

    /// Size-weighted average fill price; `0` (never absent) before the first fill.
    pub fn average_fill_price(&self) -> Decimal {
        let filled = self.filled();
        if filled.is_zero() {
            return Decimal::ZERO;
        }
        let notional: Decimal = self.fills.iter().map(|f| f.price * f.size).sum();
        (notional / filled).normalize()
    }

    /// Size filled by earlier placements of the intent on `symbol`, `side`.
    pub fn prior_filled(&self, symbol: &str, side: Side) -> Decimal {
        self.prior
            .iter()
            .filter(|p| p.symbol == symbol && p.side == side)
            .map(|p| p.filled)
            .sum()
    }

    /// Size filled on `symbol`, `side` across every placement of the intent, this one
    /// included: what the intent's size is measured against.
    pub fn filled_toward(&self, symbol: &str, side: Side) -> Decimal {
        let here = if self.spec.symbol == symbol && self.spec.side == side {
            self.filled()
        } else {
            Decimal::ZERO
        };
        self.prior_filled(symbol, side) + here
    }

    /// Moves this placement's fills into `prior`, as it is replaced.
    pub(crate) fn retire_placement(&mut self) {
        let filled = self.filled();
        if filled.is_zero() {
            return;
        }
        let (symbol, side) = (self.spec.symbol.clone(), self.spec.side);
        match self
            .prior
            .iter_mut()
            .find(|p| p.symbol == symbol && p.side == side)
        {
            Some(p) => p.filled += filled,
            None => self.prior.push(PriorFills {
                symbol,
                side,
                filled,
            }),
        }
    }

    /// Moves the order to `to`, with an error text for `Failed`.
    ///
    /// # Errors
    /// `InvalidTransition` if the table does not allow it (nothing changes).
    pub fn request(&mut self, to: OrderStatus, error: Option<String>) -> Result<()> {
        if !self.status.may_become(to) {
            return Err(self.refuse(to));
        }
        if error.is_some() {
            self.error = error;
        }
        self.status = to;
        Ok(())
    }

    /// Records a fill: the same fill again is a no-op; reaching the size moves the order to
    /// `Filled`, otherwise to `PartiallyFilled` (a cancel-requested order stays so).
    ///
    /// # Errors
    /// `FillConflict` for a known fill id with other content; `InvalidTransition` if the order
    /// cannot fill in its status; `Overfill` past the size (nothing changes).
    pub fn apply_fill(&mut self, fill: Fill) -> Result<FillOutcome> {
        fill.validate()?;
        if let Some(known) = self.fills.iter().find(|f| f.fill_id == fill.fill_id) {
            return if *known == fill {
                Ok(FillOutcome::Duplicate)
            } else {
                Err(OrdersError::FillConflict {
                    order: self.client_order_id.clone(),
                    fill_id: fill.fill_id,
                })
            };
        }
        let remaining = self.remaining();
        let to = if fill.size == remaining {
            OrderStatus::Filled
        } else if self.status == OrderStatus::CancelRequested {
            OrderStatus::CancelRequested
        } else {
            OrderStatus::PartiallyFilled
        };
        if !self.status.fill_may_reach() {
            return Err(self.refuse(to));
        }
        if fill.size > remaining {
            return Err(OrdersError::Overfill {
                order: self.client_order_id.clone(),
                fill_id: fill.fill_id,
                fill_size: fill.size,
                remaining,
            });
        }
        self.fills.push(fill);
        self.status = to;
        Ok(FillOutcome::Applied)
    }

    fn refuse(&self, to: OrderStatus) -> OrdersError {
        OrdersError::InvalidTransition {
            order: self.client_order_id.clone(),
            from: self.status.as_str(),
            to: to.as_str(),
        }
    }

    /// Checks every field and that the status agrees with the fills (for orders built by a
    /// caller or read from storage).
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        check_id("client order id", &self.client_order_id)?;
        if let Some(i) = &self.intent_id {
            check_id("intent id", i)?;
        }
        if let Some(x) = &self.exchange_order_id {
            check_id("exchange order id", x)?;
        }
        self.spec.validate()?;
        let mut seen = std::collections::HashSet::new();
        for f in &self.fills {
            f.validate()?;
            if !seen.insert(&f.fill_id) {
                return Err(OrdersError::invalid(
                    "fills",
                    format!("fill {} appears twice", f.fill_id),
                ));
            }
        }
        Ok(())
    }

    /// [`Order::validate`], and that the status agrees with the fills as the status machine
    /// keeps them (the CLOB collection's rule; the engine's orders follow the venue instead).
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad field.
    pub fn validate_machine(&self) -> Result<()> {
        self.validate()?;
        let filled = self.filled();
        if filled > self.spec.size {
            return Err(OrdersError::invalid(
                "fills",
                format!(
                    "fills total {filled}, more than the size {}",
                    self.spec.size
                ),
            ));
        }
        let consistent = match self.status {
            OrderStatus::Filled => filled == self.spec.size,
            OrderStatus::PartiallyFilled => !filled.is_zero() && filled < self.spec.size,
            OrderStatus::Pending | OrderStatus::Submitted | OrderStatus::Live => filled.is_zero(),
            OrderStatus::CancelRequested
            | OrderStatus::Cancelled
            | OrderStatus::Expired
            | OrderStatus::Failed => filled < self.spec.size,
        };
        if !consistent {
            return Err(OrdersError::invalid(
                "status",
                format!(
                    "{} disagrees with {filled} filled of {}",
                    self.status, self.spec.size
                ),
            ));
        }
        Ok(())
    }
}

/// The one id rule ([`tierstate_core::check_id`]), as this crate's `InvalidInput`.
pub(crate) fn check_id(field: &'static str, s: &str) -> Result<()> {
    tierstate_core::check_id(field, s).map_err(|e| match e {
        tierstate_core::Error::InvalidInput { field, reason } => {
            OrdersError::invalid(field, reason)
        }
        other => other.into(),
    })
}

fn positive(field: &'static str, v: Decimal) -> Result<()> {
    if v <= Decimal::ZERO {
        return Err(OrdersError::invalid(
            field,
            format!("must be positive, got {v}"),
        ));
    }
    Ok(())
}
