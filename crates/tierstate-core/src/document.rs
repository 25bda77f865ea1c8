//! Documents: versioned JSON records addressed by (deployment, collection, key), with the same
//! compare-and-swap, checksum and history rules as a deployment's state.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::state::verify_object;
use crate::{Checksum, DocAddr, Error, Name, PutMode, Result, Retention, Target, Tier};

/// Which current documents of one collection a scan returns, and in which key order. Both
/// bounds are exclusive, so a page's last key is the next page's cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    /// Only keys strictly greater than this one.
    pub after: Option<Name>,
    /// Only keys strictly less than this one.
    pub before: Option<Name>,
    /// Largest key first.
    pub descending: bool,
}

impl KeyRange {
    /// Every key, ascending.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keys after `after` (all with `None`), ascending.
    pub fn after(after: Option<Name>) -> Self {
        Self {
            after,
            ..Self::default()
        }
    }

    /// Keys before `before` (all with `None`), largest first.
    pub fn before_descending(before: Option<Name>) -> Self {
        Self {
            before,
            descending: true,
            ..Self::default()
        }
    }

    /// True if no key can satisfy both bounds.
    pub fn is_empty(&self) -> bool {
        matches!((&self.after, &self.before), (Some(a), Some(b)) if a >= b)
    }

    /// True if `key` lies inside both bounds.
    pub fn contains(&self, key: &Name) -> bool {
        self.after.as_ref().is_none_or(|a| key > a) && self.before.as_ref().is_none_or(|b| key < b)
    }
}

/// One compare-and-swap write of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct DocWrite {
    /// The document written.
    pub address: DocAddr,
    /// What the write expects to find (the same three modes as state).
    pub mode: PutMode,
    /// The new value: a JSON object.
    pub value: Map<String, Value>,
    /// How many versions of this document to keep, if not the batch's retention: a record
    /// whose history lives elsewhere (an order's, in its journal) keeps only what it needs.
    pub retention: Option<Retention>,
}

impl DocWrite {
    /// A write with an explicit mode.
    pub fn new(address: DocAddr, mode: PutMode, value: Map<String, Value>) -> Self {
        Self {
            address,
            mode,
            value,
            retention: None,
        }
    }

    /// The same write, keeping `retention` versions of this document whatever the batch keeps.
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }

    /// A write from a typed value that serializes to a JSON object.
    ///
    /// # Errors
    /// `InvalidInput` if `T` does not serialize to an object or holds a NaN or infinite
    /// number; `InvalidInput` (field `document`) if serde fails.
    pub fn typed<T: Serialize>(address: DocAddr, mode: PutMode, value: &T) -> Result<Self> {
        crate::finite::check(value)?;
        match serde_json::to_value(value) {
            Ok(Value::Object(map)) => Ok(Self::new(address, mode, map)),
            Ok(_) => Err(Error::invalid(
                "document",
                "must serialize to a JSON object",
            )),
            Err(e) => Err(Error::invalid("document", e.to_string())),
        }
    }
}

/// One committed version of a document, verified against its checksum.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Document {
    /// Where it lives.
    pub address: DocAddr,
    /// 1 for the first commit, +1 for each later one.
    pub version: u64,
    /// The value: always a JSON object.
    pub value: Map<String, Value>,
    /// SHA-256 of the canonical JSON of `value`.
    #[serde(serialize_with = "crate::state::ser_checksum")]
    pub checksum: Checksum,
    /// When version 1 was committed.
    pub created_at: DateTime<Utc>,
    /// When this version was committed.
    pub updated_at: DateTime<Utc>,
    /// Which tier served this copy.
    pub loaded_from: Tier,
}

impl Document {
    /// Decodes the value into a typed one.
    ///
    /// # Errors
    /// `InvalidInput` (field `document`) naming the address if the value does not match `T`,
    /// or holds decimal text that a `Decimal` field of `T` could only hold rounded.
    pub fn to_typed<T: DeserializeOwned + Serialize>(&self) -> Result<T> {
        crate::exact::from_map(&self.value).map_err(|e| {
            Error::invalid(
                "document",
                format!("{} does not match the requested type: {e}", self.address),
            )
        })
    }
}

/// A document exactly as a backend read it. [`StoredDoc::verify`] is the only way from stored
/// bytes to a [`Document`].
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// Where it lives.
    pub address: DocAddr,
    /// The version.
    pub version: u64,
    /// Canonical JSON bytes as stored.
    pub body: Vec<u8>,
    /// The checksum stored beside the body (hex text).
    pub checksum: String,
    /// Commit time of version 1 (µs since the Unix epoch).
    pub created_at_us: i64,
    /// Commit time of this version (µs since the Unix epoch).
    pub updated_at_us: i64,
}

impl StoredDoc {
    /// Verifies the body against the stored checksum and decodes it.
    ///
    /// # Errors
    /// `Integrity` naming the full address and `tier` if anything does not match.
    pub fn verify(self, tier: Tier) -> Result<Document> {
        let integrity = |(expected, actual)| self.integrity(tier, expected, actual);
        let (value, checksum) = verify_object(&self.body, &self.checksum).map_err(integrity)?;
        let (Some(created_at), Some(updated_at)) = (
            DateTime::from_timestamp_micros(self.created_at_us),
            DateTime::from_timestamp_micros(self.updated_at_us),
        ) else {
            return Err(integrity((
                checksum.to_hex(),
                "timestamp out of range".into(),
            )));
        };
        Ok(Document {
            address: self.address,
            version: self.version,
            value,
            checksum,
            created_at,
            updated_at,
            loaded_from: tier,
        })
    }

    /// The body's canonical JSON bytes, once they match the stored checksum: for a caller
    /// that decodes them straight into its own type (see [`crate::codec::decode_doc_bytes`]).
    ///
    /// # Errors
    /// `Integrity` naming the full address and `tier` if the body does not match.
    pub fn verified_body(&self, tier: Tier) -> Result<std::borrow::Cow<'_, [u8]>> {
        crate::state::verify_bytes(&self.body, &self.checksum)
            .map(|(body, _)| body)
            .map_err(|(expected, actual)| self.integrity(tier, expected, actual))
    }

    fn integrity(&self, tier: Tier, expected: String, actual: String) -> Error {
        Error::Integrity {
            deployment_id: self.address.deployment_id.clone(),
            target: Target::document(&self.address),
            tier,
            version: self.version,
            expected,
            actual,
        }
    }
}
