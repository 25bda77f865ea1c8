//! [`Side`]: which way an order or a trade goes — the one type every domain uses (orders,
//! CLOB orders, trades, ledger entries), stored as `"buy"` / `"sell"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Which way an order or a trade goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buys.
    Buy,
    /// Sells.
    Sell,
}

impl Side {
    /// Both sides, buy first.
    pub const ALL: &'static [Side] = &[Side::Buy, Side::Sell];

    /// The stored spelling: `"buy"` or `"sell"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// The other side.
    pub fn opposite(self) -> Self {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = Error;

    /// Parses `"buy"` or `"sell"`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "buy" => Ok(Side::Buy),
            "sell" => Ok(Side::Sell),
            other => Err(Error::invalid(
                "side",
                format!("{other:?}: expected buy or sell"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_round_trip_as_stored() {
        for s in Side::ALL {
            assert_eq!(s.as_str().parse::<Side>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
            assert_eq!(s.opposite().opposite(), *s);
        }
        assert!("BUY".parse::<Side>().is_err());
    }
}
