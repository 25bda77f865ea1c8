//! The order status machine and fills, as pure logic.

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use tierstate_accounting::{
    AccountingError, ClobFill, ClobOrder, FillOutcome, OrderStatus, OrderType, Side,
};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn order() -> ClobOrder {
    ClobOrder::new(
        "o1",
        "dep",
        "ETH-USD",
        "ETH",
        Side::Buy,
        OrderType::Gtc,
        d("100"),
        d("10"),
        t(0),
    )
    .unwrap()
}

fn fill(id: &str, size: &str) -> ClobFill {
    ClobFill::new(id, "o1", d("99.5"), d(size), d("0.01"), t(5)).unwrap()
}

/// Puts an order in `status` through allowed steps.
fn in_status(status: OrderStatus) -> ClobOrder {
    use OrderStatus::*;
    let mut o = order();
    let path: &[OrderStatus] = match status {
        Pending => &[],
        Submitted => &[Submitted],
        Live | PartiallyFilled | Filled => &[Submitted, Live],
        Cancelled | Expired | Failed => &[status],
    };
    for s in path {
        o.set_status(*s, t(1), None).unwrap();
    }
    match status {
        PartiallyFilled => assert_eq!(o.apply_fill(fill("p", "4")).unwrap(), FillOutcome::Applied),
        Filled => assert_eq!(o.apply_fill(fill("p", "10")).unwrap(), FillOutcome::Applied),
        _ => {}
    }
    assert_eq!(o.status, status);
    o
}

/// Every (from, to) pair: exactly the documented table is allowed through `set_status`, and a
/// refused change leaves the order untouched.
#[test]
fn the_transition_table_is_exactly_the_documented_one() {
    use OrderStatus::*;
    // The table of the module docs, written out independently of the code.
    let allowed = |from: OrderStatus, to: OrderStatus| {
        matches!(
            (from, to),
            (Pending, Submitted)
                | (Submitted, Live)
                | (
                    Pending | Submitted | Live | PartiallyFilled,
                    Cancelled | Expired | Failed
                )
        )
    };
    let mut checked = 0;
    for &from in OrderStatus::ALL {
        for &to in OrderStatus::ALL {
            let mut o = in_status(from);
            let before = o.clone();
            let r = o.set_status(to, t(9), None);
            if allowed(from, to) {
                r.unwrap_or_else(|e| panic!("{from} -> {to} refused: {e}"));
                assert_eq!(o.status, to);
            } else {
                match r {
                    Err(AccountingError::InvalidTransition {
                        order,
                        from: f,
                        to: tt,
                    }) => {
                        assert_eq!((order.as_str(), f, tt), ("o1", from, to));
                    }
                    other => panic!("{from} -> {to}: {other:?}"),
                }
                assert_eq!(o, before, "{from} -> {to} changed the order");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 64);
    for s in [Filled, Cancelled, Expired, Failed] {
        assert!(s.is_terminal() && !s.is_open());
    }
}

#[test]
fn fills_drive_partial_and_full_status_and_derive_size_and_price() {
    let mut o = in_status(OrderStatus::Live);
    assert_eq!(o.filled_size(), Decimal::ZERO);
    assert_eq!(
        o.average_fill_price(),
        Decimal::ZERO,
        "0 stays 0, never absent"
    );
    o.apply_fill(ClobFill::new("a", "o1", d("100"), d("4"), d("0"), t(2)).unwrap())
        .unwrap();
    assert_eq!(o.status, OrderStatus::PartiallyFilled);
    o.apply_fill(ClobFill::new("b", "o1", d("97"), d("2"), d("0"), t(3)).unwrap())
        .unwrap();
    assert_eq!(o.filled_size(), d("6"));
    assert_eq!(o.average_fill_price(), d("99"));
    // Same fill again: nothing changes.
    let before = o.clone();
    let again = ClobFill::new("b", "o1", d("97"), d("2"), d("0"), t(3)).unwrap();
    assert_eq!(o.apply_fill(again).unwrap(), FillOutcome::Duplicate);
    assert_eq!(o, before);
    // Same id, other content: typed error.
    let forged = ClobFill::new("b", "o1", d("97"), d("3"), d("0"), t(3)).unwrap();
    assert!(matches!(
        o.apply_fill(forged),
        Err(AccountingError::FillConflict { .. })
    ));
    // Past the size: typed error, nothing changes.
    match o.apply_fill(fill("c", "4.0001")) {
        Err(AccountingError::Overfill { remaining, .. }) => assert_eq!(remaining, d("4")),
        other => panic!("{other:?}"),
    }
    // Another order's fill.
    let other = ClobFill::new("z", "o2", d("1"), d("1"), d("0"), t(3)).unwrap();
    assert!(matches!(
        o.apply_fill(other),
        Err(AccountingError::FillForOtherOrder { .. })
    ));
    assert_eq!(o, before);
    // Reaching the size fills it; then nothing more fills.
    o.apply_fill(fill("c", "4")).unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert!(matches!(
        o.apply_fill(fill("d", "1")),
        Err(AccountingError::InvalidTransition {
            from: OrderStatus::Filled,
            ..
        })
    ));
    // A pending order has not been sent: it cannot fill.
    let mut p = order();
    assert!(matches!(
        p.apply_fill(fill("a", "1")),
        Err(AccountingError::InvalidTransition {
            from: OrderStatus::Pending,
            ..
        })
    ));
}

#[test]
fn bad_input_is_refused() {
    let mk = |price: &str, size: &str| {
        ClobOrder::new(
            "o",
            "dep",
            "m",
            "t",
            Side::Sell,
            OrderType::Ioc,
            d(price),
            d(size),
            t(0),
        )
    };
    for (p, s) in [("-1", "1"), ("0", "1"), ("1", "0"), ("1", "-2")] {
        assert!(
            matches!(mk(p, s), Err(AccountingError::InvalidInput { .. })),
            "{p} {s}"
        );
    }
    let long = "x".repeat(257);
    for id in ["", long.as_str(), "a\nb"] {
        let r = ClobOrder::new(
            id,
            "dep",
            "m",
            "t",
            Side::Buy,
            OrderType::Fok,
            d("1"),
            d("1"),
            t(0),
        );
        assert!(
            matches!(r, Err(AccountingError::InvalidInput { .. })),
            "{id:?}"
        );
    }
    assert!(ClobFill::new("f", "o", d("1"), d("0"), d("0"), t(0)).is_err());
    assert!(ClobFill::new("f", "o", d("-1"), d("1"), d("0"), t(0)).is_err());
    // The one Side of every domain: a bad spelling is refused naming the field.
    assert!(matches!(
        "BUY".parse::<Side>().unwrap_err(),
        tierstate_core::Error::InvalidInput { field: "side", .. }
    ));
    for (s, field) in [("gtd", "order type"), ("open", "order status")] {
        let e = match field {
            "order type" => s.parse::<OrderType>().unwrap_err(),
            _ => s.parse::<OrderStatus>().unwrap_err(),
        };
        assert!(
            matches!(e, AccountingError::UnknownValue { field: f, .. } if f == field),
            "{e}"
        );
    }
    for &st in OrderStatus::ALL {
        assert_eq!(st.as_str().parse::<OrderStatus>().unwrap(), st);
    }
}
