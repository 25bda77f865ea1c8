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

/// As [`decode_doc`], from the body's canonical bytes straight into `T`, with no JSON tree in
/// between (about half the cost, for scans that decode thousands of documents). A body that
/// holds text long enough to be rounded into a `Decimal` takes [`decode_doc`]'s path, which
/// checks it.
///
/// # Errors
/// [`DecodeError::Newer`] or [`DecodeError::Malformed`].
pub fn decode_doc_bytes<T: DeserializeOwned + Serialize>(
    supported: u64,
    body: &[u8],
) -> Result<T, DecodeError> {
    let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
    if crate::exact::may_round(body) {
        return match serde_json::from_slice::<Value>(body).map_err(malformed)? {
            Value::Object(map) => decode_doc(supported, map),
            other => Err(DecodeError::Malformed(format!(
                "a {}, not an object",
                crate::json_kind(&other)
            ))),
        };
    }
    // One pass in the common case: the stamp is read on the way; only a failure reads it
    // again, so that a newer body is reported as newer rather than as malformed.
    let mut stamp = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let typed = T::deserialize(unstamped::Unstamped(&mut de, &mut stamp)).and_then(|t| {
        de.end()?;
        Ok(t)
    });
    let stamp = match (&typed, stamp) {
        (Ok(_), Some(stamp)) => stamp,
        (Ok(_), None) => 0,
        (Err(_), _) => {
            #[derive(serde::Deserialize)]
            struct Stamp {
                #[serde(default)]
                schema: Option<Value>,
            }
            let stamp: Stamp = serde_json::from_slice(body).map_err(malformed)?;
            stamp.schema.as_ref().and_then(Value::as_u64).unwrap_or(0)
        }
    };
    if stamp > supported {
        return Err(DecodeError::Newer {
            found: stamp,
            supported,
        });
    }
    typed.map_err(malformed)
}

/// A deserializer of a top-level object that leaves out its `"schema"` entry, as
/// [`decode_doc`] removes it before decoding.
mod unstamped {
    use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
    use serde::forward_to_deserialize_any;

    use super::SCHEMA_KEY;

    /// Wraps a deserializer whose input is a JSON object; the stamp (its schema, 0 if not
    /// a whole number) goes to the second field.
    pub(super) struct Unstamped<'s, D>(pub(super) D, pub(super) &'s mut Option<u64>);

    impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Unstamped<'_, D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(Skip(v, self.1))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, D::Error> {
            self.0.deserialize_map(Skip(v, self.1))
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    /// The caller's visitor, handed the object without its stamp.
    struct Skip<'s, V>(V, &'s mut Option<u64>);

    impl<'de, V: Visitor<'de>> Visitor<'de> for Skip<'_, V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.expecting(f)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            self.0.visit_map(Entries(map, self.1))
        }
    }

    /// The object's entries, the stamp passed over.
    struct Entries<'s, A>(A, &'s mut Option<u64>);

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<'_, A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            loop {
                let Some(key) = self.0.next_key::<std::borrow::Cow<'de, str>>()? else {
                    return Ok(None);
                };
                if key == SCHEMA_KEY {
                    let v: serde_json::Value = self.0.next_value()?;
                    *self.1 = Some(v.as_u64().unwrap_or(0));
                    continue;
                }
                let key: de::value::CowStrDeserializer<'de, A::Error> = key.into_deserializer();
                return seed.deserialize(key).map(Some);
            }
        }

        fn next_value_seed<S: DeserializeSeed<'de>>(
            &mut self,
            seed: S,
        ) -> Result<S::Value, A::Error> {
            self.0.next_value_seed(seed)
        }

        fn size_hint(&self) -> Option<usize> {
            self.0.size_hint()
        }
    }
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

    /// Decoding from bytes agrees with decoding from the tree, whatever the body holds.
    #[test]
    fn bytes_decode_as_the_tree_does() {
        use rust_decimal::Decimal;
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Money {
            amount: Decimal,
            name: String,
            tags: Vec<String>,
        }
        let cases = [
            r#"{"amount":"1.50","name":"a","schema":1,"tags":["x"]}"#,
            r#"{"amount":"1.50","name":"a","tags":[]}"#,
            r#"{"amount":"2","name":"a","schema":3,"tags":[]}"#,
            r#"{"amount":"2","name":"a","schema":3,"tags":[],"zz":1}"#,
            r#"{"amount":"2","name":"a","schema":1,"tags":[],"zz":1}"#,
            r#"{"amount":"2","schema":1,"tags":[]}"#,
            r#"{"amount":"2","name":"\u00e9\"","schema":"x","tags":[]}"#,
            r#"{"amount":"1234567890.1234567890123456789012","name":"a","schema":1,"tags":[]}"#,
            r#"{"amount":"12345678901234567890.123456789","name":"a","schema":1,"tags":[]}"#,
            r#"{"amount":2,"name":"a","schema":1,"tags":[]}"#,
            r#"{"amount":"2","name":"a","schema":1,"tags":[]} x"#,
            r#"[1]"#,
        ];
        for body in cases {
            let via_tree = match serde_json::from_str::<Value>(body) {
                Ok(Value::Object(m)) => decode_doc::<Money>(2, m).map_err(|e| e.to_string()),
                _ => Err(String::from("not an object")),
            };
            let via_bytes =
                decode_doc_bytes::<Money>(2, body.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(
                via_tree.is_ok(),
                via_bytes.is_ok(),
                "{body}: {via_tree:?} / {via_bytes:?}"
            );
            match (via_tree, via_bytes) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{body}"),
                (Err(a), Err(b)) => {
                    let newer = |e: &str| e.contains("upgrade tierstate");
                    assert_eq!(newer(&a), newer(&b), "{body}: {a} / {b}");
                    let inexact = |e: &str| e.contains("refused rather than rounded");
                    assert_eq!(inexact(&a), inexact(&b), "{body}: {a} / {b}");
                }
                _ => unreachable!(),
            }
        }
    }
}
