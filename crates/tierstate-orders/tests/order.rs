//! The one order model's status machine and fills, as pure logic.

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use tierstate_orders::{
    ClobOrder, Fill, FillOutcome, Order, OrderSpec, OrderStatus, OrdersError, Side, TimeInForce,
};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn order() -> Order {
    Order::new(
        "o1",
        OrderSpec::limit("ETH-USD", Side::Buy, d("100"), d("10")).unwrap(),
    )
    .unwrap()
}

fn fill(id: &str, size: &str) -> Fill {
    Fill::new(id, d("99.5"), d(size))
        .unwrap()
        .with_fee(d("0.01"))
        .at(t(5))
}

/// Puts an order in `status` through allowed steps.
fn in_status(status: OrderStatus) -> Order {
    use OrderStatus::*;
    let mut o = order();
    let path: &[OrderStatus] = match status {
        Pending => &[],
        Submitted => &[Submitted],
        Live | PartiallyFilled | Filled => &[Submitted, Live],
        CancelRequested => &[Submitted, Live, CancelRequested],
        Cancelled | Expired | Failed => &[status],
    };
    for s in path {
        o.request(*s, None).unwrap();
    }
    match status {
        PartiallyFilled => assert_eq!(o.apply_fill(fill("p", "4")).unwrap(), FillOutcome::Applied),
        Filled => assert_eq!(o.apply_fill(fill("p", "10")).unwrap(), FillOutcome::Applied),
        _ => {}
    }
    assert_eq!(o.status, status);
    o
}

/// Every (from, to) pair: exactly the documented table is allowed through `request`, and a
/// refused change leaves the order untouched.
#[test]
fn the_transition_table_is_exactly_the_documented_one() {
    use OrderStatus::*;
    // The table of the module docs, written out independently of the code.
    let allowed = |from: OrderStatus, to: OrderStatus| {
        matches!(
            (from, to),
            (Pending, Submitted)
                | (Pending | Submitted, Live)
                | (
                    Pending | Submitted | Live | PartiallyFilled,
                    CancelRequested
                )
                | (
                    Pending | Submitted | Live | PartiallyFilled | CancelRequested,
                    Cancelled | Expired | Failed
                )
        )
    };
    let mut checked = 0;
    for from in OrderStatus::ALL {
        for to in OrderStatus::ALL {
            let mut o = in_status(from);
            let before = o.clone();
            let r = o.request(to, None);
            if allowed(from, to) {
                r.unwrap_or_else(|e| panic!("{from} -> {to} refused: {e}"));
                assert_eq!(o.status, to);
            } else {
                match r {
                    Err(OrdersError::InvalidTransition {
                        order,
                        from: f,
                        to: tt,
                    }) => {
                        assert_eq!((order.as_str(), f, tt), ("o1", from.as_str(), to.as_str()));
                    }
                    other => panic!("{from} -> {to}: {other:?}"),
                }
                assert_eq!(o, before, "{from} -> {to} changed the order");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 81);
    for s in [Filled, Cancelled, Expired, Failed] {
        assert!(s.is_terminal() && !s.is_open());
    }
}

#[test]
fn fills_drive_partial_and_full_status_and_derive_size_and_price() {
    let mut o = in_status(OrderStatus::Live);
    assert_eq!(o.filled(), Decimal::ZERO);
    assert_eq!(
        o.average_fill_price(),
        Decimal::ZERO,
        "0 stays 0, never absent"
    );
    o.apply_fill(Fill::new("a", d("100"), d("4")).unwrap())
        .unwrap();
    assert_eq!(o.status, OrderStatus::PartiallyFilled);
    o.apply_fill(Fill::new("b", d("97"), d("2")).unwrap())
        .unwrap();
    assert_eq!(o.filled(), d("6"));
    assert_eq!(o.average_fill_price(), d("99"));
    // Same fill again: nothing changes.
    let before = o.clone();
    let again = Fill::new("b", d("97"), d("2")).unwrap();
    assert_eq!(o.apply_fill(again).unwrap(), FillOutcome::Duplicate);
    assert_eq!(o, before);
    // Same id, other content: typed error.
    let forged = Fill::new("b", d("97"), d("3")).unwrap();
    assert!(matches!(
        o.apply_fill(forged),
        Err(OrdersError::FillConflict { .. })
    ));
    // Past the size: typed error, nothing changes.
    match o.apply_fill(fill("c", "4.0001")) {
        Err(OrdersError::Overfill { remaining, .. }) => assert_eq!(remaining, d("4")),
        other => panic!("{other:?}"),
    }
    assert_eq!(o, before);
    // A fill on a cancel-requested order keeps it so until it completes.
    let mut c = o.clone();
    c.request(OrderStatus::CancelRequested, None).unwrap();
    c.apply_fill(fill("c1", "1")).unwrap();
    assert_eq!(c.status, OrderStatus::CancelRequested);
    c.apply_fill(fill("c2", "3")).unwrap();
    assert_eq!(c.status, OrderStatus::Filled);
    // Reaching the size fills it; then nothing more fills.
    o.apply_fill(fill("c", "4")).unwrap();
    assert_eq!(o.status, OrderStatus::Filled);
    assert!(matches!(
        o.apply_fill(fill("d", "1")),
        Err(OrdersError::InvalidTransition { from: "filled", .. })
    ));
    // A pending order has not been sent: it cannot fill.
    let mut p = order();
    assert!(matches!(
        p.apply_fill(fill("a", "1")),
        Err(OrdersError::InvalidTransition {
            from: "pending",
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
            TimeInForce::Ioc,
            d(price),
            d(size),
            t(0),
        )
    };
    for (p, s) in [("-1", "1"), ("0", "1"), ("1", "0"), ("1", "-2")] {
        assert!(
            matches!(mk(p, s), Err(OrdersError::InvalidInput { .. })),
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
            TimeInForce::Fok,
            d("1"),
            d("1"),
            t(0),
        );
        assert!(matches!(r, Err(OrdersError::InvalidInput { .. })), "{id:?}");
    }
    assert!(Fill::new("f", d("1"), d("0")).is_err());
    assert!(Fill::new("f", d("-1"), d("1")).is_err());
    // The one Side of every domain: a bad spelling is refused naming the field.
    assert!(matches!(
        "BUY".parse::<Side>().unwrap_err(),
        tierstate_core::Error::InvalidInput { field: "side", .. }
    ));
    assert!(matches!(
        "opened".parse::<OrderStatus>().unwrap_err(),
        OrdersError::InvalidInput {
            field: "order status",
            ..
        }
    ));
    for st in OrderStatus::ALL {
        assert_eq!(st.as_str().parse::<OrderStatus>().unwrap(), st);
        // The stored spelling is the serde one.
        assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
    }
    // Statuses written before the one model (6e4015a's actual orders) still read.
    for (old, now) in [
        ("pending_submit", OrderStatus::Pending),
        ("unknown", OrderStatus::Submitted),
        ("open", OrderStatus::Live),
        ("rejected", OrderStatus::Failed),
    ] {
        assert_eq!(
            serde_json::from_value::<OrderStatus>(serde_json::json!(old)).unwrap(),
            now
        );
    }
}
