//! The events that move an intent's order from one state to the next, and their fold: the
//! store writes the fold and the events in one batch, and [`crate::OrderStore::rebuild`] folds
//! the journal again to check them.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{OrdersError, Result};
use crate::intent::OrderIntent;
use crate::order::{Fill, Order, OrderSpec, OrderStatus};

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
    pub actual: Option<Order>,
}

/// Applies one actual-order event to `actual` (`None`: no record yet).
///
/// # Errors
/// `InvalidInput` for an event that needs a record and has none.
pub fn fold(actual: Option<Order>, intent_id: &str, e: &OrderEvent) -> Result<Option<Order>> {
    let need = |a: Option<Order>| {
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
        } => Some(Order::placement(
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
            Some(Order::placement(
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
                // The send is recorded; until the venue answers the order stays pending.
                OrderEvent::Submitted | OrderEvent::NotFound => {
                    a.status = OrderStatus::Pending;
                }
                OrderEvent::Acked { exchange_order_id }
                | OrderEvent::Adopted { exchange_order_id } => {
                    a.exchange_order_id = Some(exchange_order_id.clone());
                    if a.status.is_unresolved() {
                        a.status = OrderStatus::Live;
                    }
                }
                OrderEvent::Filled { fill } => {
                    if !a.fills.iter().any(|f| f.fill_id == fill.fill_id) {
                        a.fills.push(fill.clone());
                    }
                    a.status = if a.filled() >= a.spec.size {
                        OrderStatus::Filled
                    } else if a.status == OrderStatus::CancelRequested {
                        OrderStatus::CancelRequested
                    } else {
                        OrderStatus::PartiallyFilled
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
                OrderEvent::CancelRequested => a.status = OrderStatus::CancelRequested,
                OrderEvent::Cancelled => a.status = OrderStatus::Cancelled,
                OrderEvent::Rejected { reason } => {
                    a.status = OrderStatus::Failed;
                    a.error = Some(reason.clone());
                }
                OrderEvent::Expired => a.status = OrderStatus::Expired,
                OrderEvent::Completed => a.status = OrderStatus::Filled,
                OrderEvent::SpecSet { spec } => a.spec = spec.clone(),
                // Sent, and the answer was lost: resolve by client id.
                OrderEvent::Unknown => a.status = OrderStatus::Submitted,
                _ => {}
            }
            Some(a)
        }
    })
}
