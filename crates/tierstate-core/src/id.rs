//! The validated deployment identifier.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Identifies one strategy deployment: 1..=128 bytes of UTF-8 with no control characters.
///
/// Ids starting with [`DeploymentId::RESERVED_PREFIX`] belong to tierstate's own records (such
/// as the payload-schema marker): [`DeploymentId::new`] refuses them, so callers can neither
/// read, write nor delete them, and `list`/`scan` never show them.
///
/// Cheap to clone (shared `Arc<str>`), so it can key caches and travel through batches.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(Arc<str>);

impl DeploymentId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Prefix of the ids of tierstate's own records.
    pub const RESERVED_PREFIX: &'static str = "__tierstate/";

    /// The reserved ids as a byte range, `RESERVED_RANGE.0 <= id < RESERVED_RANGE.1` (the
    /// prefix with its last byte plus one), for stores that leave them out inside a query.
    pub const RESERVED_RANGE: (&'static str, &'static str) = ("__tierstate/", "__tierstate0");

    /// Validates and wraps a caller's id.
    ///
    /// # Errors
    /// `InvalidInput` if `id` is empty, longer than [`Self::MAX_LEN`] bytes, contains a
    /// control character (including NUL, newline and DEL), or starts with
    /// [`Self::RESERVED_PREFIX`].
    pub fn new(id: impl AsRef<str>) -> Result<Self, Error> {
        let id = id.as_ref();
        if id.starts_with(Self::RESERVED_PREFIX) {
            return Err(Error::invalid(
                "deployment_id",
                format!(
                    "{id:?} starts with {:?}, which is reserved for tierstate's own records",
                    Self::RESERVED_PREFIX
                ),
            ));
        }
        Self::from_stored(id)
    }

    /// The id of one of tierstate's own records: [`Self::RESERVED_PREFIX`] followed by `name`.
    /// Not for strategies' data: such records are hidden from `list` and `scan`.
    ///
    /// # Errors
    /// `InvalidInput` as for [`DeploymentId::new`] (length, control characters).
    pub fn reserved(name: &str) -> Result<Self, Error> {
        Self::from_stored(format!("{}{name}", Self::RESERVED_PREFIX))
    }

    /// Validates an id read back from storage, where tierstate's reserved ids may appear too.
    /// For backends; callers use [`DeploymentId::new`].
    ///
    /// # Errors
    /// `InvalidInput` if `id` is empty, too long or contains a control character.
    pub fn from_stored(id: impl AsRef<str>) -> Result<Self, Error> {
        let id = id.as_ref();
        if id.is_empty() {
            return Err(Error::invalid("deployment_id", "must not be empty"));
        }
        if id.len() > Self::MAX_LEN {
            return Err(Error::invalid(
                "deployment_id",
                format!("is {} bytes, the limit is {}", id.len(), Self::MAX_LEN),
            ));
        }
        if let Some((at, c)) = id.char_indices().find(|(_, c)| c.is_control()) {
            return Err(Error::invalid(
                "deployment_id",
                format!("contains control character U+{:04X} at byte {at}", c as u32),
            ));
        }
        Ok(Self(Arc::from(id)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of tierstate's own records.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(Self::RESERVED_PREFIX)
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Borrow<str> for DeploymentId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DeploymentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for DeploymentId {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl TryFrom<String> for DeploymentId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl Serialize for DeploymentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeploymentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// Longest id of a domain record (an order, an intent, a fill, a market, a token, an OCO
/// group), in bytes: the longest document key, so every id can be one.
pub const MAX_ID_LEN: usize = crate::Name::MAX_KEY_LEN;

/// The one id rule of every domain: 1..=[`MAX_ID_LEN`] bytes, no control characters.
///
/// # Errors
/// `InvalidInput` on `field`, saying which part of the rule `s` breaks.
pub fn check_id(field: &'static str, s: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            field,
            format!("must be 1..={MAX_ID_LEN} bytes, got {}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "holds a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_printable_and_unicode() {
        assert_eq!(
            DeploymentId::new("btc-perp/alpha 1").unwrap().as_str(),
            "btc-perp/alpha 1"
        );
        assert!(DeploymentId::new("策略-ü").is_ok());
        assert!(DeploymentId::new("x".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in ["", "a\nb", "nul\0", "tab\t", "del\u{7f}"] {
            assert!(
                matches!(DeploymentId::new(bad), Err(Error::InvalidInput { .. })),
                "{bad:?}"
            );
        }
        assert!(DeploymentId::new("x".repeat(129)).is_err());
        // 43 three-byte chars = 129 bytes: the limit is bytes, not chars.
        assert!(DeploymentId::new("策".repeat(43)).is_err());
    }

    #[test]
    fn reserved_prefix_is_refused_to_callers() {
        let err = DeploymentId::new("__tierstate/payload-schema").unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        assert!(serde_json::from_str::<DeploymentId>("\"__tierstate/x\"").is_err());
        let own = DeploymentId::reserved("payload-schema").unwrap();
        assert_eq!(own.as_str(), "__tierstate/payload-schema");
        assert!(own.is_reserved());
        assert!(!DeploymentId::new("__tierstate").unwrap().is_reserved());
        assert_eq!(DeploymentId::from_stored(own.as_str()).unwrap(), own);
        // The range is exactly the prefix: its end is the prefix with the last byte + 1.
        let (start, end) = DeploymentId::RESERVED_RANGE;
        assert_eq!(start, DeploymentId::RESERVED_PREFIX);
        let mut next = start.as_bytes().to_vec();
        *next.last_mut().unwrap() += 1;
        assert_eq!(end.as_bytes(), next.as_slice());
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<DeploymentId>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<DeploymentId>("\"a\"")
                .unwrap()
                .as_str(),
            "a"
        );
    }
}
