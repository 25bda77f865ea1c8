//! The book and its totals: pure logic, no store.

use rust_decimal::Decimal;
use serde_json::json;
use tierstate_positions::{Filter, PositionBook, PositionError, PositionRecord, PositionType};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn pos(
    id: &str,
    chain: &str,
    kind: PositionType,
    token: &str,
    amount: &str,
    value: &str,
) -> PositionRecord {
    PositionRecord::new(id, chain, kind, token, d(amount), d(value)).unwrap()
}

fn book() -> PositionBook {
    let mut b = PositionBook::new(["ethereum", "arbitrum", "solana"]).unwrap();
    for p in [
        pos(
            "eth",
            "ethereum",
            PositionType::Token,
            "ETH",
            "2.50",
            "8000.00",
        ),
        pos(
            "usdc-loan",
            "ethereum",
            PositionType::Borrow,
            "USDC",
            "3000",
            "3000.00",
        ),
        pos(
            "aave-eth",
            "arbitrum",
            PositionType::Supply,
            "ETH",
            "1",
            "3200",
        ),
        pos(
            "eth-perp",
            "arbitrum",
            PositionType::Perp,
            "ETH",
            "-0.5",
            "-1600",
        ),
        pos("sol", "solana", PositionType::Token, "SOL", "10", "1500"),
    ] {
        b.upsert(p).unwrap();
    }
    b
}

#[test]
fn net_counts_borrows_negative_and_gross_counts_every_value() {
    let t = book().totals();
    // Seed 000 would report 8000 + 3000 + 3200 - 1600 + 1500 as the "total".
    assert_eq!(
        t.all.net_usd,
        d("8000") - d("3000") + d("3200") - d("1600") + d("1500")
    );
    assert_eq!(
        t.all.gross_usd,
        d("8000") + d("3000") + d("3200") + d("1600") + d("1500")
    );
    assert_ne!(t.all.net_usd, t.all.gross_usd);
    assert_eq!(t.all.count, 5);
    let eth = &t.by_chain["ethereum"];
    assert_eq!(
        (eth.all.count, eth.all.net_usd, eth.all.gross_usd),
        (2, d("5000.00"), d("11000.00"))
    );
    assert_eq!(eth.by_type[&PositionType::Borrow].net_usd, d("-3000.00"));
    let arb = &t.by_chain["arbitrum"];
    assert_eq!((arb.all.net_usd, arb.all.gross_usd), (d("1600"), d("4800")));
    assert_eq!(t.by_type[&PositionType::Token].count, 2);
    assert_eq!(t.by_type[&PositionType::Perp].gross_usd, d("1600"));
    // Per-chain and per-type figures add up to the overall ones.
    let (n, g): (Decimal, Decimal) = t
        .by_chain
        .values()
        .fold((Decimal::ZERO, Decimal::ZERO), |(n, g), c| {
            (n + c.all.net_usd, g + c.all.gross_usd)
        });
    assert_eq!((n, g), (t.all.net_usd, t.all.gross_usd));
    let n: Decimal = t.by_type.values().map(|e| e.net_usd).sum();
    assert_eq!(n, t.all.net_usd);
}

#[test]
fn every_configured_chain_has_a_summary_even_when_empty() {
    let mut b = PositionBook::new(["a", "b"]).unwrap();
    b.upsert(pos("x", "a", PositionType::Token, "X", "1", "1"))
        .unwrap();
    let t = b.totals();
    assert_eq!(t.by_chain.len(), 2);
    assert_eq!(t.by_chain["b"].all.count, 0);
}

#[test]
fn add_replace_get_find_remove() {
    let mut b = book();
    let old = b
        .upsert(pos(
            "eth",
            "ethereum",
            PositionType::Token,
            "ETH",
            "3",
            "9600",
        ))
        .unwrap()
        .expect("replaced");
    assert_eq!(old.amount, d("2.50"));
    assert_eq!(b.get("eth", "ethereum").unwrap().unwrap().amount, d("3"));
    assert_eq!(b.len(), 5);
    b.upsert(pos(
        "eth",
        "arbitrum",
        PositionType::Token,
        "ETH",
        "1",
        "3200",
    ))
    .unwrap();
    let found: Vec<_> = b.find("eth").iter().map(|p| p.chain.clone()).collect();
    assert_eq!(found, ["arbitrum", "ethereum"]);
    assert!(b.remove("eth", "ethereum").unwrap().is_some());
    assert!(b.remove("eth", "ethereum").unwrap().is_none());
    assert!(b.get("eth", "ethereum").unwrap().is_none());
    assert_eq!(b.find("eth").len(), 1);
}

#[test]
fn filters_by_chain_type_protocol_and_token() {
    let mut b = book();
    b.upsert(
        pos(
            "aave-usdc",
            "arbitrum",
            PositionType::Supply,
            "USDC",
            "100",
            "100",
        )
        .with_protocol("aave-v3")
        .unwrap(),
    )
    .unwrap();
    let ids = |f: Filter| b.filter(&f).map(|p| p.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(Filter {
            chain: Some("arbitrum".into()),
            ..Filter::default()
        }),
        ["aave-eth", "aave-usdc", "eth-perp"]
    );
    assert_eq!(
        ids(Filter {
            kind: Some(PositionType::Token),
            ..Filter::default()
        }),
        ["eth", "sol"]
    );
    assert_eq!(
        ids(Filter {
            protocol: Some("aave-v3".into()),
            ..Filter::default()
        }),
        ["aave-usdc"]
    );
    assert_eq!(
        ids(Filter {
            token: Some("ETH".into()),
            chain: Some("arbitrum".into()),
            ..Filter::default()
        }),
        ["aave-eth", "eth-perp"]
    );
    assert_eq!(ids(Filter::default()).len(), 6);
}

#[test]
fn clear_one_chain_or_all() {
    let mut b = book();
    assert_eq!(b.clear_chain("arbitrum").unwrap(), 2);
    assert_eq!(b.on_chain("arbitrum").unwrap().count(), 0);
    assert_eq!(b.len(), 3);
    assert_eq!(b.clear(), 3);
    assert!(b.is_empty());
}

#[test]
fn an_unconfigured_chain_is_named_with_the_configured_ones() {
    let mut b = book();
    let err = b
        .upsert(pos("x", "base", PositionType::Token, "X", "1", "1"))
        .unwrap_err();
    match &err {
        PositionError::ChainNotFound { chain, configured } => {
            assert_eq!(chain, "base");
            assert_eq!(configured, &["arbitrum", "ethereum", "solana"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("base"), "{err}");
    assert!(matches!(
        b.get("x", "base"),
        Err(PositionError::ChainNotFound { .. })
    ));
    assert!(matches!(
        b.remove("x", "base"),
        Err(PositionError::ChainNotFound { .. })
    ));
    assert!(matches!(
        b.clear_chain("base"),
        Err(PositionError::ChainNotFound { .. })
    ));
    assert_eq!(b.len(), 5, "nothing changed");
}

#[test]
fn bad_input_is_refused() {
    assert!(matches!(
        PositionBook::new(["a", "b", "a"]),
        Err(PositionError::DuplicateChain(c)) if c == "a"
    ));
    assert!(matches!(
        PositionBook::new(Vec::<String>::new()),
        Err(PositionError::InvalidInput { .. })
    ));
    assert!(matches!(
        PositionBook::new([""]),
        Err(PositionError::InvalidInput { field: "chain", .. })
    ));
    let bad = |r: tierstate_positions::Result<PositionRecord>, field: &str| match r {
        Err(PositionError::InvalidInput { field: f, .. }) => assert_eq!(f, field),
        other => panic!("{field}: {other:?}"),
    };
    bad(
        PositionRecord::new("", "a", PositionType::Token, "X", d("1"), d("1")),
        "id",
    );
    bad(
        PositionRecord::new(
            "x".repeat(257),
            "a",
            PositionType::Token,
            "X",
            d("1"),
            d("1"),
        ),
        "id",
    );
    bad(
        PositionRecord::new("x", "a", PositionType::Token, "", d("1"), d("1")),
        "token",
    );
    bad(
        PositionRecord::new("x\n", "a", PositionType::Token, "X", d("1"), d("1")),
        "id",
    );
    bad(
        PositionRecord::new("x", "a", PositionType::Token, "X", d("-1"), d("1")),
        "amount",
    );
    bad(
        PositionRecord::new("x", "a", PositionType::Borrow, "X", d("1"), d("-1")),
        "value_usd",
    );
    bad(
        PositionRecord::new(
            "x",
            "a",
            PositionType::Token,
            "X",
            d("100000000000000000001"),
            d("1"),
        ),
        "amount",
    );
    bad(
        PositionRecord::new(
            "x",
            "a",
            PositionType::Perp,
            "X",
            d("1"),
            d("-100000000000000000001"),
        ),
        "value_usd",
    );
    assert_eq!(
        tierstate_positions::MAX_MAGNITUDE,
        d("100000000000000000000")
    );
    assert!(
        PositionRecord::new(
            "x",
            "a",
            PositionType::Token,
            "X",
            d("100000000000000000000"),
            d("1")
        )
        .is_ok()
    );
    // A perp's sign is its direction.
    assert!(PositionRecord::new("x", "a", PositionType::Perp, "X", d("-1"), d("-5")).is_ok());
    let p = pos("x", "a", PositionType::Token, "X", "1", "1");
    bad(p.clone().with_metadata(json!([1, 2])), "metadata");
    bad(p.clone().with_metadata(json!("text")), "metadata");
    assert!(p.with_metadata(json!({"venue": "binance"})).is_ok());
}

#[test]
fn position_types_round_trip_and_unknown_strings_are_typed_errors() {
    for k in PositionType::ALL {
        assert_eq!(k.as_str().parse::<PositionType>().unwrap(), k);
        assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        assert_eq!(
            serde_json::from_value::<PositionType>(json!(k.as_str())).unwrap(),
            k
        );
    }
    match "option".parse::<PositionType>() {
        Err(PositionError::UnknownPositionType { value }) => assert_eq!(value, "option"),
        other => panic!("{other:?}"),
    }
    assert!("Token".parse::<PositionType>().is_err(), "names are exact");
}

/// A book built with its positions equals one filled by upserts; a position on an unknown
/// chain or given twice is refused; the stored document round-trips exactly and a bad one
/// names its field (importing existing states).
#[test]
fn a_book_is_built_with_positions_and_converts_to_and_from_its_document() {
    let filled = book();
    let built = PositionBook::with_positions(
        ["ethereum", "arbitrum", "solana"],
        filled.iter().cloned().collect::<Vec<_>>(),
    )
    .unwrap();
    assert_eq!(built, filled);
    let e = PositionBook::with_positions(
        ["ethereum"],
        [pos("sol", "solana", PositionType::Token, "SOL", "1", "1")],
    )
    .unwrap_err();
    assert!(matches!(e, PositionError::ChainNotFound { .. }), "{e:?}");
    let twice = pos("eth", "ethereum", PositionType::Token, "ETH", "1", "1");
    let e = PositionBook::with_positions(["ethereum"], [twice.clone(), twice]).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");

    let doc = built.to_document().unwrap();
    assert_eq!(doc["schema"], json!(1));
    assert_eq!(PositionBook::from_document(doc.clone()).unwrap(), built);
    let mut bad = doc;
    bad["positions"][0]["amount"] = json!("1e400");
    let e = PositionBook::from_document(bad).unwrap_err();
    assert!(e.to_string().contains("amount"), "{e}");
}
