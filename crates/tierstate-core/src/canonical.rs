//! Canonical JSON (sorted keys, compact) and the SHA-256 checksum over it.
//!
//! The canonical bytes are what every backend stores and what the checksum covers, so a record
//! can be verified by hashing exactly the bytes read back. Keys are sorted by their UTF-8 bytes
//! explicitly, so the result does not depend on serde_json's `preserve_order` feature.
//!
//! The writer recurses at most [`MAX_STATE_DEPTH`] levels: deeper input is refused before it
//! could overflow a stack, and everything it accepts the read path (serde_json, whose own limit
//! is 128) parses back.

use std::fmt;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{Error, MAX_STATE_DEPTH, Result};

/// Serializes `state` canonically: object keys sorted by UTF-8 bytes, no whitespace.
///
/// # Errors
/// `InvalidInput` if arrays and objects nest more than [`MAX_STATE_DEPTH`] levels (the state
/// object itself is level 1).
pub fn canonical_json(state: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, state, 1)?;
    Ok(out)
}

/// Drops a JSON tree without recursing (serde_json's own `Drop` recurses once per level, so a
/// refused, very deep state could otherwise overflow the stack of whoever drops it).
pub(crate) fn dismantle(map: Map<String, Value>) {
    let mut stack: Vec<Value> = map.into_iter().map(|(_, v)| v).collect();
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn too_deep() -> Error {
    Error::invalid(
        "state",
        format!("nests arrays and objects more than {MAX_STATE_DEPTH} levels deep"),
    )
}

fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<()> {
    match value {
        Value::Object(map) => write_object(out, map, depth + 1)?,
        Value::Array(items) => {
            if depth + 1 > MAX_STATE_DEPTH {
                return Err(too_deep());
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, depth + 1)?;
            }
            out.push(b']');
        }
        // Scalars: serde_json's own compact encoding (escaping, shortest round-trip floats).
        // Writing into a Vec cannot fail.
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing JSON to a Vec"),
    }
    Ok(())
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>, depth: usize) -> Result<()> {
    if depth > MAX_STATE_DEPTH {
        return Err(too_deep());
    }
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("writing JSON to a Vec");
        out.push(b':');
        write_value(out, value, depth)?;
    }
    out.push(b'}');
    Ok(())
}

/// A SHA-256 digest, shown and stored as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Parses 64 hex digits; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        // Exactly 64 digits: const-hex would also take a `0x` prefix.
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        const_hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Self(out))
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        const_hex::encode(self.0)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keys_sorted_at_every_depth_and_compact() {
        let a = obj(json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": "é\n"}}));
        assert_eq!(
            String::from_utf8(canonical_json(&a).unwrap()).unwrap(),
            r#"{"a":{"c":"é\n","z":[1,{"x":3,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn same_content_same_checksum_regardless_of_insertion_order() {
        let mut m1 = Map::new();
        m1.insert("x".into(), json!(1));
        m1.insert("y".into(), json!(2.5));
        let mut m2 = Map::new();
        m2.insert("y".into(), json!(2.5));
        m2.insert("x".into(), json!(1));
        assert_eq!(
            Checksum::of(&canonical_json(&m1).unwrap()),
            Checksum::of(&canonical_json(&m2).unwrap())
        );
        assert_ne!(
            Checksum::of(b"{}"),
            Checksum::of(&canonical_json(&m1).unwrap())
        );
    }

    #[test]
    fn sha256_known_vector_and_hex_round_trip() {
        let c = Checksum::of(b"abc");
        assert_eq!(
            c.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Checksum::from_hex(&c.to_hex()), Some(c));
        assert_eq!(Checksum::from_hex("zz"), None);
        assert_eq!(Checksum::from_hex(&"g".repeat(64)), None);
        assert_eq!(Checksum::from_hex(&format!("0x{}", c.to_hex())), None);
        assert_eq!(Checksum::from_hex(&format!("0x{}", &c.to_hex()[2..])), None);
        assert_eq!(
            Checksum::from_hex(&c.to_hex().to_uppercase()),
            Some(c),
            "as before"
        );
    }

    /// A state nested `levels` deep (the state object is level 1), built without recursion.
    fn nested(levels: usize) -> Map<String, Value> {
        let mut v = json!(1);
        for i in 1..levels {
            v = if i % 2 == 0 {
                let mut m = Map::new();
                m.insert("k".into(), v);
                Value::Object(m)
            } else {
                Value::Array(vec![v])
            };
        }
        let mut m = Map::new();
        m.insert("root".into(), v);
        m
    }

    #[test]
    fn depth_limit_is_enforced_and_what_it_accepts_parses_back() {
        let ok = canonical_json(&nested(MAX_STATE_DEPTH)).unwrap();
        let back: Value = serde_json::from_slice(&ok).expect("the read path parses it");
        assert_eq!(canonical_json(back.as_object().unwrap()).unwrap(), ok);
        for deeper in [MAX_STATE_DEPTH + 1, 3_000, 100_000] {
            let state = nested(deeper);
            let err = canonical_json(&state).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { field: "state", .. }),
                "{err}"
            );
            dismantle(state);
        }
    }

    #[test]
    fn floats_round_trip_bit_exactly() {
        // Shortest round-trip output and a parser built with `float_roundtrip`.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut checked = 0;
        while checked < 20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            checked += 1;
            let mut m = Map::new();
            m.insert("f".into(), json!(f));
            let bytes = canonical_json(&m).unwrap();
            let back: Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
            let g = back["f"].as_f64().unwrap();
            assert_eq!(g.to_bits(), f.to_bits(), "{f:e} came back as {g:e}");
            assert_eq!(canonical_json(&back).unwrap(), bytes);
        }
    }
}
