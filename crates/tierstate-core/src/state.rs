//! The versioned state record and the raw form backends read it in.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{Checksum, DeploymentId, Error, Result};

/// Which tier served a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The in-process cache.
    Hot,
    /// The durable store (SQLite, redb, PostgreSQL, or the in-memory reference store).
    Warm,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Hot => "HOT",
            Tier::Warm => "WARM",
        })
    }
}

/// One committed version of a deployment's state, verified against its checksum.
///
/// Only stores build it (from bytes whose checksum they verified), so a `StateData` in hand is
/// always intact. Shared as `Arc<StateData>` by the HOT tier, never deep-copied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StateData {
    /// The deployment this state belongs to.
    pub deployment_id: DeploymentId,
    /// Monotonic version, 1 for the first commit, +1 for every commit after.
    pub version: u64,
    /// The state: always a JSON object.
    pub state: Map<String, Value>,
    /// Schema version of the payload, for payload migrations.
    pub schema_version: u32,
    /// SHA-256 of the canonical JSON of `state`.
    #[serde(serialize_with = "ser_checksum")]
    pub checksum: Checksum,
    /// When version 1 was committed.
    pub created_at: DateTime<Utc>,
    /// When this version was committed.
    pub updated_at: DateTime<Utc>,
    /// Which tier served this copy.
    pub loaded_from: Tier,
}

pub(crate) fn ser_checksum<S: Serializer>(
    c: &Checksum,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_hex())
}

impl StateData {
    /// Decodes the state into a typed value.
    ///
    /// # Errors
    /// `Serialization` if the state does not match `T`, or holds decimal text that a
    /// `Decimal` field of `T` could only hold rounded (refused, naming the field).
    pub fn to_typed<T: DeserializeOwned + Serialize>(&self) -> Result<T> {
        crate::exact::from_map(&self.state).map_err(|source| Error::Serialization {
            deployment_id: self.deployment_id.clone(),
            source,
        })
    }

    /// The same record, marked as served by `tier`.
    pub fn served_from(mut self, tier: Tier) -> Self {
        self.loaded_from = tier;
        self
    }
}

/// A record exactly as a backend read it: canonical body bytes plus metadata.
/// [`StoredRecord::verify`] is the only way from stored bytes to a [`StateData`].
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// The version.
    pub version: u64,
    /// Payload schema version.
    pub schema_version: u32,
    /// Canonical JSON bytes as stored.
    pub body: Vec<u8>,
    /// The checksum stored beside the body (hex text).
    pub checksum: String,
    /// Commit time of version 1, microseconds since the Unix epoch (UTC).
    pub created_at_us: i64,
    /// Commit time of this version, microseconds since the Unix epoch (UTC).
    pub updated_at_us: i64,
}

impl StoredRecord {
    /// Verifies the body against the stored checksum and decodes it.
    ///
    /// # Errors
    /// `Integrity` naming the deployment and `tier` if the checksum does not match, the body is
    /// not a JSON object, or a timestamp is out of range. The damaged record is not returned.
    pub fn verify(self, tier: Tier) -> Result<StateData> {
        let integrity = |expected: String, actual: String| Error::Integrity {
            deployment_id: self.deployment_id.clone(),
            target: crate::Target::State,
            tier,
            version: self.version,
            expected,
            actual,
        };
        let (state, computed) =
            verify_object(&self.body, &self.checksum).map_err(|(e, a)| integrity(e, a))?;
        let created_at = DateTime::from_timestamp_micros(self.created_at_us);
        let updated_at = DateTime::from_timestamp_micros(self.updated_at_us);
        let (Some(created_at), Some(updated_at)) = (created_at, updated_at) else {
            return Err(integrity(
                computed.to_hex(),
                "timestamp out of range".into(),
            ));
        };
        Ok(StateData {
            deployment_id: self.deployment_id,
            version: self.version,
            state,
            schema_version: self.schema_version,
            checksum: computed,
            created_at,
            updated_at,
            loaded_from: tier,
        })
    }
}

/// Checks a stored body (decompressed first if it was stored compressed) against the stored
/// hex `checksum` of its canonical JSON, and decodes it as a JSON object. On failure returns
/// (expected, actual) for an `Integrity` error.
pub(crate) fn verify_object(
    stored: &[u8],
    checksum: &str,
) -> std::result::Result<(Map<String, Value>, Checksum), (String, String)> {
    let (body, computed) = verify_bytes(stored, checksum)?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok((map, computed)),
        Ok(_) => Err((computed.to_hex(), "body is not a JSON object".into())),
        Err(e) => Err((computed.to_hex(), format!("body is not JSON: {e}"))),
    }
}

/// A failed check: (expected, actual), for an `Integrity` error.
pub(crate) type Mismatch = (String, String);

/// The checksum step of [`verify_object`]: the body's canonical bytes (decompressed), once
/// they match the stored hex `checksum`.
pub(crate) fn verify_bytes<'a>(
    stored: &'a [u8],
    checksum: &str,
) -> std::result::Result<(std::borrow::Cow<'a, [u8]>, Checksum), Mismatch> {
    let body = crate::compress::unpack(stored).map_err(|why| (checksum.to_owned(), why))?;
    let computed = Checksum::of(&body);
    match Checksum::from_hex(checksum) {
        Some(stored) if stored == computed => Ok((body, computed)),
        Some(_) => Err((checksum.to_owned(), computed.to_hex())),
        None => Err((
            format!("unreadable stored checksum {checksum:?}"),
            computed.to_hex(),
        )),
    }
}

/// The current time at the precision every backend stores (microseconds), so a committed
/// record equals the same record loaded back.
pub fn commit_time() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Microseconds since the Unix epoch for `t`, the form every backend stores timestamps in.
pub fn epoch_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// `t` truncated to microseconds, the precision every backend stores: a time read back
/// equals the one written. The one time helper of every domain.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical_json;

    fn record(body: &[u8], checksum: String) -> StoredRecord {
        StoredRecord {
            deployment_id: DeploymentId::new("d").unwrap(),
            version: 3,
            schema_version: 1,
            body: body.to_vec(),
            checksum,
            created_at_us: 1_700_000_000_000_000,
            updated_at_us: 1_700_000_000_000_001,
        }
    }

    #[test]
    fn verify_accepts_intact_and_rejects_damaged() {
        let map = serde_json::json!({"a": 1}).as_object().unwrap().clone();
        let body = canonical_json(&map).unwrap();
        let sum = Checksum::of(&body).to_hex();
        let ok = record(&body, sum.clone()).verify(Tier::Warm).unwrap();
        assert_eq!(ok.state, map);
        assert_eq!(ok.version, 3);

        let mut damaged = body.clone();
        damaged[5] ^= 0x01;
        let err = record(&damaged, sum.clone())
            .verify(Tier::Warm)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Integrity {
                    tier: Tier::Warm,
                    version: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("WARM") && err.to_string().contains(" d "));

        let err = record(&body, "nothex".into())
            .verify(Tier::Warm)
            .unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }));

        // Checksum matches but the body is not an object: still refused.
        let arr = b"[1]";
        let err = record(arr, Checksum::of(arr).to_hex())
            .verify(Tier::Warm)
            .unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }));
    }
}
