//! What sort of holding a position is, and which way it counts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PositionError;

/// The kind of a position. Stored as its lower-case name; an unknown name is an error, never
/// a silent default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum PositionType {
    /// A token balance held.
    Token,
    /// A liquidity-pool share.
    Lp,
    /// A loan taken: it counts against net value.
    Borrow,
    /// A deposit lent out.
    Supply,
    /// A perpetual future: its value is signed (short is negative).
    Perp,
    /// A vault share.
    Vault,
}

impl PositionType {
    /// Every kind, in their stored order.
    pub const ALL: [PositionType; 6] = [
        Self::Token,
        Self::Lp,
        Self::Borrow,
        Self::Supply,
        Self::Perp,
        Self::Vault,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Lp => "lp",
            Self::Borrow => "borrow",
            Self::Supply => "supply",
            Self::Perp => "perp",
            Self::Vault => "vault",
        }
    }

    /// Whether amount and value may be negative (a perp's direction).
    pub fn is_signed(self) -> bool {
        self == Self::Perp
    }
}

impl fmt::Display for PositionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PositionType {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| PositionError::UnknownPositionType {
                value: s.to_owned(),
            })
    }
}

impl TryFrom<String> for PositionType {
    type Error = PositionError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PositionType> for &'static str {
    fn from(k: PositionType) -> Self {
        k.as_str()
    }
}
