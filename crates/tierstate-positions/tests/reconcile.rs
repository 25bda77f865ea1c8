//! Reconciliation as pure logic: the report's findings and order, tolerances, staleness, and
//! properties over generated books and venue reports.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use tierstate_positions::{
    Finding, PositionBook, PositionError, PositionRecord, PositionType, StalePolicy, Tolerance,
    Tolerances, VenuePosition, VenueReport, reconcile,
};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 14, 3, 7).unwrap()
}

fn pos(id: &str, chain: &str, token: &str, amount: &str, value: &str) -> PositionRecord {
    PositionRecord::new(id, chain, PositionType::Token, token, d(amount), d(value))
        .unwrap()
        .with_times(t0(), t0())
        .unwrap()
}

fn vpos(id: &str, chain: &str, token: &str, amount: &str, value: &str) -> VenuePosition {
    VenuePosition::new(id, chain, PositionType::Token, token, d(amount), d(value)).unwrap()
}

fn report(chains: &[&str], positions: Vec<VenuePosition>) -> VenueReport {
    VenueReport {
        venue: "sim".into(),
        chains: chains.iter().map(|c| (*c).to_owned()).collect(),
        positions,
        as_of: t0(),
    }
}

fn book() -> PositionBook {
    let mut b = PositionBook::new(["eth", "sol", "btc"]).unwrap();
    for p in [
        pos("a", "eth", "ETH", "1.00", "3200.00"),
        pos("b", "eth", "USDC", "500", "500"),
        pos("c", "eth", "WBTC", "0.1", "9000"),
        pos("s", "sol", "SOL", "10", "1500"),
        pos("x", "btc", "BTC", "1", "90000"),
    ] {
        b.upsert(p).unwrap();
    }
    b
}

fn exact() -> Tolerances {
    Tolerances::new(Tolerance::EXACT)
}

#[test]
fn every_kind_of_finding_in_a_stable_order() {
    let venue = report(
        &["eth", "sol"],
        vec![
            vpos("s", "sol", "SOL", "10", "1500"),      // agrees
            vpos("new", "eth", "DAI", "7", "7"),        // missing locally
            vpos("a", "eth", "ETH", "1.25", "4000.00"), // amount and value drift
            vpos("c", "eth", "WBTC", "0.1", "9100"),    // value drift only
        ], // b: missing on the venue
    );
    let stale = StalePolicy::new(1, None).unwrap();
    let r = reconcile(&book(), &venue, &exact(), &stale, t0()).unwrap();
    let kinds: Vec<(String, &str)> = r
        .report
        .findings
        .iter()
        .map(|f| match f {
            Finding::MissingLocally { venue } => (venue.id.clone(), "missing_locally"),
            Finding::MissingOnVenue { id, removed, .. } => {
                assert!(removed);
                (id.clone(), "missing_on_venue")
            }
            Finding::AmountDrift { id, .. } => (id.clone(), "amount"),
            Finding::ValueDrift { id, .. } => (id.clone(), "value"),
            Finding::Replaced { venue, .. } => (venue.id.clone(), "replaced"),
        })
        .collect();
    let want = [
        ("a", "amount"),
        ("a", "value"),
        ("b", "missing_on_venue"),
        ("c", "value"),
        ("new", "missing_locally"),
    ];
    assert_eq!(kinds, want.map(|(i, k)| (i.to_owned(), k)));
    let t = &r.target;
    assert_eq!(t.get("a", "eth").unwrap().unwrap().amount, d("1.25"));
    assert_eq!(
        t.get("a", "eth").unwrap().unwrap().created_at,
        t0(),
        "created time kept"
    );
    assert!(t.get("b", "eth").unwrap().is_none(), "stale after one run");
    assert_eq!(t.get("c", "eth").unwrap().unwrap().value_usd, d("9100"));
    assert_eq!(t.get("new", "eth").unwrap().unwrap().token, "DAI");
    assert_eq!(
        t.get("x", "btc").unwrap(),
        book().get("x", "btc").unwrap(),
        "btc not asked about"
    );
    assert_eq!(r.report.target, t.totals());
    // Same inputs, positions in another order: the same report.
    let mut shuffled = venue.clone();
    shuffled.positions.reverse();
    assert_eq!(
        reconcile(&book(), &shuffled, &exact(), &stale, t0()).unwrap(),
        r
    );
    // Applied, a second run has nothing to say.
    let again = reconcile(&r.target, &venue, &exact(), &stale, t0()).unwrap();
    assert!(again.report.is_clean(), "{:?}", again.report.findings);
    assert_eq!(again.target, r.target);
}

#[test]
fn tolerances_absolute_relative_and_per_token() {
    let venue = report(
        &["eth"],
        vec![
            vpos("a", "eth", "ETH", "1.001", "3203.00"),
            vpos("b", "eth", "USDC", "500.4", "500.4"),
            vpos("c", "eth", "WBTC", "0.1", "9000"),
        ],
    );
    let loose = Tolerances::new(Tolerance::new(d("0.5"), d("0.5"), d("0")).unwrap())
        .with_token("ETH", Tolerance::new(d("0"), d("0"), d("0.001")).unwrap());
    let r = reconcile(&book(), &venue, &loose, &StalePolicy::default(), t0()).unwrap();
    // ETH: 0.001 / 1.001 and 3 / 3203 are within 0.1 %; USDC: 0.4 within 0.5 absolute.
    assert!(r.report.is_clean(), "{:?}", r.report.findings);
    assert_eq!(
        r.target,
        book(),
        "within tolerance the book is kept as it is"
    );
    let r = reconcile(&book(), &venue, &exact(), &StalePolicy::default(), t0()).unwrap();
    assert_eq!(r.report.findings.len(), 4);
    assert!(matches!(
        Tolerance::new(d("-1"), d("0"), d("0")),
        Err(PositionError::InvalidInput {
            field: "amount_abs",
            ..
        })
    ));
    assert!(matches!(
        Tolerance::new(d("0"), d("0"), d("-0.1")),
        Err(PositionError::InvalidInput {
            field: "relative",
            ..
        })
    ));
}

#[test]
fn extreme_figures_and_tolerances_never_panic() {
    let max = tierstate_positions::MAX_MAGNITUDE;
    let mut b = PositionBook::new(["eth"]).unwrap();
    b.upsert(PositionRecord::new("p", "eth", PositionType::Perp, "ETH", max, -max).unwrap())
        .unwrap();
    let venue = report(
        &["eth"],
        vec![VenuePosition::new("p", "eth", PositionType::Perp, "ETH", -max, max).unwrap()],
    );
    let huge = Tolerances::new(Tolerance::new(Decimal::MAX, Decimal::MAX, Decimal::MAX).unwrap());
    let r = reconcile(&b, &venue, &huge, &StalePolicy::default(), t0()).unwrap();
    assert!(r.report.is_clean());
    let r = reconcile(&b, &venue, &exact(), &StalePolicy::default(), t0()).unwrap();
    assert_eq!(r.report.findings.len(), 2);
    assert_eq!(r.target.totals().all.gross_usd, max);
}

#[test]
fn a_missing_position_is_removed_after_n_runs_or_after_a_time() {
    let venue = report(&["sol"], vec![]);
    let policy = StalePolicy::new(3, Some(Duration::hours(1))).unwrap();
    let mut b = book();
    for run in 1..=3u32 {
        let at = t0() + Duration::minutes(i64::from(run));
        let r = reconcile(&b, &venue, &exact(), &policy, at).unwrap();
        match &r.report.findings[..] {
            [
                Finding::MissingOnVenue {
                    runs,
                    removed,
                    since,
                    ..
                },
            ] => {
                assert_eq!((*runs, *removed), (run, run == 3));
                assert_eq!(*since, t0() + Duration::minutes(1));
            }
            other => panic!("run {run}: {other:?}"),
        }
        b = r.target;
        assert_eq!(b.get("s", "sol").unwrap().is_some(), run < 3);
    }
    // By time: the second run, two hours later, removes it.
    let b = book();
    let r = reconcile(&b, &venue, &exact(), &policy, t0()).unwrap();
    assert!(r.target.get("s", "sol").unwrap().is_some());
    let r = reconcile(
        &r.target,
        &venue,
        &exact(),
        &policy,
        t0() + Duration::hours(2),
    )
    .unwrap();
    assert!(r.target.get("s", "sol").unwrap().is_none());
    // Seen again: the count starts over.
    let r = reconcile(&b, &venue, &exact(), &policy, t0()).unwrap();
    let back = report(&["sol"], vec![vpos("s", "sol", "SOL", "10", "1500")]);
    let r = reconcile(&r.target, &back, &exact(), &policy, t0()).unwrap();
    assert!(r.target.missing("s", "sol").is_none());
    assert!(StalePolicy::new(0, None).is_err());
}

#[test]
fn another_kind_or_token_under_the_same_id_is_replaced() {
    let venue = report(
        &["eth"],
        vec![
            VenuePosition::new(
                "a",
                "eth",
                PositionType::Supply,
                "ETH",
                d("1.00"),
                d("3200.00"),
            )
            .unwrap(),
            vpos("b", "eth", "USDC", "500", "500"),
            vpos("c", "eth", "WBTC", "0.1", "9000"),
        ],
    );
    let r = reconcile(&book(), &venue, &exact(), &StalePolicy::default(), t0()).unwrap();
    assert!(matches!(&r.report.findings[..], [Finding::Replaced { .. }]));
    assert_eq!(
        r.target.get("a", "eth").unwrap().unwrap().kind,
        PositionType::Supply
    );
}

#[test]
fn bad_venue_reports_are_refused() {
    let stale = StalePolicy::default();
    let e = reconcile(&book(), &report(&["base"], vec![]), &exact(), &stale, t0()).unwrap_err();
    assert!(
        matches!(e, PositionError::ChainNotFound { ref chain, .. } if chain == "base"),
        "{e}"
    );
    let outside = report(&["eth"], vec![vpos("s", "sol", "SOL", "1", "1")]);
    assert!(matches!(
        reconcile(&book(), &outside, &exact(), &stale, t0()),
        Err(PositionError::InvalidInput { .. })
    ));
    // Fields are public: a report built by hand is checked like one built with `new`.
    let mut negative = vpos("a", "eth", "ETH", "1", "1");
    negative.amount = d("-1");
    let e = reconcile(
        &book(),
        &report(&["eth"], vec![negative]),
        &exact(),
        &stale,
        t0(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            PositionError::InvalidInput {
                field: "amount",
                ..
            }
        ),
        "{e}"
    );
    let twice = report(
        &["eth"],
        vec![
            vpos("a", "eth", "ETH", "1", "1"),
            vpos("a", "eth", "ETH", "2", "2"),
        ],
    );
    assert!(matches!(
        reconcile(&book(), &twice, &exact(), &stale, t0()),
        Err(PositionError::InvalidInput { .. })
    ));
}

/// A decimal with 0..=4 places from an integer: amounts of every scale.
fn dec() -> impl Strategy<Value = Decimal> {
    (0i64..10_000_000, 0u32..=4).prop_map(|(n, s)| Decimal::new(n, s))
}

const CHAINS: [&str; 3] = ["eth", "sol", "btc"];

fn arb_book() -> impl Strategy<Value = PositionBook> {
    prop::collection::vec((0usize..3, 0u8..12, 0usize..3, dec(), dec()), 0..30).prop_map(|ps| {
        let mut b = PositionBook::new(CHAINS).unwrap();
        for (c, id, tok, a, v) in ps {
            let r = PositionRecord::new(
                format!("p{id}"),
                CHAINS[c],
                PositionType::Token,
                ["ETH", "USDC", "SOL"][tok],
                a,
                v,
            )
            .unwrap()
            .with_times(t0(), t0())
            .unwrap();
            b.upsert(r).unwrap();
        }
        b
    })
}

/// A venue report over eth and sol derived from `book`: each position kept, drifted by a
/// factor, or dropped, plus new ones.
fn arb_case() -> impl Strategy<Value = (PositionBook, VenueReport, Tolerances)> {
    (
        arb_book(),
        prop::collection::vec((0u8..4, 0u32..2000), 30),
        prop::collection::vec((0usize..2, 12u8..16, dec(), dec()), 0..4),
        0u32..3,
    )
        .prop_map(|(b, fates, extra, rel)| {
            let mut positions = Vec::new();
            for (p, (fate, bp)) in b.iter().filter(|p| p.chain != "btc").zip(fates) {
                let f = Decimal::new(10_000 + i64::from(bp), 4); // 1.0000 ..= 1.1999
                match fate {
                    0 => {}
                    1 => positions.push(
                        VenuePosition::new(
                            &p.id,
                            &p.chain,
                            p.kind,
                            &p.token,
                            p.amount * f,
                            p.value_usd * f,
                        )
                        .unwrap(),
                    ),
                    _ => positions.push(
                        VenuePosition::new(
                            &p.id,
                            &p.chain,
                            p.kind,
                            &p.token,
                            p.amount,
                            p.value_usd,
                        )
                        .unwrap(),
                    ),
                }
            }
            // New positions (ids the book never uses), one per (chain, id).
            let extra: std::collections::BTreeMap<_, _> = extra
                .into_iter()
                .map(|(c, id, a, v)| ((c, id), (a, v)))
                .collect();
            for ((c, id), (a, v)) in extra {
                positions.push(
                    VenuePosition::new(
                        format!("p{id}"),
                        CHAINS[c],
                        PositionType::Token,
                        "ETH",
                        a,
                        v,
                    )
                    .unwrap(),
                );
            }
            let tol = Tolerances::new(
                Tolerance::new(
                    Decimal::ZERO,
                    Decimal::ZERO,
                    Decimal::new(i64::from(rel) * 5, 2),
                )
                .unwrap(),
            );
            (b, report(&["eth", "sol"], positions), tol)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn after_apply_the_book_matches_the_venue_and_its_totals_are_the_reports(
        (b, venue, tol) in arb_case()
    ) {
        let stale = StalePolicy::new(1, None).unwrap();
        let r = reconcile(&b, &venue, &tol, &stale, t0()).unwrap();
        // Every venue position is in the book, within tolerance.
        for v in &venue.positions {
            let p = r.target.get(&v.id, &v.chain).unwrap().expect("venue position in the book");
            let t = tol.for_token(&v.token);
            prop_assert!(t.amount_ok(p.amount, v.amount) && t.value_ok(p.value_usd, v.value_usd));
        }
        // Nothing on a reconciled chain that the venue does not hold (stale after one run).
        for p in r.target.iter().filter(|p| p.chain != "btc") {
            prop_assert!(venue.positions.iter().any(|v| v.id == p.id && v.chain == p.chain));
        }
        prop_assert_eq!(&r.report.target, &r.target.totals());
        // btc was not asked about: untouched.
        let btc = |x: &PositionBook| x.on_chain("btc").unwrap().cloned().collect::<Vec<_>>();
        prop_assert_eq!(btc(&r.target), btc(&b));
        // Deterministic, and a second run has nothing to change.
        prop_assert_eq!(&reconcile(&b, &venue, &tol, &stale, t0()).unwrap(), &r);
        let again = reconcile(&r.target, &venue, &tol, &stale, t0()).unwrap();
        prop_assert!(again.report.is_clean(), "{:?}", again.report.findings);
        prop_assert_eq!(again.target, r.target);
    }
}
