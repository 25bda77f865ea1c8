//! Times: UTC at microsecond precision, parsed from text only with an explicit offset, and
//! encoded as document keys that sort in time order. Times are never compared as text.

use chrono::{DateTime, Utc};

use crate::error::{AccountingError, Result};

/// Parses an RFC 3339 time with any offset (`2026-11-21T10:00:00+02:00`, `…Z`) and normalizes
/// it to UTC at microsecond precision. Text without an offset is refused: its instant is
/// unknown.
///
/// # Errors
/// `InvalidTime` naming `field` for anything else.
pub fn parse_utc(field: &'static str, text: &str) -> Result<DateTime<Utc>> {
    let parsed =
        DateTime::parse_from_rfc3339(text.trim()).map_err(|e| AccountingError::InvalidTime {
            field,
            value: text.to_owned(),
            reason: format!("expected RFC 3339 with an offset, e.g. 2026-11-21T10:00:00Z ({e})"),
        })?;
    Ok(truncate_to_micros(parsed.with_timezone(&Utc)))
}

/// `t` truncated to microseconds (core's one time helper).
pub use tierstate_core::truncate_to_micros;

/// Digits of a key: `i64::MAX` has 19.
const KEY_DIGITS: usize = 19;

/// The document key of a time: zero-padded microseconds since the epoch, so byte order is
/// time order.
///
/// # Errors
/// `InvalidTime` for a time before 1970 (keys hold non-negative microseconds).
pub(crate) fn key_of(field: &'static str, t: DateTime<Utc>) -> Result<String> {
    let us = t.timestamp_micros();
    if us < 0 {
        return Err(AccountingError::InvalidTime {
            field,
            value: t.to_rfc3339(),
            reason: "times before 1970-01-01T00:00:00Z are not stored".into(),
        });
    }
    Ok(format!("{us:0KEY_DIGITS$}"))
}

/// The key of microsecond `us`, clamped into the key range (for exclusive bounds one
/// microsecond outside a window).
pub(crate) fn key_of_us(us: i64) -> String {
    format!("{:0KEY_DIGITS$}", us.max(0))
}

/// The time a key encodes.
///
/// # Errors
/// `InvalidInput` if the key is not one [`key_of`] wrote.
pub(crate) fn time_of_key(key: &str) -> Result<DateTime<Utc>> {
    let bad = || AccountingError::invalid("snapshot key", format!("{key:?} is not a time key"));
    if key.len() != KEY_DIGITS || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let us: i64 = key.parse().map_err(|_| bad())?;
    DateTime::from_timestamp_micros(us).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_normalize_to_the_same_instant() {
        let a = parse_utc("t", "2026-11-21T10:00:00+02:00").unwrap();
        let b = parse_utc("t", "2026-11-21T03:00:00-05:00").unwrap();
        let c = parse_utc("t", "2026-11-21T08:00:00Z").unwrap();
        assert_eq!(a, c);
        assert_eq!(b, c);
        // As text, "2026-11-21T10:00:00+02:00" sorts after "…08:00:00Z"; as times they are one.
        for bad in ["2026-11-21T08:00:00", "2026-11-21", "yesterday", ""] {
            assert!(matches!(
                parse_utc("t", bad),
                Err(AccountingError::InvalidTime { .. })
            ));
        }
    }

    #[test]
    fn keys_sort_in_time_order_and_round_trip() {
        let ts = [
            "1970-01-01T00:00:00Z",
            "1999-12-31T23:59:59.999999Z",
            "2026-11-21T08:00:00.000001Z",
            "2262-04-11T23:47:16.854775Z",
        ]
        .map(|s| parse_utc("t", s).unwrap());
        let keys: Vec<String> = ts.iter().map(|t| key_of("t", *t).unwrap()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (t, k) in ts.iter().zip(&keys) {
            assert_eq!(time_of_key(k).unwrap(), *t);
        }
        let before = parse_utc("t", "1969-12-31T23:59:59Z").unwrap();
        assert!(key_of("t", before).is_err());
        assert!(time_of_key("12").is_err());
        assert!(time_of_key("000000000000000000x").is_err());
    }
}
