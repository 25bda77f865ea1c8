//! Decimal text read exactly, never rounded.
//!
//! `rust_decimal` parses text with more significant digits than a `Decimal` holds (a 96-bit
//! mantissa: 28 digits always fit, 29 sometimes) by rounding it, in `FromStr` and in its serde
//! impl alike: a token amount with 18 decimals and a large integer part would come back
//! changed. [`parse_decimal`] refuses such text, and [`from_map`] decodes a typed value from
//! JSON and refuses it if any decimal text in it was rounded on the way in, naming the field.
//!
//! Text that fits is parsed as before: `"1.50"` keeps its scale, `"1e3"` is 1000.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Text shorter than this holds at most 28 digits, which a `Decimal` always holds exactly.
const SHORTEST_INEXACT: usize = 29;

/// Parses decimal text exactly (plain or scientific notation).
///
/// # Errors
/// `InvalidInput` on `field` if the text is not a decimal number, or has more significant
/// digits (or a larger magnitude) than a `Decimal` holds: it is refused, never rounded.
pub fn parse_decimal(field: &'static str, text: &str) -> Result<Decimal> {
    let bad = |why: &str| Error::invalid(field, format!("{text:?}: {why}"));
    let parsed = Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_str(text))
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| bad("not a decimal number that a Decimal holds exactly"))?;
    let want = plain(text).ok_or_else(|| bad("not a decimal number"))?;
    if plain(&parsed.to_string()).as_deref() != Some(want.as_str()) {
        return Err(bad(
            "more significant digits than a Decimal holds (28, sometimes 29); refused rather than rounded",
        ));
    }
    Ok(parsed)
}

/// Decodes `T` from a JSON object, like `serde_json::from_value`, and refuses the value if a
/// decimal string in it was rounded into a `Decimal` field of `T` (the error names the path).
///
/// # Errors
/// The serde error; or a custom one naming the path and the text of a rounded decimal.
pub fn from_map<T: DeserializeOwned + Serialize>(
    map: &Map<String, Value>,
) -> std::result::Result<T, serde_json::Error> {
    from_object(map.clone())
}

/// As [`from_map`], taking the object: no copy of it is made.
///
/// # Errors
/// As [`from_map`].
pub fn from_object<T: DeserializeOwned + Serialize>(
    map: Map<String, Value>,
) -> std::result::Result<T, serde_json::Error> {
    let value = Value::Object(map);
    let typed = T::deserialize(&value)?;
    check_round_trip(&value, &typed)?;
    Ok(typed)
}

/// As [`from_map`] for a value already decoded from `original`: refuses it if a decimal
/// string of `original` came back different through `T`.
///
/// # Errors
/// A custom serde error naming the path and the text.
pub fn check_round_trip<T: Serialize>(
    original: &Value,
    typed: &T,
) -> std::result::Result<(), serde_json::Error> {
    let mut suspects = Vec::new();
    find_inexact(original, &mut String::from("$"), &mut suspects);
    if suspects.is_empty() {
        return Ok(());
    }
    let back = serde_json::to_value(typed)?;
    for (path, text) in suspects {
        let Some(Value::String(again)) = lookup(&back, &path) else {
            continue; // not held as text by `T` (dropped, or not a decimal field)
        };
        if *again != text && plain(again) != plain(&text) {
            return Err(serde::de::Error::custom(format!(
                "{path}: decimal text {text:?} has more significant digits than a Decimal holds \
                 (28, sometimes 29); refused rather than rounded to {again}"
            )));
        }
    }
    Ok(())
}

/// Whether `json` holds a run of characters of decimal text (digits, `.`, `e`, `E`, `+`, `-`,
/// `_`) long enough to be rounded into a `Decimal`: if not, no string in it can be, and the
/// check of [`from_map`] has nothing to find.
pub(crate) fn may_round(json: &[u8]) -> bool {
    let mut run = 0;
    for &b in json {
        if b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_') {
            run += 1;
            if run >= SHORTEST_INEXACT {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Collects the strings that rust_decimal would parse with rounding, with their paths.
fn find_inexact(v: &Value, path: &mut String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if s.len() >= SHORTEST_INEXACT => {
            let rounded = Decimal::from_str(s).or_else(|_| Decimal::from_scientific(s));
            if let Ok(d) = rounded
                && plain(&d.to_string()) != plain(s)
            {
                out.push((path.clone(), s.clone()));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                find_inexact(item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                find_inexact(item, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The value at a path built by [`find_inexact`] (keys holding `.` or `[` are not found,
/// which only skips the check for them).
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    let mut rest = path.strip_prefix('$')?;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].parse().ok()?;
            cur = cur.as_array()?.get(i)?;
            rest = &r[end + 1..];
        } else {
            let r = rest.strip_prefix('.')?;
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.as_object()?.get(&r[..end])?;
            rest = &r[end..];
        }
    }
    Some(cur)
}

/// The exact value of decimal text as canonical plain text (`-12.5`, `0`), or `None` if it
/// is not decimal text: two texts are equal numbers exactly when their forms are equal.
fn plain(text: &str) -> Option<String> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // digits × 10^(exp − frac.len()), as a point position within `digits`.
    let digits: String = int.chars().chain(frac.chars()).collect();
    let point = int.len() as i64 + exp;
    if point.unsigned_abs() > 10_000 {
        return None; // far outside anything a Decimal holds
    }
    let (mut ip, mut fp) = if point <= 0 {
        (
            String::new(),
            "0".repeat(point.unsigned_abs() as usize) + &digits,
        )
    } else if point as usize >= digits.len() {
        (
            digits.clone() + &"0".repeat(point as usize - digits.len()),
            String::new(),
        )
    } else {
        (
            digits[..point as usize].to_owned(),
            digits[point as usize..].to_owned(),
        )
    };
    ip = ip.trim_start_matches('0').to_owned();
    fp = fp.trim_end_matches('0').to_owned();
    if ip.is_empty() {
        ip.push('0');
    }
    let zero = ip == "0" && fp.is_empty();
    let mut out = String::new();
    if neg && !zero {
        out.push('-');
    }
    out.push_str(&ip);
    if !fp.is_empty() {
        out.push('.');
        out.push_str(&fp);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn text_at_the_boundary_parses_exactly_or_is_refused() {
        // 28 decimals fit; 29 do not.
        let ok = "0.1234567890123456789012345678";
        assert_eq!(parse_decimal("x", ok).unwrap().to_string(), ok);
        assert!(parse_decimal("x", "0.12345678901234567890123456789").is_err());
        // The largest mantissa fits; one more overflows.
        let max = "79228162514264337593543950335";
        assert_eq!(parse_decimal("x", max).unwrap().to_string(), max);
        assert!(parse_decimal("x", "79228162514264337593543950336").is_err());
        // 18 decimals with a large integer part: 30 significant digits.
        let e = parse_decimal("amount", "123456789012.123456789012345678")
            .unwrap_err()
            .to_string();
        assert!(e.contains("amount") && e.contains("refused"), "{e}");
        // Scale is kept; trailing zeros beyond what fits are not a rounding.
        assert_eq!(parse_decimal("x", "1.50").unwrap().to_string(), "1.50");
        assert_eq!(parse_decimal("x", "-1e3").unwrap(), Decimal::from(-1000));
        assert_eq!(parse_decimal("x", "2.5E-2").unwrap().to_string(), "0.025");
        for bad in ["", "abc", "1.2.3", "--1", "1e", "NaN", "inf"] {
            assert!(parse_decimal("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_forms_compare_numbers_exactly() {
        assert_eq!(plain("001.2300").as_deref(), Some("1.23"));
        assert_eq!(plain("-0.0").as_deref(), Some("0"));
        assert_eq!(plain("1.5e2").as_deref(), Some("150"));
        assert_eq!(plain("15e-3").as_deref(), Some("0.015"));
        assert_eq!(plain("+.5").as_deref(), Some("0.5"));
        assert_eq!(plain("."), None);
    }

    /// Random decimal text (plain and scientific, up to 40 digits): what parses equals the
    /// text exactly; what is refused does not fit; rust_decimal's own parse agrees whenever
    /// the text fits. Seed printed; `TIERSTATE_PROP_SEED` replays.
    #[test]
    fn random_decimal_text_parses_exactly_or_is_refused() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = std::env::var("TIERSTATE_PROP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("decimal text: seed {seed}");
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..20_000 {
            let digits = |r: &mut rand::rngs::StdRng, n: usize| -> String {
                (0..n)
                    .map(|_| char::from(b'0' + r.random_range(0..10u8)))
                    .collect()
            };
            let (ni, nf) = (r.random_range(0..20), r.random_range(0..22));
            let int = digits(&mut r, ni);
            let frac = digits(&mut r, nf);
            let mut text = String::new();
            if r.random_bool(0.3) {
                text.push('-');
            }
            text.push_str(if int.is_empty() { "0" } else { &int });
            if !frac.is_empty() {
                text.push('.');
                text.push_str(&frac);
            }
            if r.random_bool(0.2) {
                text.push_str(&format!("e{}", r.random_range(-10..10)));
            }
            let want = plain(&text).unwrap();
            match parse_decimal("x", &text) {
                Ok(d) => assert_eq!(plain(&d.to_string()).unwrap(), want, "seed {seed}: {text}"),
                Err(_) => {
                    // Refused: rust_decimal could only hold it rounded (or not at all).
                    let rounded =
                        Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text));
                    if let Ok(d) = rounded {
                        assert_ne!(
                            plain(&d.to_string()).unwrap(),
                            want,
                            "seed {seed}: {text} fits"
                        );
                    }
                }
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Holding {
        amount: Decimal,
        id: String,
        more: Vec<Decimal>,
    }

    #[test]
    fn a_rounded_decimal_field_is_refused_by_path_and_text_fields_are_not() {
        let long = "123456789012.123456789012345678";
        let m = serde_json::json!({"amount": "1.5", "id": long, "more": ["2", long]});
        let e = from_map::<Holding>(m.as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("$.more[1]") && e.contains(long), "{e}");
        let m = serde_json::json!({"amount": long, "id": "x", "more": []});
        let e = from_map::<Holding>(m.as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("$.amount"), "{e}");
        // The same text in a String field is not a decimal: it loads unchanged.
        let m = serde_json::json!({"amount": "0.000000000000000001", "id": long, "more": []});
        let h = from_map::<Holding>(m.as_object().unwrap()).unwrap();
        assert_eq!(h.id, long);
        assert_eq!(h.amount.to_string(), "0.000000000000000001");
    }
}
