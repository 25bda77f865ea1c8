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
    // The disk refuses writes (here: the log's name is taken by a directory; the log itself
    // is kept aside, as a disk that refuses writes keeps what it holds).
    let log = dir.path().join("venue.json.log");
    let aside = dir.path().join("aside.log");
    std::fs::rename(&log, &aside).unwrap();
    std::fs::create_dir(&log).unwrap();
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
    std::fs::remove_dir(&log).unwrap();
    std::fs::rename(&aside, &log).unwrap();
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

/// A change costs one small append to the venue's log, whatever the venue's history; the log
/// is folded into the snapshot every thousand changes and at open; a last line cut short by a
/// crash (never answered) is dropped, and the venue reopens as it was answered.
#[tokio::test]
async fn a_change_costs_one_small_append_whatever_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("venue.json");
    let log = dir.path().join("venue.json.log");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let venue = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap();
    let mut growth = Vec::new();
    for k in 0..400 {
        let before = size(&log);
        let price = format!("{}", 100 + k % 50);
        venue.place(&format!("c-{k}"), &bid(&price)).await.unwrap();
        let after = size(&log);
        if after > before {
            growth.push(after - before);
        }
    }
    // Every append holds the one order placed: the 400th costs what the 1st did.
    let (first, last) = (growth[0], *growth.last().unwrap());
    assert!(
        first < 2048 && last <= first + 16,
        "{first} then {last} bytes"
    );
    // Past a thousand changes the log is folded into the snapshot.
    for _ in 0..700 {
        venue
            .maker("ETH-USD", Side::Sell, d("1000"), d("1"))
            .unwrap();
    }
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(lines < 1000, "the log kept {lines} changes");
    // Once a snapshot holds more orders than that, the next one (which holds them all) is
    // written only after as many changes: a rewrite's cost per change stays flat. The snapshot
    // at change 2,000 held 2,000 orders, so at change 3,500 the log holds 1,500 changes (a
    // rewrite every thousand would have left 500).
    for _ in 0..2_400 {
        venue
            .maker("ETH-USD", Side::Sell, d("1000"), d("1"))
            .unwrap();
    }
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        (1_400..=1_500).contains(&lines),
        "{lines} changes logged since the last snapshot"
    );
    // A crash mid-append leaves a partial line: it was never answered, so it is dropped.
    let answered = venue.client_orders();
    drop(venue);
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"{\"orders\":[[\"x-9999\"")
        .unwrap();
    let reopened = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap();
    assert_eq!(reopened.client_orders(), answered);
    assert_eq!(size(&log), 0, "opening folds the log into the snapshot");
    // A damaged whole line is not silently skipped.
    drop(reopened);
    std::fs::write(&log, b"not json\n").unwrap();
    let e = SimExchange::durable(&file, FaultPlan::none(), Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
}
