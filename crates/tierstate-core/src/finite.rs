//! Refusing NaN and ±Infinity in typed states.
//!
//! serde_json turns a non-finite `f64` into `null` without an error, so a typed save would
//! silently store something else than the caller's value. [`check`] walks the value through
//! serde (a serializer that only looks) and names the path of the first non-finite number. It
//! recurses at most [`MAX_STATE_DEPTH`] levels, like the canonical writer.
//!
//! Written here rather than taken from a crate: it is one small visitor, and
//! `serde_path_to_error` would still need it (it only adds paths to errors a serializer raises).

use std::fmt;

use serde::Serialize;
use serde::ser;

use crate::{Error, MAX_STATE_DEPTH, Result};

/// Refuses `value` if any number in it is NaN or infinite, or if it nests too deeply.
///
/// # Errors
/// `InvalidInput` on field `state`, naming the path (`$.positions[3].price`) and the value.
pub(crate) fn check<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    value
        .serialize(Visitor { depth: 0 })
        .map_err(|e| Error::invalid("state", e.to_string()))
}

/// Where the walk stopped and why; the path is built on the way back out.
#[derive(Debug)]
struct Refusal {
    reason: String,
    path: Vec<String>,
}

impl Refusal {
    fn within(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at $", self.reason)?;
        for seg in self.path.iter().rev() {
            f.write_str(seg)?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

impl ser::Error for Refusal {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Refusal {
            reason: msg.to_string(),
            path: Vec::new(),
        }
    }
}

fn field(name: &str) -> String {
    format!(".{name}")
}

fn index(i: usize) -> String {
    format!("[{i}]")
}

#[derive(Clone, Copy)]
struct Visitor {
    depth: usize,
}

impl Visitor {
    fn enter(self) -> Result<Walk, Refusal> {
        if self.depth + 1 > MAX_STATE_DEPTH {
            return Err(ser::Error::custom(format!(
                "nesting deeper than {MAX_STATE_DEPTH} levels"
            )));
        }
        Ok(Walk {
            inner: Visitor {
                depth: self.depth + 1,
            },
            next: 0,
            key: None,
        })
    }

    fn float(self, v: f64) -> Result<(), Refusal> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(ser::Error::custom(format!(
                "non-finite number {v} (JSON cannot hold it)"
            )))
        }
    }
}

/// A container being walked: counts elements and remembers the current map key.
struct Walk {
    inner: Visitor,
    next: usize,
    key: Option<String>,
}

impl Walk {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refusal> {
        let i = self.next;
        self.next += 1;
        value.serialize(self.inner).map_err(|e| e.within(index(i)))
    }

    fn named<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Refusal> {
        value
            .serialize(self.inner)
            .map_err(|e| e.within(field(name)))
    }
}

/// Renders a map key for the path (strings as they are, anything else through JSON).
fn key_text<T: Serialize + ?Sized>(key: &T) -> String {
    match serde_json::to_value(key) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

impl ser::Serializer for Visitor {
    type Ok = ();
    type Error = Refusal;
    type SerializeSeq = Walk;
    type SerializeTuple = Walk;
    type SerializeTupleStruct = Walk;
    type SerializeTupleVariant = Walk;
    type SerializeMap = Walk;
    type SerializeStruct = Walk;
    type SerializeStructVariant = Walk;

    fn serialize_bool(self, _: bool) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_i128(self, _: i128) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_u128(self, _: u128) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Refusal> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Refusal> {
        self.float(v)
    }
    fn serialize_char(self, _: char) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Refusal> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Refusal> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Refusal> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Refusal> {
        self.enter()?.named(variant, value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Walk, Refusal> {
        self.enter()
    }
    fn serialize_tuple(self, _: usize) -> Result<Walk, Refusal> {
        self.enter()
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Walk, Refusal> {
        self.enter()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Walk, Refusal> {
        let mut w = self.enter()?;
        w.key = Some(variant.to_owned());
        Ok(w)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Walk, Refusal> {
        self.enter()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Walk, Refusal> {
        self.enter()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Walk, Refusal> {
        let mut w = self.enter()?;
        w.key = Some(variant.to_owned());
        Ok(w)
    }
}

/// Sequences, tuples and tuple structs: elements by index.
macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Walk {
            type Ok = ();
            type Error = Refusal;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refusal> {
                self.element(value)
            }
            fn end(self) -> Result<(), Refusal> {
                Ok(())
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl ser::SerializeTupleVariant for Walk {
    type Ok = ();
    type Error = Refusal;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refusal> {
        let variant = self.key.clone().unwrap_or_default();
        self.element(value).map_err(|e| e.within(field(&variant)))
    }
    fn end(self) -> Result<(), Refusal> {
        Ok(())
    }
}

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = Refusal;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refusal> {
        self.key = Some(key_text(key));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refusal> {
        let key = self.key.take().unwrap_or_default();
        self.named(&key, value)
    }
    fn end(self) -> Result<(), Refusal> {
        Ok(())
    }
}

impl ser::SerializeStruct for Walk {
    type Ok = ();
    type Error = Refusal;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Refusal> {
        self.named(name, value)
    }
    fn end(self) -> Result<(), Refusal> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Walk {
    type Ok = ();
    type Error = Refusal;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Refusal> {
        let variant = self.key.clone().unwrap_or_default();
        self.named(name, value)
            .map_err(|e| e.within(field(&variant)))
    }
    fn end(self) -> Result<(), Refusal> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Position {
        asset: String,
        price: f64,
    }

    #[derive(Serialize)]
    enum Signal {
        Target { weight: f32 },
        Hold(f64),
    }

    #[derive(Serialize)]
    struct Book {
        positions: Vec<Position>,
        marks: BTreeMap<String, f64>,
        signal: Option<Signal>,
    }

    fn book() -> Book {
        Book {
            positions: vec![
                Position {
                    asset: "BTC".into(),
                    price: 1.5,
                },
                Position {
                    asset: "ETH".into(),
                    price: 2.0,
                },
            ],
            marks: BTreeMap::from([("BTC".into(), 3.0)]),
            signal: None,
        }
    }

    fn reason(e: Error) -> String {
        match e {
            Error::InvalidInput {
                field: "state",
                reason,
            } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finite_values_pass() {
        check(&book()).unwrap();
        check(&f64::MAX).unwrap();
    }

    #[test]
    fn non_finite_values_are_named_by_path() {
        let mut b = book();
        b.positions[1].price = f64::NAN;
        assert_eq!(
            reason(check(&b).unwrap_err()),
            "non-finite number NaN (JSON cannot hold it) at $.positions[1].price"
        );
        let mut b = book();
        b.marks.insert("ETH".into(), f64::INFINITY);
        assert!(reason(check(&b).unwrap_err()).ends_with("at $.marks.ETH"));
        let mut b = book();
        b.signal = Some(Signal::Target {
            weight: f32::NEG_INFINITY,
        });
        assert!(reason(check(&b).unwrap_err()).ends_with("at $.signal.Target.weight"));
        let mut b = book();
        b.signal = Some(Signal::Hold(f64::NAN));
        assert!(reason(check(&b).unwrap_err()).ends_with("at $.signal.Hold"));
    }

    #[test]
    fn deep_typed_values_are_refused_without_recursing_further() {
        let mut v = serde_json::json!(1);
        for _ in 0..100_000 {
            v = serde_json::Value::Array(vec![v]);
        }
        assert!(reason(check(&v).unwrap_err()).starts_with("nesting deeper than"));
        let mut m = serde_json::Map::new();
        m.insert("v".into(), v);
        crate::canonical::dismantle(m);
    }
}
