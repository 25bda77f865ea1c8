//! What a strategy wants: an [`OrderIntent`], durable before anything is sent, and the
//! deterministic client order id of each of its placements.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tierstate_core::Checksum;

use crate::error::{OrdersError, Result};
use crate::order::{OrderSpec, check_id};

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
