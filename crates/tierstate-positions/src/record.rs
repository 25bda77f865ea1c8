//! One position: what is held where, in exact decimals.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{PositionError, Result};
use crate::kind::PositionType;
use tierstate_core::Side;

/// The largest amount or USD value a position may hold, either way: 10^20, so totals over
/// even a hundred million positions stay far inside `Decimal`'s range and never overflow.
pub const MAX_MAGNITUDE: Decimal = Decimal::from_parts(1_661_992_960, 1_808_227_885, 5, false, 0);

/// The one position record of every domain: what is held where, in exact decimals. The book,
/// the registry, position events, portfolio snapshots and the strategy store all hold this.
/// Amount and value are non-negative except for a perp, whose sign is its direction; a
/// borrow's value is what is owed, and totals count it negative. The market fields (entry and
/// mark price, unrealized PnL, leverage, liquidation price) are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredPosition")]
#[non_exhaustive]
pub struct PositionRecord {
    /// The position's id, unique within its chain.
    pub id: String,
    /// The chain or venue it is on.
    pub chain: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: PositionType,
    /// The protocol it is held through, if any (e.g. `aave-v3`).
    pub protocol: Option<String>,
    /// The token or asset.
    pub token: String,
    /// How much of the token.
    pub amount: Decimal,
    /// Its value in USD.
    pub value_usd: Decimal,
    /// When it was first recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Anything else the strategy keeps with it.
    pub metadata: Map<String, Value>,
    /// Average entry price (see [`PositionRecord::apply_trade`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_price: Option<Decimal>,
    /// The price it was last marked at (see [`PositionRecord::mark`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_price: Option<Decimal>,
    /// Unrealized PnL at the mark, USD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrealized_pnl: Option<Decimal>,
    /// Leverage (positive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leverage: Option<Decimal>,
    /// The price at which it would be liquidated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liquidation_price: Option<Decimal>,
}

impl PositionRecord {
    /// A new position created now.
    ///
    /// # Errors
    /// `InvalidInput` for an empty, oversized or control-character id, chain, token; a
    /// negative amount or value on a kind that is not signed.
    pub fn new(
        id: impl Into<String>,
        chain: impl Into<String>,
        kind: PositionType,
        token: impl Into<String>,
        amount: Decimal,
        value_usd: Decimal,
    ) -> Result<Self> {
        let now = Utc::now();
        let r = Self {
            id: id.into(),
            chain: chain.into(),
            kind,
            protocol: None,
            token: token.into(),
            amount,
            value_usd,
            created_at: now,
            updated_at: now,
            metadata: Map::new(),
            entry_price: None,
            mark_price: None,
            unrealized_pnl: None,
            leverage: None,
            liquidation_price: None,
        };
        r.validate()?;
        Ok(r)
    }

    /// A perp on a venue: signed `amount`, no value until it is marked.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id, venue or symbol.
    pub fn perp(
        id: impl Into<String>,
        venue: impl Into<String>,
        symbol: impl Into<String>,
    ) -> Result<Self> {
        Self::new(
            id,
            venue,
            PositionType::Perp,
            symbol,
            Decimal::ZERO,
            Decimal::ZERO,
        )
    }

    /// Books a trade of `size` at `price` on a signed position (a perp): the amount moves by
    /// the trade, and the entry price is the average price of what is held. Adding averages it;
    /// reducing keeps it; opening, or flipping through zero, takes the trade's price; a flat
    /// position has none.
    ///
    /// # Errors
    /// `InvalidInput` for a kind that is not signed, a size or price that is not positive, or
    /// an amount out of range (nothing changes).
    pub fn apply_trade(&mut self, side: Side, size: Decimal, price: Decimal) -> Result<()> {
        if !self.kind.is_signed() {
            return Err(PositionError::invalid(
                "kind",
                format!("{} is not signed: trades move perps", self.kind),
            ));
        }
        if size <= Decimal::ZERO || price <= Decimal::ZERO {
            return Err(PositionError::invalid(
                "trade",
                format!("size {size} and price {price} must be positive"),
            ));
        }
        let signed = match side {
            Side::Buy => size,
            Side::Sell => -size,
        };
        let (pos, after) = (self.amount, self.amount + signed);
        if after.abs() > MAX_MAGNITUDE {
            return Err(PositionError::invalid(
                "amount",
                format!("{after} is out of range (at most {MAX_MAGNITUDE} either way)"),
            ));
        }
        let avg = self.entry_price.unwrap_or(price);
        self.entry_price = if after.is_zero() {
            None
        } else if pos.is_zero() || pos.is_sign_positive() != after.is_sign_positive() {
            Some(price)
        } else if pos.is_sign_positive() == signed.is_sign_positive() {
            Some(((pos * avg + signed * price) / after).round_dp(6))
        } else {
            Some(avg)
        };
        self.amount = after;
        Ok(())
    }

    /// Marks the position at `price`: its value is amount × price, its unrealized PnL
    /// (price − entry) × amount.
    ///
    /// # Errors
    /// `InvalidInput` for a price that is not positive or a value out of range (nothing
    /// changes).
    pub fn mark(&mut self, price: Decimal) -> Result<()> {
        if price <= Decimal::ZERO {
            return Err(PositionError::invalid(
                "mark price",
                format!("must be positive, got {price}"),
            ));
        }
        let value = (self.amount * price).round_dp(6);
        if value.abs() > MAX_MAGNITUDE {
            return Err(PositionError::invalid(
                "value_usd",
                format!("{value} is out of range (at most {MAX_MAGNITUDE} either way)"),
            ));
        }
        self.value_usd = value;
        self.mark_price = Some(price);
        self.unrealized_pnl = self
            .entry_price
            .map(|e| ((price - e) * self.amount).round_dp(6));
        Ok(())
    }

    /// Sets the protocol.
    ///
    /// # Errors
    /// `InvalidInput` for an empty, oversized or control-character name.
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Result<Self> {
        let p = protocol.into();
        check_label("protocol", &p, 64)?;
        self.protocol = Some(p);
        Ok(self)
    }

    /// Sets the metadata.
    ///
    /// # Errors
    /// `InvalidInput` if it is not a JSON object.
    pub fn with_metadata(mut self, metadata: Value) -> Result<Self> {
        match metadata {
            Value::Object(m) => {
                self.metadata = m;
                Ok(self)
            }
            other => Err(PositionError::invalid(
                "metadata",
                format!(
                    "must be a JSON object, got {}",
                    tierstate_core::json_kind(&other)
                ),
            )),
        }
    }

    /// Sets both times (for records rebuilt from elsewhere).
    ///
    /// # Errors
    /// `InvalidInput` if `updated_at` is before `created_at`.
    pub fn with_times(
        mut self,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<Self> {
        if updated_at < created_at {
            return Err(PositionError::invalid("updated_at", "is before created_at"));
        }
        self.created_at = created_at;
        self.updated_at = updated_at;
        Ok(self)
    }

    /// The value as it counts towards net value: negative for a borrow, signed for a perp.
    pub fn net_value(&self) -> Decimal {
        match self.kind {
            PositionType::Borrow => -self.value_usd,
            _ => self.value_usd,
        }
    }

    /// The value as it counts towards gross exposure: its absolute value.
    pub fn gross_value(&self) -> Decimal {
        self.value_usd.abs()
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.protocol {
            check_label("protocol", p, 64)?;
        }
        for (field, v) in [
            ("entry_price", self.entry_price),
            ("mark_price", self.mark_price),
            ("leverage", self.leverage),
            ("liquidation_price", self.liquidation_price),
        ] {
            if let Some(v) = v
                && (v.is_sign_negative()
                    || v > MAX_MAGNITUDE
                    || (field == "leverage" && v.is_zero()))
            {
                return Err(PositionError::invalid(
                    field,
                    format!("{v} is out of range"),
                ));
            }
        }
        if let Some(p) = self.unrealized_pnl
            && p.abs() > MAX_MAGNITUDE
        {
            return Err(PositionError::invalid(
                "unrealized_pnl",
                format!("{p} is out of range (at most {MAX_MAGNITUDE} either way)"),
            ));
        }
        check_holding(
            &self.id,
            &self.chain,
            self.kind,
            &self.token,
            self.amount,
            self.value_usd,
        )
    }
}

/// The checks a position and a venue's report of one share: labels, range, and sign (only a
/// perp's amount and value may be negative).
pub(crate) fn check_holding(
    id: &str,
    chain: &str,
    kind: PositionType,
    token: &str,
    amount: Decimal,
    value_usd: Decimal,
) -> Result<()> {
    check_label("id", id, tierstate_core::MAX_ID_LEN)?;
    check_label("chain", chain, 64)?;
    check_label("token", token, 64)?;
    for (field, v) in [("amount", amount), ("value_usd", value_usd)] {
        if v.abs() > MAX_MAGNITUDE {
            return Err(PositionError::invalid(
                field,
                format!("{v} is out of range (at most {MAX_MAGNITUDE} either way)"),
            ));
        }
        if !kind.is_signed() && v.is_sign_negative() && !v.is_zero() {
            return Err(PositionError::invalid(
                field,
                format!("{v} is negative; only a perp's amount and value are signed"),
            ));
        }
    }
    Ok(())
}

/// Ids, chains, tokens and protocols: 1..=`max` bytes, no control characters.
pub(crate) fn check_label(field: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(PositionError::invalid(field, "is empty"));
    }
    if s.len() > max {
        return Err(PositionError::invalid(
            field,
            format!("is {} bytes; at most {max}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(PositionError::invalid(field, "holds a control character"));
    }
    Ok(())
}

/// A position as stored: every field as written, checked field by field on the way back so a
/// bad one is named.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredPosition {
    id: String,
    chain: String,
    #[serde(rename = "type")]
    kind: String,
    protocol: Option<String>,
    token: String,
    amount: Value,
    value_usd: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    metadata: Value,
    #[serde(default)]
    entry_price: Option<Value>,
    #[serde(default)]
    mark_price: Option<Value>,
    #[serde(default)]
    unrealized_pnl: Option<Value>,
    #[serde(default)]
    leverage: Option<Value>,
    #[serde(default)]
    liquidation_price: Option<Value>,
}

impl TryFrom<StoredPosition> for PositionRecord {
    type Error = PositionError;
    fn try_from(p: StoredPosition) -> Result<Self> {
        let r = p.into_record()?;
        r.validate()?;
        Ok(r)
    }
}

impl StoredPosition {
    /// The record, or the first field that is wrong (the rest are checked on insert).
    pub(crate) fn into_record(self) -> Result<PositionRecord> {
        let opt = |field, v: &Option<Value>| v.as_ref().map(|v| decimal(field, v)).transpose();
        let r = PositionRecord {
            kind: self.kind.parse()?,
            amount: decimal("amount", &self.amount)?,
            value_usd: decimal("value_usd", &self.value_usd)?,
            entry_price: opt("entry_price", &self.entry_price)?,
            mark_price: opt("mark_price", &self.mark_price)?,
            unrealized_pnl: opt("unrealized_pnl", &self.unrealized_pnl)?,
            leverage: opt("leverage", &self.leverage)?,
            liquidation_price: opt("liquidation_price", &self.liquidation_price)?,
            id: self.id,
            chain: self.chain,
            protocol: self.protocol,
            token: self.token,
            created_at: self.created_at,
            updated_at: self.updated_at,
            metadata: match self.metadata {
                Value::Object(m) => m,
                other => {
                    return Err(PositionError::invalid(
                        "metadata",
                        format!(
                            "must be a JSON object, got {}",
                            tierstate_core::json_kind(&other)
                        ),
                    ));
                }
            },
        };
        // Checked by `PositionBook::upsert`, which every decoded record goes through.
        Ok(r)
    }
}

/// A decimal stored as a string (the only form tierstate writes: it keeps the scale).
fn decimal(field: &'static str, v: &Value) -> Result<Decimal> {
    let bad = || PositionError::InvalidDecimal {
        field,
        value: v.to_string(),
    };
    let s = v.as_str().ok_or_else(bad)?;
    tierstate_core::parse_decimal(field, s).map_err(|_| bad())
}
