//! The position record's own folds: trades move a perp's amount and average entry price; a mark
//! sets its value and unrealized PnL. Bad input changes nothing.

use rust_decimal::Decimal;
use tierstate_core::Side;
use tierstate_positions::{PositionError, PositionRecord, PositionType};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The average entry price after each trade, written out independently of the code.
#[test]
fn average_entry_price_follows_adds_reductions_and_flips() {
    let mut p = PositionRecord::perp("ETH-USD", "sim", "ETH-USD").unwrap();
    for (side, size, price, amount, entry) in [
        (Side::Buy, "1", "100", "1", Some("100")), // opened: the fill's price
        (Side::Buy, "1", "110", "2", Some("105")), // added: weighted
        (Side::Sell, "1", "120", "1", Some("105")), // reduced: unchanged
        (Side::Sell, "3", "90", "-2", Some("90")), // flipped through zero: the fill's price
        (Side::Sell, "2", "80", "-4", Some("85")), // added short: weighted
        (Side::Buy, "4", "70", "0", None),         // flat: none
    ] {
        p.apply_trade(side, d(size), d(price)).unwrap();
        assert_eq!(p.amount, d(amount), "{side:?} {size} @ {price}");
        assert_eq!(p.entry_price, entry.map(d), "{side:?} {size} @ {price}");
    }
}

#[test]
fn a_mark_sets_value_and_unrealized_pnl() {
    let mut p = PositionRecord::perp("ETH-USD", "sim", "ETH-USD").unwrap();
    p.apply_trade(Side::Sell, d("0.25"), d("2563.47")).unwrap();
    p.mark(d("2560.48")).unwrap();
    assert_eq!(p.value_usd, d("-640.12"));
    assert_eq!(p.mark_price, Some(d("2560.48")));
    // Short: the price fell, so it gained.
    assert_eq!(p.unrealized_pnl, Some(d("0.7475")));
    // Stored and read back exactly, market fields included.
    let back: PositionRecord = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn bad_trades_and_fields_change_nothing() {
    let mut token = PositionRecord::new(
        "eth",
        "ethereum",
        PositionType::Token,
        "ETH",
        d("1"),
        d("2500"),
    )
    .unwrap();
    let before = token.clone();
    assert!(matches!(
        token.apply_trade(Side::Buy, d("1"), d("100")),
        Err(PositionError::InvalidInput { .. })
    ));
    assert_eq!(token, before, "a token is not traded by apply_trade");
    let mut p = PositionRecord::perp("ETH-USD", "sim", "ETH-USD").unwrap();
    for (size, price) in [("0", "1"), ("-1", "1"), ("1", "0")] {
        assert!(p.apply_trade(Side::Buy, d(size), d(price)).is_err());
    }
    assert!(p.mark(d("0")).is_err());
    assert_eq!(p.amount, Decimal::ZERO);
    // A stored record with a bad market field is refused naming it.
    let mut v = serde_json::to_value(&before).unwrap();
    v["leverage"] = serde_json::json!("0");
    let e = serde_json::from_value::<PositionRecord>(v).unwrap_err();
    assert!(e.to_string().contains("leverage"), "{e}");
}
