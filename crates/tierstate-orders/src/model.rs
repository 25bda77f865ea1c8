//! What is wanted (an [`OrderIntent`]), what the exchange has (an [`ActualOrder`]), and the
//! events that move an order from one state to the next ([`OrderEvent`]). An actual order is
//! the fold of its events: the store writes the fold and the events in one batch, and
//! [`crate::OrderStore::rebuild`] folds the journal again to check them.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tierstate_core::Checksum;

use crate::error::{OrdersError, Result};

/// Longest id (intent, symbol, OCO group, exchange order id, fill id), in bytes: the one id
/// rule of every domain.
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
}

/// The order an intent wants on the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSpec {
    /// The market, e.g. `ETH-USD`.
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

/// Whether an intent still wants its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Wants its order on the exchange.
    Active,
    /// Wants no order (cancel what is there).
    Cancelled,
    /// Its order filled (or an OCO sibling did): nothing more to do.
    Done,
}

/// Desired state: the order a strategy wants, durable before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OrderIntent {
    /// Unique per deployment.
    pub intent_id: String,
    /// The deployment.
    pub deployment_id: String,
    /// The order wanted.
    pub spec: OrderSpec,
    /// One-cancels-other group: when one member fills, the others are cancelled.
    pub oco_group: Option<String>,
    /// Bumped when the order must be placed anew (a new client order id).
    pub revision: u32,
    /// Active, cancelled or done.
    pub status: IntentStatus,
    /// Last change (UTC).
    pub updated_at: DateTime<Utc>,
}

impl OrderIntent {
    /// An active intent at revision 1.
    ///
    /// # Errors
    /// `InvalidInput` naming a bad field.
    pub fn new(
        intent_id: impl Into<String>,
        deployment_id: impl Into<String>,
        spec: OrderSpec,
        at: DateTime<Utc>,
    ) -> Result<Self> {
        let i = Self {
            intent_id: intent_id.into(),
            deployment_id: deployment_id.into(),
            spec,
            oco_group: None,
            revision: 1,
            status: IntentStatus::Active,
            updated_at: at,
        };
        i.validate()?;
        Ok(i)
    }

    /// The same intent in an OCO group.
    ///
    /// # Errors
    /// `InvalidInput` for a bad group id.
    pub fn in_group(mut self, group: impl Into<String>) -> Result<Self> {
        let g = group.into();
        check_id("OCO group", &g)?;
        self.oco_group = Some(g);
        Ok(self)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput` naming the field.
    pub fn validate(&self) -> Result<()> {
        check_id("intent id", &self.intent_id)?;
        check_id("deployment id", &self.deployment_id)?;
        if let Some(g) = &self.oco_group {
            check_id("OCO group", g)?;
        }
        if self.revision == 0 {
            return Err(OrdersError::invalid("revision", "revisions start at 1"));
        }
        self.spec.validate()
    }

    /// The client order id of this intent's current revision: the same (deployment, intent,
    /// revision) always gives the same id, so a resend can be recognised by the exchange.
    pub fn client_order_id(&self) -> String {
        client_order_id(&self.deployment_id, &self.intent_id, self.revision)
    }
}

/// The deterministic client order id of (deployment, intent, revision): `ts` and 30 hex digits
/// of a SHA-256 over the three, short enough for every venue's client-id field.
pub fn client_order_id(deployment: &str, intent: &str, revision: u32) -> String {
    let digest = Checksum::of(format!("{deployment}\u{1f}{intent}\u{1f}{revision}").as_bytes());
    format!("ts{}", &digest.to_hex()[..30])
}

/// Where the actual order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActualStatus {
    /// Durable, about to be sent (or sent, with no answer yet: resolve by client id).
    PendingSubmit,
    /// Sent, outcome unknown (timeout): resolve by client id, never by a blind resend.
    Unknown,
    /// On the book.
    Open,
    /// On the book, partly filled.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// A cancel was sent.
    CancelRequested,
    /// Cancelled.
    Cancelled,
    /// Refused by the exchange.
    Rejected,
    /// Expired (e.g. an IOC remainder).
    Expired,
}

impl ActualStatus {
    /// True once the order can no longer trade.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Filled | Self::Cancelled | Self::Rejected | Self::Expired
        )
    }

    /// True while the outcome of a send is not known.
    pub fn is_unresolved(self) -> bool {
        matches!(self, Self::PendingSubmit | Self::Unknown)
    }
}

/// One fill, as the exchange reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    /// Unique per exchange order.
    pub fill_id: String,
    /// Price.
    pub price: Decimal,
    /// Size.
    pub size: Decimal,
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

/// Actual state: what the exchange has for an intent's current placement, and what its
/// earlier placements filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ActualOrder {
    /// The intent it serves.
    pub intent_id: String,
    /// The intent revision it was placed for.
    pub revision: u32,
    /// The client order id it was (or will be) sent with.
    pub client_order_id: String,
    /// The exchange's id, once known.
    pub exchange_order_id: Option<String>,
    /// The order as placed (or last modified).
    pub spec: OrderSpec,
    /// Where it stands.
    pub status: ActualStatus,
    /// Fills, each once.
    pub fills: Vec<Fill>,
    /// Why it was rejected.
    pub reject_reason: Option<String>,
    /// What earlier placements of the intent filled, per direction (empty until a placement
    /// is replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prior: Vec<PriorFills>,
}

impl ActualOrder {
    /// Filled size of this placement: the sum of its fills.
    pub fn filled(&self) -> Decimal {
        self.fills.iter().map(|f| f.size).sum()
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
    fn retire_placement(&mut self) {
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
}

/// One change of an order, in its journal. Intent events carry the whole intent; actual
/// events carry what changed, and [`fold`] applies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum OrderEvent {
    /// The intent was created or changed (the intent as it now is).
    IntentSet {
        /// The intent.
        intent: OrderIntent,
    },
    /// The intent was deleted.
    IntentDeleted,
    /// Made durable before the send.
    Created {
        /// The revision placed.
        revision: u32,
        /// Its client order id.
        client_order_id: String,
        /// The order sent.
        spec: OrderSpec,
    },
    /// A new placement replaces the current one (which is terminal on the venue): its fills
    /// count against the intent as prior fills, and the new placement starts pending.
    Replaced {
        /// The revision placed.
        revision: u32,
        /// Its client order id.
        client_order_id: String,
        /// The order sent: the intent's order for what it may still trade.
        spec: OrderSpec,
    },
    /// The placement's order is now `spec`: resent under the same client order id before the
    /// first send was seen (the venue keeps at most one of the two), or as the venue reports
    /// it holds the order.
    SpecSet {
        /// The order.
        spec: OrderSpec,
    },
    /// Sent to the exchange.
    Submitted,
    /// Acknowledged: on the book.
    Acked {
        /// The exchange's id.
        exchange_order_id: String,
    },
    /// Found on the exchange by client id after an unknown outcome or a crash.
    Adopted {
        /// The exchange's id.
        exchange_order_id: String,
    },
    /// A fill.
    Filled {
        /// The fill.
        fill: Fill,
    },
    /// Modified on the exchange.
    Modified {
        /// The new price.
        price: Option<Decimal>,
        /// The new size.
        size: Decimal,
        /// The intent revision it now serves.
        revision: u32,
    },
    /// A cancel was sent.
    CancelRequested,
    /// Cancelled.
    Cancelled,
    /// Rejected.
    Rejected {
        /// Why.
        reason: String,
    },
    /// Expired.
    Expired,
    /// The venue reports the order completely filled (e.g. after its size was cut to what
    /// had filled).
    Completed,
    /// The send's outcome is unknown.
    Unknown,
    /// The exchange has no order with the client id: the send never arrived.
    NotFound,
    /// The actual record was removed.
    Removed,
}

/// What the events of one order fold into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// The intent, unless deleted.
    pub intent: Option<OrderIntent>,
    /// The actual order, unless removed.
    pub actual: Option<ActualOrder>,
}

/// Applies one actual-order event to `actual` (`None`: no record yet).
///
/// # Errors
/// `InvalidInput` for an event that needs a record and has none.
pub fn fold(
    actual: Option<ActualOrder>,
    intent_id: &str,
    e: &OrderEvent,
) -> Result<Option<ActualOrder>> {
    let need = |a: Option<ActualOrder>| {
        a.ok_or_else(|| {
            OrdersError::invalid("order event", format!("{intent_id}: {e:?} before Created"))
        })
    };
    Ok(match e {
        OrderEvent::IntentSet { .. } | OrderEvent::IntentDeleted => actual,
        OrderEvent::Created {
            revision,
            client_order_id,
            spec,
        } => Some(placement(
            intent_id,
            *revision,
            client_order_id,
            spec,
            Vec::new(),
        )),
        OrderEvent::Replaced {
            revision,
            client_order_id,
            spec,
        } => {
            let mut prior = actual.map_or_else(Vec::new, |mut a| {
                a.retire_placement();
                a.prior
            });
            prior.retain(|p| !p.filled.is_zero());
            Some(placement(
                intent_id,
                *revision,
                client_order_id,
                spec,
                prior,
            ))
        }
        OrderEvent::Removed => None,
        other => {
            let mut a = need(actual)?;
            match other {
                OrderEvent::Submitted | OrderEvent::NotFound => {
                    a.status = ActualStatus::PendingSubmit;
                }
                OrderEvent::Acked { exchange_order_id }
                | OrderEvent::Adopted { exchange_order_id } => {
                    a.exchange_order_id = Some(exchange_order_id.clone());
                    if a.status.is_unresolved() {
                        a.status = ActualStatus::Open;
                    }
                }
                OrderEvent::Filled { fill } => {
                    if !a.fills.iter().any(|f| f.fill_id == fill.fill_id) {
                        a.fills.push(fill.clone());
                    }
                    a.status = if a.filled() >= a.spec.size {
                        ActualStatus::Filled
                    } else if a.status == ActualStatus::CancelRequested {
                        ActualStatus::CancelRequested
                    } else {
                        ActualStatus::PartiallyFilled
                    };
                }
                OrderEvent::Modified {
                    price,
                    size,
                    revision,
                } => {
                    a.spec.price = *price;
                    a.spec.size = *size;
                    a.revision = *revision;
                }
                OrderEvent::CancelRequested => a.status = ActualStatus::CancelRequested,
                OrderEvent::Cancelled => a.status = ActualStatus::Cancelled,
                OrderEvent::Rejected { reason } => {
                    a.status = ActualStatus::Rejected;
                    a.reject_reason = Some(reason.clone());
                }
                OrderEvent::Expired => a.status = ActualStatus::Expired,
                OrderEvent::Completed => a.status = ActualStatus::Filled,
                OrderEvent::SpecSet { spec } => a.spec = spec.clone(),
                OrderEvent::Unknown => a.status = ActualStatus::Unknown,
                _ => {}
            }
            Some(a)
        }
    })
}

/// A new placement, pending its send, carrying what earlier placements filled.
fn placement(
    intent_id: &str,
    revision: u32,
    client_order_id: &str,
    spec: &OrderSpec,
    prior: Vec<PriorFills>,
) -> ActualOrder {
    ActualOrder {
        intent_id: intent_id.to_owned(),
        revision,
        client_order_id: client_order_id.to_owned(),
        exchange_order_id: None,
        spec: spec.clone(),
        status: ActualStatus::PendingSubmit,
        fills: Vec::new(),
        reject_reason: None,
        prior,
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
