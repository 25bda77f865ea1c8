//! The one document codec of every domain: a record stored as its JSON fields plus a
//! `"schema": N` stamp; decoding refuses a newer schema (rather than misreading it) and reads
//! decimal text exactly (see [`crate::exact`]).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The key under which a document body carries its schema.
pub const SCHEMA_KEY: &str = "schema";

/// Why a stored body did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Written by a newer build (its schema is above the newest this build reads).
    Newer {
        /// The schema found.
        found: u64,
        /// The newest this build reads.
        supported: u64,
    },
    /// Not a record of the expected shape (the serde message, naming the field).
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Newer { found, supported } => write!(
                f,
                "written at schema {found}; this build reads up to {supported}: upgrade tierstate"
            ),
            DecodeError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Encodes `record` as a document body stamped with `schema`: its fields (it must serialize
/// to a JSON object; NaN and ±Infinity are refused with the field path) and `"schema": N`.
///
/// # Errors
/// What is wrong, in words, for the caller's own `InvalidInput`.
pub fn encode_doc<T: Serialize>(schema: u64, record: &T) -> Result<Map<String, Value>, String> {
    crate::finite::check(record).map_err(|e| e.to_string())?;
    match serde_json::to_value(record) {
        Ok(Value::Object(mut m)) => {
            m.insert(SCHEMA_KEY.into(), Value::from(schema));
            Ok(m)
        }
        Ok(other) => Err(format!(
            "encodes to {}, not an object",
            crate::json_kind(&other)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The schema a body was written at (0 if it carries none).
pub fn schema_of(body: &Map<String, Value>) -> u64 {
    body.get(SCHEMA_KEY).and_then(Value::as_u64).unwrap_or(0)
}

/// Refuses a body written at a schema above `supported` (for records that decode their own
/// fields).
///
/// # Errors
/// [`DecodeError::Newer`].
pub fn check_schema(body: &Map<String, Value>, supported: u64) -> Result<(), DecodeError> {
    let found = schema_of(body);
    if found > supported {
        return Err(DecodeError::Newer { found, supported });
    }
    Ok(())
}

/// Decodes a body written by [`encode_doc`]: refuses a schema above `supported`, then decodes
/// the other fields exactly.
///
/// # Errors
/// [`DecodeError::Newer`] or [`DecodeError::Malformed`].
pub fn decode_doc<T: DeserializeOwned + Serialize>(
    supported: u64,
    mut body: Map<String, Value>,
) -> Result<T, DecodeError> {
    check_schema(&body, supported)?;
    body.remove(SCHEMA_KEY);
    crate::exact::from_object(body).map_err(|e| DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rec {
        name: String,
        n: u32,
    }

    #[test]
    fn records_round_trip_and_newer_ones_are_refused() {
        let r = Rec {
            name: "a".into(),
            n: 3,
        };
        let body = encode_doc(2, &r).unwrap();
        assert_eq!(body["schema"], 2);
        assert_eq!(decode_doc::<Rec>(2, body.clone()).unwrap(), r);
        assert_eq!(decode_doc::<Rec>(3, body.clone()).unwrap(), r);
        assert_eq!(
            decode_doc::<Rec>(1, body).unwrap_err(),
            DecodeError::Newer {
                found: 2,
                supported: 1
            }
        );
        assert!(encode_doc(1, &3).unwrap_err().contains("not an object"));
        let e = encode_doc(1, &serde_json::json!({"x": [1.0, f64::NAN]}));
        // serde_json's Value has no NaN: the check is on typed records.
        assert!(e.is_ok());
        #[derive(Serialize)]
        struct F {
            x: f64,
        }
        assert!(
            encode_doc(1, &F { x: f64::NAN })
                .unwrap_err()
                .contains("$.x")
        );
        let mut bad = encode_doc(1, &r).unwrap();
        bad.insert("extra".into(), Value::from(1));
        assert!(matches!(
            decode_doc::<Rec>(1, bad),
            Err(DecodeError::Malformed(m)) if m.contains("extra")
        ));
    }
}
