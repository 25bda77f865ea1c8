//! A money figure that may not have been measured: unmeasured is not zero.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A USD figure, or explicitly unmeasured (the source was unavailable). Stored as its decimal
/// text or the word `unmeasured`, so neither can be mistaken for the other or for zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Amount {
    /// A measured value.
    Measured(Decimal),
    /// Not measured: nothing is known about it.
    #[default]
    Unmeasured,
}

impl Amount {
    /// The value, if measured.
    pub fn value(self) -> Option<Decimal> {
        match self {
            Self::Measured(v) => Some(v),
            Self::Unmeasured => None,
        }
    }

    /// True if measured.
    pub fn is_measured(self) -> bool {
        matches!(self, Self::Measured(_))
    }
}

impl From<Decimal> for Amount {
    fn from(v: Decimal) -> Self {
        Self::Measured(v)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Measured(v) => write!(f, "{v}"),
            Self::Unmeasured => f.write_str("unmeasured"),
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "unmeasured" {
            return Ok(Self::Unmeasured);
        }
        tierstate_core::parse_decimal("amount", &text)
            .map(Self::Measured)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is neither a decimal that fits exactly nor \"unmeasured\" ({e})"
                ))
            })
    }
}
