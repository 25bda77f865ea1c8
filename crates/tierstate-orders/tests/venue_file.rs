//! The durable simulated venue: a call whose change cannot be written fails and changes
//! nothing (the venue never trades on in memory alone); one process owns a venue file; a
//! venue file belongs to the one owner that claimed it.

use std::time::Duration;

use rust_decimal::Decimal;
use tierstate_orders::{Exchange, ExchangeError, FaultPlan, OrderSpec, Side, SimExchange};

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn bid(price: &str) -> OrderSpec {
    OrderSpec::limit("ETH-USD", Side::Buy, d(price), d("1")).unwrap()
}

#[tokio::test]
async fn a_change_that_cannot_be_written_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("venue.json");
    let venue = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap();
    let placed = venue.place("c-1", &bid("100")).await.unwrap();
    // The disk refuses writes (here: the temporary file's name is taken by a directory).
    let blocker = file.with_extension("tmp");
    std::fs::create_dir(&blocker).unwrap();
    let before = venue.client_orders();
    for r in [
        venue.place("c-2", &bid("101")).await.map(|_| ()),
        venue
            .cancel(placed.exchange_order_id.as_deref().unwrap())
            .await
            .map(|_| ()),
        venue
            .modify(
                placed.exchange_order_id.as_deref().unwrap(),
                Some(d("99")),
                d("1"),
            )
            .await
            .map(|_| ()),
        venue
            .maker("ETH-USD", Side::Sell, d("100"), d("5"))
            .map(|_| ()),
    ] {
        assert!(
            matches!(&r, Err(ExchangeError::Unavailable(m)) if m.contains("venue storage")),
            "{r:?}"
        );
    }
    // Nothing happened: no order, no cancel, no modify, no fill.
    assert_eq!(venue.client_orders(), before);
    assert!(venue.query("c-2").await.unwrap().is_none());
    assert_eq!(venue.accepted().len(), 1);
    // The disk is back: trading resumes, and the file holds exactly what the venue answered.
    std::fs::remove_dir(&blocker).unwrap();
    let filled = venue
        .maker("ETH-USD", Side::Sell, d("100"), d("0.4"))
        .unwrap();
    assert_eq!(filled.filled(), d("0.4"));
    let now = venue.client_orders();
    drop(venue);
    let reopened = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap();
    assert_eq!(reopened.client_orders(), now);
}

#[test]
fn one_process_owns_a_venue_file_and_one_owner_claims_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("venue.json");
    let first = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap();
    let e = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert!(e.to_string().contains("in use"), "{e}");
    first.claim("db-a").unwrap();
    first.claim("db-a").unwrap();
    assert!(matches!(first.claim("db-b"), Err(ExchangeError::Rejected(m)) if m.contains("db-a")));
    drop(first);
    let again = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap();
    assert_eq!(again.owner().as_deref(), Some("db-a"));
    // A file that is not a venue is refused by name.
    std::fs::write(dir.path().join("x.json"), b"{}").unwrap();
    let e = SimExchange::durable(dir.path().join("x.json"), FaultPlan::none(), Duration::ZERO)
        .unwrap_err();
    assert!(e.to_string().contains("not a saved venue"), "{e}");
}
