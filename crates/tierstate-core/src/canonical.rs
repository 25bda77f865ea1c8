//! Canonical JSON (sorted keys, compact) and the SHA-256 checksum over it.
//!
//! The canonical bytes are what every backend stores and what the checksum covers, so a record
//! can be verified by hashing exactly the bytes read back. Keys are sorted by their UTF-8 bytes
//! explicitly, so the result does not depend on serde_json's `preserve_order` feature.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Serializes `state` canonically: object keys sorted by UTF-8 bytes, no whitespace.
pub fn canonical_json(state: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_object(&mut out, state);
    out
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Object(map) => write_object(out, map),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        // Scalars: serde_json's own compact encoding (escaping, number formatting).
        // Writing into a Vec cannot fail.
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing JSON to a Vec"),
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("writing JSON to a Vec");
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
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
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            write!(HexSink(&mut s), "{b:02x}").expect("writing to a String");
        }
        s
    }
}

struct HexSink<'a>(&'a mut String);
impl Write for HexSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .push_str(std::str::from_utf8(buf).map_err(std::io::Error::other)?);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
            String::from_utf8(canonical_json(&a)).unwrap(),
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
            Checksum::of(&canonical_json(&m1)),
            Checksum::of(&canonical_json(&m2))
        );
        assert_ne!(Checksum::of(b"{}"), Checksum::of(&canonical_json(&m1)));
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
    }
}
