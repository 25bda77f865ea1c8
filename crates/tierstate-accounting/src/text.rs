//! Stored spellings and ids: the enums this crate stores as text (an unknown spelling is
//! `UnknownValue`, never a default), and the one id rule as this crate's `InvalidInput`.

use crate::error::{AccountingError, Result};

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

/// The one id rule ([`tierstate_core::check_id`]), as this crate's `InvalidInput`.
pub(crate) fn check_id(field: &'static str, s: &str) -> Result<()> {
    tierstate_core::check_id(field, s).map_err(|e| match e {
        tierstate_core::Error::InvalidInput { field, reason } => {
            AccountingError::invalid(field, reason)
        }
        other => other.into(),
    })
}
