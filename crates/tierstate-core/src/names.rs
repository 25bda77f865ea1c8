//! Names inside a deployment: collections and keys of documents, journal streams, idempotency
//! keys, and the addresses built from them.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::{DeploymentId, Error, Result};

/// A validated collection, stream or key name. Cheap to clone.
///
/// Collections and streams ([`Name::collection`], [`Name::stream`]) are 1..=64 bytes of
/// `[A-Za-z0-9._:-]` starting with a letter or digit, like `orders.open` or `ledger`. Keys
/// ([`Name::key`]) are 1..=256 bytes of UTF-8 with no control characters, so exchange order ids
/// and symbols such as `ETH/USD` fit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// Longest collection or stream name, in bytes.
    pub const MAX_NAMESPACE_LEN: usize = 64;
    /// Longest document or idempotency key, in bytes.
    pub const MAX_KEY_LEN: usize = 256;

    /// A collection name.
    ///
    /// # Errors
    /// `InvalidInput` naming `collection` if the name breaks the rules above.
    pub fn collection(s: impl AsRef<str>) -> Result<Self> {
        namespace("collection", s.as_ref())
    }

    /// A journal stream name.
    ///
    /// # Errors
    /// `InvalidInput` naming `stream` if the name breaks the rules above.
    pub fn stream(s: impl AsRef<str>) -> Result<Self> {
        namespace("stream", s.as_ref())
    }

    /// A document key or idempotency key.
    ///
    /// # Errors
    /// `InvalidInput` naming `key` if it is empty, longer than [`Self::MAX_KEY_LEN`] bytes or
    /// holds a control character.
    pub fn key(s: impl AsRef<str>) -> Result<Self> {
        let s = s.as_ref();
        if s.is_empty() || s.len() > Self::MAX_KEY_LEN {
            return Err(Error::invalid(
                "key",
                format!("must be 1..={} bytes, got {}", Self::MAX_KEY_LEN, s.len()),
            ));
        }
        if let Some((at, c)) = s.char_indices().find(|(_, c)| c.is_control()) {
            return Err(Error::invalid(
                "key",
                format!("contains control character U+{:04X} at byte {at}", c as u32),
            ));
        }
        Ok(Self(Arc::from(s)))
    }

    /// A name that skips validation: for range bounds inside this crate only (the empty name
    /// sorts before every key; a collection with `\0` appended after all of its keys).
    pub(crate) fn unchecked(s: &str) -> Self {
        Self(Arc::from(s))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn namespace(field: &'static str, s: &str) -> Result<Name> {
    if s.is_empty() || s.len() > Name::MAX_NAMESPACE_LEN {
        return Err(Error::invalid(
            field,
            format!(
                "must be 1..={} bytes, got {}",
                Name::MAX_NAMESPACE_LEN,
                s.len()
            ),
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if let Some((at, c)) = s.char_indices().find(|(_, c)| !ok(*c)) {
        return Err(Error::invalid(
            field,
            format!("{s:?} holds {c:?} at byte {at}; allowed are A-Z a-z 0-9 . _ : -"),
        ));
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(Error::invalid(
            field,
            format!("{s:?} must start with a letter or digit"),
        ));
    }
    Ok(Name(Arc::from(s)))
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Where a document lives: (deployment, collection, key).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
pub struct DocAddr {
    /// The deployment owning it.
    pub deployment_id: DeploymentId,
    /// Its collection, e.g. `orders.open`.
    pub collection: Name,
    /// Its key within the collection, e.g. `ord-17`.
    pub key: Name,
}

impl DocAddr {
    /// Validates and builds an address.
    ///
    /// # Errors
    /// `InvalidInput` if any part is invalid.
    pub fn new(deployment: &str, collection: &str, key: &str) -> Result<Self> {
        Ok(Self {
            deployment_id: DeploymentId::new(deployment)?,
            collection: Name::collection(collection)?,
            key: Name::key(key)?,
        })
    }
}

impl fmt::Display for DocAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.deployment_id, self.collection, self.key)
    }
}

/// Where a journal lives: (deployment, stream).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
pub struct StreamAddr {
    /// The deployment owning it.
    pub deployment_id: DeploymentId,
    /// Its stream name, e.g. `ledger`.
    pub stream: Name,
}

impl StreamAddr {
    /// Validates and builds an address.
    ///
    /// # Errors
    /// `InvalidInput` if any part is invalid.
    pub fn new(deployment: &str, stream: &str) -> Result<Self> {
        Ok(Self {
            deployment_id: DeploymentId::new(deployment)?,
            stream: Name::stream(stream)?,
        })
    }
}

impl fmt::Display for StreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.deployment_id, self.stream)
    }
}

/// Which record of a deployment an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// The deployment's state.
    State,
    /// A document.
    Document {
        /// Its collection.
        collection: Name,
        /// Its key.
        key: Name,
    },
    /// A journal.
    Journal {
        /// Its stream.
        stream: Name,
    },
}

impl Target {
    /// The target of a document address.
    pub fn document(addr: &DocAddr) -> Self {
        Self::Document {
            collection: addr.collection.clone(),
            key: addr.key.clone(),
        }
    }

    /// The target of a journal address.
    pub fn journal(addr: &StreamAddr) -> Self {
        Self::Journal {
            stream: addr.stream.clone(),
        }
    }
}

impl fmt::Display for Target {
    /// Empty for the state (messages read "on eth-basis"), else " document c/k" or
    /// " journal s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::State => Ok(()),
            Target::Document { collection, key } => write!(f, " document {collection}/{key}"),
            Target::Journal { stream } => write!(f, " journal {stream}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rules() {
        assert!(Name::collection("orders.open").is_ok());
        assert!(Name::stream("ledger").is_ok());
        assert!(Name::key("ETH/USD ord-17").is_ok());
        for bad in ["", ".x", "a/b", "a b", "ü", &"x".repeat(65)] {
            assert!(Name::collection(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "a\nb", &"k".repeat(257)] {
            assert!(Name::key(bad).is_err(), "{bad:?}");
        }
        let e = Name::stream("a b").unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "stream",
                    ..
                }
            ),
            "{e}"
        );
    }
}
