//! Checks of documents, journals, time travel and mixed batches.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use tierstate_core::journal::{EntryDamage, Flip};
use tierstate_core::{
    Append, DeploymentId, DocAddr, DocWrite, Error, JournalQuery, JournalTail, KeyRange, Name,
    PutMode, Retention, StateStore, StateWrite, StreamAddr, Target, TruncateBefore, WriteBatch,
};

use crate::{Harness, RecordDamage};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("test value is an object").clone()
}

fn doc(d: &str, c: &str, k: &str) -> DocAddr {
    DocAddr::new(d, c, k).expect("valid address")
}

fn stream(d: &str, s: &str) -> StreamAddr {
    StreamAddr::new(d, s).expect("valid stream")
}

fn t(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_800_000_000_000_000 + us).unwrap()
}

fn entry(s: &StreamAddr, event: i64, n: u64) -> Append {
    Append::new(
        s.clone(),
        t(event),
        obj(json!({"n": n, "pad": "x".repeat(16)})),
    )
}

async fn append_all(store: &dyn StateStore, appends: Vec<Append>) {
    for a in appends {
        store.append(a).await.expect("append");
    }
}

fn seqs(p: &tierstate_core::JournalPage) -> Vec<u64> {
    p.entries.iter().map(|e| e.seq).collect()
}

/// Documents follow the state's CAS rules; errors name the full address; history and
/// retention work per document.
pub async fn documents_compare_and_swap(h: &Harness) {
    let s = &h.store;
    let a = doc("d", "orders.open", "ord-17");
    assert!(s.get_document(&a).await.unwrap().is_none());
    let v1 = s
        .put_document(DocWrite::new(
            a.clone(),
            PutMode::Create,
            obj(json!({"qty": "1.5"})),
        ))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(s.get_document(&a).await.unwrap().unwrap(), v1);
    match s
        .put_document(DocWrite::new(a.clone(), PutMode::Create, obj(json!({}))))
        .await
    {
        Err(Error::AlreadyExists {
            actual: 1, target, ..
        }) => assert_eq!(target, Target::document(&a)),
        other => panic!("create over a document: {other:?}"),
    }
    let v2 = s
        .put_document(DocWrite::new(
            a.clone(),
            PutMode::Update { expected: 1 },
            obj(json!({"qty": "2"})),
        ))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let err = s
        .put_document(DocWrite::new(
            a.clone(),
            PutMode::Update { expected: 1 },
            obj(json!({})),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 1,
                actual: Some(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("orders.open/ord-17"),
        "error must name the address: {err}"
    );
    // The state of the same deployment is a different record.
    assert!(
        s.get(&DeploymentId::new("d").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let hist = s.document_history(&a, 10).await.unwrap();
    assert_eq!(hist.iter().map(|d| d.version).collect::<Vec<_>>(), [2, 1]);
    // Retention applies per document, in the same commit.
    let keep2 = Retention::KeepLast(NonZeroU32::new(2).unwrap());
    s.write(
        WriteBatch::new()
            .document(DocWrite::new(
                a.clone(),
                PutMode::Overwrite,
                obj(json!({"qty": "3"})),
            ))
            .with_retention(keep2),
    )
    .await
    .unwrap();
    let hist = s.document_history(&a, 10).await.unwrap();
    assert_eq!(hist.iter().map(|d| d.version).collect::<Vec<_>>(), [3, 2]);
    // Delete with a stale expectation conflicts; then removes it with its history.
    assert!(
        s.delete_document(&a, Some(2))
            .await
            .unwrap_err()
            .is_conflict()
    );
    assert!(s.delete_document(&a, Some(3)).await.unwrap());
    assert!(s.get_document(&a).await.unwrap().is_none());
    assert!(s.document_history(&a, 10).await.unwrap().is_empty());
    assert!(!s.delete_document(&a, None).await.unwrap());
}

/// A collection lists in key order with a cursor and limit, and only its own documents.
pub async fn documents_list_by_collection(h: &Harness) {
    let s = &h.store;
    let mut b = WriteBatch::new();
    for k in ["k3", "k1", "k2", "k5", "k4"] {
        b = b.document(DocWrite::new(
            doc("d", "positions", k),
            PutMode::Create,
            obj(json!({"k": k})),
        ));
    }
    b = b.document(DocWrite::new(
        doc("d", "positionsx", "k0"),
        PutMode::Create,
        obj(json!({})),
    ));
    b = b.document(DocWrite::new(
        doc("e", "positions", "k0"),
        PutMode::Create,
        obj(json!({})),
    ));
    b = b.document(DocWrite::new(
        doc("d", "other", "k0"),
        PutMode::Create,
        obj(json!({})),
    ));
    s.write(b).await.unwrap();
    let id = DeploymentId::new("d").unwrap();
    let coll = Name::collection("positions").unwrap();
    let page = s.list_documents(&id, &coll, None, 3).await.unwrap();
    let keys: Vec<String> = page
        .into_iter()
        .map(|d| d.unwrap().address.key.to_string())
        .collect();
    assert_eq!(keys, ["k1", "k2", "k3"]);
    let after = Name::key("k3").unwrap();
    let page = s
        .list_documents(&id, &coll, Some(&after), 10)
        .await
        .unwrap();
    let keys: Vec<String> = page
        .into_iter()
        .map(|d| d.unwrap().address.key.to_string())
        .collect();
    assert_eq!(keys, ["k4", "k5"]);
    // Documents are not deployments' states.
    assert!(s.list(None, 10).await.unwrap().is_empty());
}

/// Range scans of a collection: both exclusive bounds, either order, a limit, neighbours in
/// other collections and deployments left out, a deleted document gone, and a damaged
/// document reported in place as its `Integrity` error without hiding its neighbours.
pub async fn documents_scan_by_key_range(h: &Harness) {
    let s = &h.store;
    let keys: Vec<String> = (0..20).map(|i| format!("t{i:04}")).collect();
    let mut b = WriteBatch::new();
    for k in keys.iter().rev() {
        b = b.document(DocWrite::new(
            doc("d", "snaps", k),
            PutMode::Create,
            obj(json!({"k": k})),
        ));
    }
    for (d, c) in [("d", "snapsx"), ("d", "snap"), ("e", "snaps"), ("d", "a")] {
        b = b.document(DocWrite::new(
            doc(d, c, "t0005"),
            PutMode::Create,
            obj(json!({})),
        ));
    }
    s.write(b).await.unwrap();
    let id = DeploymentId::new("d").unwrap();
    let coll = Name::collection("snaps").unwrap();
    let key = |k: &str| Some(Name::key(k).unwrap());
    let scan = |range: KeyRange, limit: usize| {
        let (id, coll) = (id.clone(), coll.clone());
        async move {
            s.scan_documents(&id, &coll, &range, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|d| {
                    let d = d.unwrap();
                    assert_eq!(d.value["k"], d.address.key.as_str(), "body of another key");
                    d.address.key.to_string()
                })
                .collect::<Vec<_>>()
        }
    };
    let want = |r: std::ops::Range<usize>| keys[r].to_vec();
    assert_eq!(scan(KeyRange::all(), 100).await, want(0..20));
    assert_eq!(scan(KeyRange::all(), 3).await, want(0..3));
    let mut newest = want(17..20);
    newest.reverse();
    assert_eq!(scan(KeyRange::before_descending(None), 3).await, newest);
    let range = KeyRange {
        after: key("t0004"),
        before: key("t0009"),
        descending: false,
    };
    assert_eq!(scan(range.clone(), 100).await, want(5..9));
    let mut down = want(5..9);
    down.reverse();
    let desc = KeyRange {
        descending: true,
        ..range
    };
    assert_eq!(scan(desc.clone(), 100).await, down);
    assert_eq!(scan(desc, 2).await, down[..2].to_vec());
    // Bounds that are not stored keys, and ranges that hold nothing.
    let between = KeyRange {
        after: key("t0004x"),
        before: key("t0006x"),
        descending: true,
    };
    assert_eq!(scan(between, 100).await, ["t0006", "t0005"]);
    for (after, before) in [("t0009", "t0009"), ("t0009", "t0002"), ("t0004", "t0005")] {
        let r = KeyRange {
            after: key(after),
            before: key(before),
            descending: false,
        };
        assert!(
            scan(r, 100).await.is_empty(),
            "({after}, {before}) is empty"
        );
    }
    assert!(scan(KeyRange::after(key("t0019")), 100).await.is_empty());
    assert!(
        scan(KeyRange::before_descending(key("t0000")), 100)
            .await
            .is_empty()
    );
    assert!(scan(KeyRange::all(), 0).await.is_empty());
    // A removed document leaves the scan; a damaged one is reported in place.
    s.delete_document(&doc("d", "snaps", "t0007"), None)
        .await
        .unwrap();
    let damaged = doc("d", "snaps", "t0006");
    assert!((h.damage_record)(RecordDamage::Document(damaged.clone())).await);
    let range = KeyRange {
        after: key("t0004"),
        before: key("t0009"),
        descending: true,
    };
    let got = s.scan_documents(&id, &coll, &range, 100).await.unwrap();
    assert_eq!(got.len(), 3, "t0008, t0006 (damaged), t0005");
    assert_eq!(got[0].as_ref().unwrap().address.key.as_str(), "t0008");
    match &got[1] {
        Err(Error::Integrity { target, .. }) => assert_eq!(*target, Target::document(&damaged)),
        other => panic!("damaged document scanned as {other:?}"),
    }
    assert_eq!(got[2].as_ref().unwrap().address.key.as_str(), "t0005");
}

/// A damaged document, entry body, checksum, chain hash or a deleted entry is an `Integrity`
/// error naming the record, never a value.
pub async fn record_damage_is_detected(h: &Harness) {
    let s = &h.store;
    let a = doc("d", "c", "k");
    s.put_document(DocWrite::new(
        a.clone(),
        PutMode::Create,
        obj(json!({"v": "abcdef"})),
    ))
    .await
    .unwrap();
    assert!(
        (h.damage_record)(RecordDamage::Document(a.clone())).await,
        "hook found nothing"
    );
    match s.get_document(&a).await {
        Err(Error::Integrity {
            target, version: 1, ..
        }) => assert_eq!(target, Target::document(&a)),
        other => panic!("damaged document: {other:?}"),
    }
    // A head whose version row is gone is damage, on a read and in a scan: never "absent".
    let b = doc("d", "c", "l");
    for n in 1..=2 {
        s.put_document(DocWrite::new(
            b.clone(),
            PutMode::Overwrite,
            obj(json!({"n": n})),
        ))
        .await
        .unwrap();
    }
    if (h.damage_record)(RecordDamage::DocumentRowGone(b.clone())).await {
        match s.get_document(&b).await {
            Err(Error::Integrity {
                version: 2, target, ..
            }) => {
                assert_eq!(target, Target::document(&b));
            }
            other => panic!("head without its row: {other:?}"),
        }
        let scan = s
            .list_documents(&b.deployment_id, &b.collection, None, 10)
            .await
            .unwrap();
        let gone: Vec<_> = scan.iter().filter(|r| r.is_err()).collect();
        assert_eq!(
            gone.len(),
            2,
            "the flipped one and the one without a row: {scan:?}"
        );
    }
    for (i, damage) in [
        EntryDamage::Body(Flip::Middle),
        EntryDamage::Checksum(Flip::Middle),
        EntryDamage::Hash(Flip::Middle),
        EntryDamage::Delete,
    ]
    .into_iter()
    .enumerate()
    {
        let st = stream("d", &format!("j{i}"));
        append_all(&**s, (1..=6).map(|n| entry(&st, n as i64, n)).collect()).await;
        assert!(
            (h.damage_record)(RecordDamage::Entry(st.clone(), 3, damage)).await,
            "{damage:?}: hook found nothing"
        );
        match s.read_journal(&st, JournalQuery::from_seq(1, 100)).await {
            Err(Error::Integrity {
                version: 3,
                target: Target::Journal { stream },
                ..
            }) => assert_eq!(stream, st.stream),
            other => panic!("{damage:?}: range read gave {other:?}"),
        }
        // Entries before the damage still read.
        let ok = s
            .read_journal(
                &st,
                JournalQuery::Range {
                    from: 1,
                    to: 2,
                    descending: false,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(seqs(&ok), [1, 2]);
    }
}

/// Concurrent appenders get contiguous sequence numbers 1..=N with no gaps or repeats, and
/// the whole chain verifies.
pub async fn journal_sequences_are_contiguous(h: &Harness) {
    let st = stream("d", "ledger");
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        let s = h.store.clone();
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                s.append(entry(&st, (w * 100 + i) as i64, w * 100 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let info = h.store.journal_info(&st).await.unwrap().unwrap();
    assert_eq!((info.first_seq, info.last_seq, info.count), (1, 200, 200));
    let page = h
        .store
        .read_journal(&st, JournalQuery::from_seq(1, 1000))
        .await
        .unwrap();
    assert_eq!(seqs(&page), (1..=200).collect::<Vec<_>>());
    let ns: BTreeSet<u64> = page
        .entries
        .iter()
        .map(|e| e.value["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns.len(), 200, "an append was lost or duplicated");
    for pair in page.entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(
            pair[1].commit_time >= pair[0].commit_time,
            "commit times decreased"
        );
    }
}

/// An idempotency key appended again with the same body returns the stored entry and writes
/// nothing; with a different body it is `KeyReused` naming stream, key and both checksums;
/// concurrent appends of one key store it once.
pub async fn journal_idempotency_keys(h: &Harness) {
    let s = &h.store;
    let st = stream("d", "fills");
    let key = Name::key("fill-1").unwrap();
    let first = s
        .append(entry(&st, 1, 1).with_key(key.clone()))
        .await
        .unwrap();
    assert!(first.fresh);
    let again = s
        .append(entry(&st, 1, 1).with_key(key.clone()))
        .await
        .unwrap();
    assert!(!again.fresh);
    assert_eq!(again.entry, first.entry);
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().count, 1);
    match s.append(entry(&st, 1, 2).with_key(key.clone())).await {
        Err(e @ Error::KeyReused { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fill-1")
                    && msg.contains("fills")
                    && msg.contains(&first.entry.checksum.to_hex()),
                "{msg}"
            );
        }
        other => panic!("different body under a used key: {other:?}"),
    }
    let by_key = s.read_journal(&st, JournalQuery::ByKey(key)).await.unwrap();
    assert_eq!(seqs(&by_key), [1]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let st = st.clone();
        tasks.push(tokio::spawn(async move {
            s.append(entry(&st, 2, 2).with_key(Name::key("fill-2").unwrap()))
                .await
                .unwrap()
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        fresh += usize::from(t.await.unwrap().fresh);
    }
    assert_eq!(
        fresh, 1,
        "one of the concurrent appends writes, the rest replay"
    );
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().count, 2);
    // `new_only`: a stored key fails the whole batch (same bytes or not), naming its entry;
    // a repeat within one batch too; new keys append.
    let batch = WriteBatch::new()
        .append(
            entry(&st, 3, 3)
                .with_key(Name::key("fill-3").unwrap())
                .new_only(),
        )
        .append(
            entry(&st, 1, 1)
                .with_key(Name::key("fill-1").unwrap())
                .new_only(),
        );
    assert!(matches!(
        s.write(batch).await.unwrap_err(),
        Error::AlreadyExists { actual: 1, .. }
    ));
    let k4 = || Name::key("fill-4").unwrap();
    let twice = WriteBatch::new()
        .append(entry(&st, 4, 4).with_key(k4()).new_only())
        .append(entry(&st, 4, 4).with_key(k4()).new_only());
    assert!(matches!(
        s.write(twice).await.unwrap_err(),
        Error::AlreadyExists { actual: 3, .. }
    ));
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().count, 2);
    let ok = s
        .append(
            entry(&st, 3, 3)
                .with_key(Name::key("fill-3").unwrap())
                .new_only(),
        )
        .await
        .unwrap();
    assert!(ok.fresh);
    assert_eq!(ok.entry.seq, 3);
}

/// An optimistic append fails with `Conflict` carrying the actual last sequence number.
pub async fn journal_optimistic_appends(h: &Harness) {
    let s = &h.store;
    let st = stream("d", "events");
    assert_eq!(
        s.append(entry(&st, 1, 1).expecting(0))
            .await
            .unwrap()
            .entry
            .seq,
        1
    );
    match s.append(entry(&st, 2, 2).expecting(0)).await {
        Err(Error::Conflict {
            expected: 0,
            actual: Some(1),
            target,
            ..
        }) => assert_eq!(target, Target::journal(&st)),
        other => panic!("stale optimistic append: {other:?}"),
    }
    assert_eq!(
        s.append(entry(&st, 2, 2).expecting(1))
            .await
            .unwrap()
            .entry
            .seq,
        2
    );
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().last_seq, 2);
}

/// Every query: ranges both ways with cursors, event-time windows (oldest and newest first)
/// with a cap and cursor, the
/// last entry at or before a time, first, last, by key, and the count.
pub async fn journal_queries(h: &Harness) {
    let s = &h.store;
    let st = stream("d", "ledger");
    assert!(s.journal_info(&st).await.unwrap().is_none());
    assert!(
        s.read_journal(&st, JournalQuery::Last)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    // Event times out of sequence order: 10, 20, ... but entry 5 happened first.
    let mut b = WriteBatch::new();
    for n in 1..=10u64 {
        let ev = if n == 5 { 1 } else { 10 * n as i64 };
        let mut a = entry(&st, ev, n);
        if n == 7 {
            a = a.with_key(Name::key("seven").unwrap());
        }
        b = b.append(a);
    }
    s.write(b).await.unwrap();
    let asc = s
        .read_journal(&st, JournalQuery::from_seq(3, 4))
        .await
        .unwrap();
    assert_eq!(seqs(&asc), [3, 4, 5, 6]);
    let asc2 = s
        .read_journal(&st, asc.next.clone().unwrap())
        .await
        .unwrap();
    assert_eq!(seqs(&asc2), [7, 8, 9, 10]);
    assert!(asc2.next.is_none());
    let desc = s
        .read_journal(
            &st,
            JournalQuery::Range {
                from: 2,
                to: 9,
                descending: true,
                limit: 5,
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(&desc), [9, 8, 7, 6, 5]);
    let desc2 = s.read_journal(&st, desc.next.unwrap()).await.unwrap();
    assert_eq!(seqs(&desc2), [4, 3, 2]);
    // Window [t(1), t(45)): entries 5 (t1), 1 (t10), 2, 3, 4 (t40), in event order.
    let w = s
        .read_journal(&st, JournalQuery::window(t(1), t(45), 3))
        .await
        .unwrap();
    assert_eq!(seqs(&w), [5, 1, 2]);
    assert!(w.truncated);
    let w2 = s.read_journal(&st, w.next.unwrap()).await.unwrap();
    assert_eq!(seqs(&w2), [3, 4]);
    assert!(!w2.truncated && w2.next.is_none());
    // The same window newest first: 4 (t40), 3, 2, then 1 (t10), 5 (t1) from the cursor.
    let n = s
        .read_journal(&st, JournalQuery::window_newest_first(t(1), t(45), 3))
        .await
        .unwrap();
    assert_eq!(seqs(&n), [4, 3, 2]);
    assert!(n.truncated);
    let n2 = s.read_journal(&st, n.next.unwrap()).await.unwrap();
    assert_eq!(seqs(&n2), [1, 5]);
    assert!(!n2.truncated && n2.next.is_none());
    // Bounds: the start is inclusive, the end exclusive; an empty stretch reads nothing.
    let one = JournalQuery::window_newest_first(t(20), t(21), 10);
    assert_eq!(seqs(&s.read_journal(&st, one).await.unwrap()), [2]);
    let none = JournalQuery::window_newest_first(t(2), t(10), 10);
    assert!(s.read_journal(&st, none).await.unwrap().entries.is_empty());
    let upto = JournalQuery::window_newest_first(t(0), t(20), 10);
    assert_eq!(seqs(&s.read_journal(&st, upto).await.unwrap()), [1, 5]);
    let at = s
        .read_journal(&st, JournalQuery::AtOrBefore(t(35)))
        .await
        .unwrap();
    assert_eq!(seqs(&at), [3]);
    assert!(
        s.read_journal(&st, JournalQuery::AtOrBefore(t(0)))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(
        seqs(&s.read_journal(&st, JournalQuery::First).await.unwrap()),
        [1]
    );
    assert_eq!(
        seqs(&s.read_journal(&st, JournalQuery::Last).await.unwrap()),
        [10]
    );
    assert_eq!(
        seqs(
            &s.read_journal(&st, JournalQuery::ByKey(Name::key("seven").unwrap()))
                .await
                .unwrap()
        ),
        [7]
    );
    assert!(
        s.read_journal(&st, JournalQuery::ByKey(Name::key("none").unwrap()))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().count, 10);
    assert!(matches!(
        s.read_journal(&st, JournalQuery::from_seq(1, 0)).await,
        Err(Error::InvalidInput { .. })
    ));
    // Other streams and deployments are separate.
    assert!(
        s.journal_info(&stream("d", "ledger2"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.journal_info(&stream("e", "ledger"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Truncation keeps the rest verifiable from its anchor, and appends continue the chain.
pub async fn journal_truncation_keeps_the_chain(h: &Harness) {
    let s = &h.store;
    let st = stream("d", "ledger");
    append_all(
        &**s,
        (1..=10).map(|n| entry(&st, 10 * n as i64, n)).collect(),
    )
    .await;
    assert_eq!(
        s.truncate_journal(&st, TruncateBefore::Seq(4))
            .await
            .unwrap(),
        3
    );
    let info = s.journal_info(&st).await.unwrap().unwrap();
    assert_eq!((info.first_seq, info.last_seq, info.count), (4, 10, 7));
    assert_eq!(
        seqs(
            &s.read_journal(&st, JournalQuery::from_seq(1, 100))
                .await
                .unwrap()
        ),
        (4..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&s.read_journal(&st, JournalQuery::First).await.unwrap()),
        [4]
    );
    // By event time: entries 4..=6 have event times 40..60 < 65.
    assert_eq!(
        s.truncate_journal(&st, TruncateBefore::EventTime(t(65)))
            .await
            .unwrap(),
        3
    );
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().first_seq, 7);
    assert_eq!(
        s.truncate_journal(&st, TruncateBefore::Seq(2))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.append(entry(&st, 110, 11)).await.unwrap().entry.seq, 11);
    let all = s
        .read_journal(&st, JournalQuery::from_seq(1, 100))
        .await
        .unwrap();
    assert_eq!(seqs(&all), [7, 8, 9, 10, 11]);
    // Everything truncated: the next append still links to the last hash.
    assert_eq!(
        s.truncate_journal(&st, TruncateBefore::Seq(u64::MAX))
            .await
            .unwrap(),
        5
    );
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().count, 0);
    assert_eq!(s.append(entry(&st, 120, 12)).await.unwrap().entry.seq, 12);
    assert_eq!(
        seqs(
            &s.read_journal(&st, JournalQuery::from_seq(1, 100))
                .await
                .unwrap()
        ),
        [12]
    );
}

/// Reads as of a time: the newest retained version committed at or before it, `None` before
/// the record existed, `NotRetained` when retention pruned that far.
pub async fn time_travel(h: &Harness) {
    let s = &h.store;
    let id = DeploymentId::new("d").unwrap();
    let a = doc("d", "c", "k");
    let st = stream("d", "ledger");
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    let mut marks = Vec::new();
    for n in 1..=4u64 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        s.write(
            WriteBatch::new()
                .put(StateWrite::overwrite(id.clone(), obj(json!({"n": n}))))
                .document(DocWrite::new(
                    a.clone(),
                    PutMode::Overwrite,
                    obj(json!({"n": n})),
                ))
                .append(entry(&st, n as i64, n))
                .with_retention(Retention::KeepAll),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        marks.push(Utc::now());
    }
    assert!(s.get_as_of(&id, before).await.unwrap().is_none());
    assert!(s.document_as_of(&a, before).await.unwrap().is_none());
    assert!(
        s.journal_as_of(&st, before, 100)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    for (i, m) in marks.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(s.get_as_of(&id, *m).await.unwrap().unwrap().version, n);
        assert_eq!(
            s.document_as_of(&a, *m).await.unwrap().unwrap().value["n"],
            json!(n)
        );
        assert_eq!(
            seqs(&s.journal_as_of(&st, *m, 100).await.unwrap()),
            (1..=n).collect::<Vec<_>>()
        );
    }
    // Prune to the newest two versions: as of the first mark is no longer answerable.
    let keep1 = Retention::KeepLast(NonZeroU32::new(1).unwrap());
    s.write(
        WriteBatch::new()
            .put(StateWrite::overwrite(id.clone(), obj(json!({"n": 5}))))
            .document(DocWrite::new(
                a.clone(),
                PutMode::Overwrite,
                obj(json!({"n": 5})),
            ))
            .with_retention(keep1),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.get_as_of(&id, marks[0]).await,
        Err(Error::NotRetained {
            target: Target::State,
            ..
        })
    ));
    assert!(matches!(
        s.document_as_of(&a, marks[0]).await,
        Err(Error::NotRetained { .. })
    ));
    assert!(
        s.get_as_of(&id, before).await.is_err(),
        "before the first retained version is unknown"
    );
    s.truncate_journal(&st, TruncateBefore::Seq(3))
        .await
        .unwrap();
    assert!(matches!(
        s.journal_as_of(&st, marks[0], 100).await,
        Err(Error::NotRetained { .. })
    ));
    assert_eq!(
        seqs(&s.journal_as_of(&st, marks[3], 100).await.unwrap()),
        [3, 4]
    );
}

/// A batch of states, documents and appends to several deployments commits wholly; one
/// failing member (anywhere in it) leaves nothing of it.
pub async fn mixed_batch_is_atomic(h: &Harness) {
    let s = &h.store;
    let (d1, d2) = (
        DeploymentId::new("d1").unwrap(),
        DeploymentId::new("d2").unwrap(),
    );
    let st = stream("d1", "ledger");
    let tick = |n: u64| {
        WriteBatch::new()
            .put(StateWrite::overwrite(d1.clone(), obj(json!({"tick": n}))))
            .put(StateWrite::overwrite(d2.clone(), obj(json!({"tick": n}))))
            .document(DocWrite::new(
                doc("d1", "positions", "book"),
                PutMode::Overwrite,
                obj(json!({"tick": n})),
            ))
            .document(DocWrite::new(
                doc("d2", "snapshots", &format!("s{n}")),
                PutMode::Create,
                obj(json!({"tick": n})),
            ))
            .append(entry(&st, 1, n))
            .append(entry(&st, 2, n))
            .append(entry(&stream("d2", "ledger"), 3, n))
    };
    let c = s.write(tick(1)).await.unwrap();
    assert_eq!(
        (c.states.len(), c.documents.len(), c.entries.len()),
        (2, 2, 3)
    );
    assert_eq!(
        c.entries.iter().map(|e| e.entry.seq).collect::<Vec<_>>(),
        [1, 2, 1]
    );
    // The failing member is last: everything before it must be rolled back too.
    let failing = [
        tick(2).document(DocWrite::new(
            doc("d1", "positions", "book"),
            PutMode::Create,
            obj(json!({})),
        )),
        tick(2).append(entry(&st, 9, 9).expecting(0)),
        tick(2).put(StateWrite::update(
            DeploymentId::new("d3").unwrap(),
            7,
            obj(json!({})),
        )),
        tick(1),
    ];
    for (i, b) in failing.into_iter().enumerate() {
        let e = s.write(b).await.unwrap_err();
        assert!(e.is_not_applied(), "case {i}: {e}");
        assert_eq!(
            s.get(&d1).await.unwrap().unwrap().version,
            1,
            "case {i}: state written"
        );
        assert_eq!(
            s.journal_info(&st).await.unwrap().unwrap().last_seq,
            2,
            "case {i}: entries written"
        );
        assert!(
            s.get_document(&doc("d2", "snapshots", "s2"))
                .await
                .unwrap()
                .is_none(),
            "case {i}"
        );
    }
    let c = s.write(tick(2)).await.unwrap();
    assert_eq!(
        c.entries.iter().map(|e| e.entry.seq).collect::<Vec<_>>(),
        [3, 4, 2]
    );
    // A batch of only replayed keys writes nothing and succeeds.
    let k = Name::key("once").unwrap();
    s.append(entry(&st, 5, 5).with_key(k.clone()))
        .await
        .unwrap();
    let r = s
        .write(WriteBatch::new().append(entry(&st, 5, 5).with_key(k)))
        .await
        .unwrap();
    assert!(!r.entries[0].fresh);
    assert_eq!(s.journal_info(&st).await.unwrap().unwrap().last_seq, 5);
}

/// A guard (`Expect`) writes nothing and fails its whole batch when the document is not at
/// the version it names (or, for `None`, exists): conflict or already-exists, naming it.
pub async fn batch_guards_a_document(h: &Harness) {
    let s = &h.store;
    let row = doc("d", "registry", "r1");
    let ev = stream("d", "events");
    let first = s
        .write(WriteBatch::new().document(DocWrite::new(
            row.clone(),
            PutMode::Create,
            obj(json!({"status": "open"})),
        )))
        .await
        .unwrap();
    assert_eq!(first.documents[0].version, 1);
    // Guarded on the stored version: the append commits and the guarded row is untouched.
    let ok = s
        .write(
            WriteBatch::new()
                .expect(row.clone(), Some(1))
                .append(entry(&ev, 1, 1)),
        )
        .await
        .unwrap();
    assert_eq!(ok.entries.len(), 1);
    assert!(ok.documents.is_empty());
    assert_eq!(s.get_document(&row).await.unwrap().unwrap().version, 1);
    // The row moves on: a batch guarded on the old version writes nothing.
    s.write(WriteBatch::new().document(DocWrite::new(
        row.clone(),
        PutMode::Update { expected: 1 },
        obj(json!({"status": "closed"})),
    )))
    .await
    .unwrap();
    let stale = WriteBatch::new()
        .append(entry(&ev, 2, 2))
        .expect(row.clone(), Some(1));
    match s.write(stale).await.unwrap_err() {
        Error::Conflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (1, Some(2))),
        e => panic!("expected a conflict, got {e}"),
    }
    // Absent required, present found; present required, absent found.
    let taken = WriteBatch::new()
        .append(entry(&ev, 3, 3))
        .expect(row.clone(), None);
    assert!(matches!(
        s.write(taken).await.unwrap_err(),
        Error::AlreadyExists { actual: 2, .. }
    ));
    let missing = doc("d", "registry", "r2");
    let gone = WriteBatch::new()
        .append(entry(&ev, 4, 4))
        .expect(missing.clone(), Some(1));
    assert!(matches!(
        s.write(gone).await.unwrap_err(),
        Error::Conflict { actual: None, .. }
    ));
    assert_eq!(s.journal_info(&ev).await.unwrap().unwrap().last_seq, 1);
    let free = WriteBatch::new()
        .expect(missing, None)
        .append(entry(&ev, 5, 5));
    assert_eq!(s.write(free).await.unwrap().entries[0].entry.seq, 2);
    // A guard and a write of one document in one batch is ambiguous: refused.
    let twice = WriteBatch::new()
        .expect(row.clone(), Some(2))
        .document(DocWrite::new(row, PutMode::Overwrite, obj(json!({}))));
    assert!(matches!(
        s.write(twice).await.unwrap_err(),
        Error::InvalidInput { .. }
    ));
}

/// A tail sees every entry in order, waiting for new ones without polling.
pub async fn tail_follows_a_journal(h: &Harness) {
    let st = stream("d", "events");
    h.store.append(entry(&st, 0, 0)).await.unwrap();
    let mut tail = JournalTail::new(h.store.clone(), st.clone(), 1);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 51 {
            let batch = tail.next_batch(7).await.unwrap();
            assert!(!batch.is_empty());
            got.extend(batch.into_iter().map(|e| e.seq));
        }
        got
    });
    let writer = h.store.clone();
    for n in 1..=50u64 {
        writer.append(entry(&st, n as i64, n)).await.unwrap();
        if n % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("tail stalled")
        .unwrap();
    assert_eq!(got, (1..=51).collect::<Vec<_>>());
    let _: Arc<dyn StateStore> = h.store.clone();
}

/// The catalog of a deployment: its collections (one seek each, past any number of keys) and
/// its journals, in byte order with paging; neighbours in other deployments (including one
/// whose id extends this one's) left out, and a collection whose last document was deleted gone.
pub async fn catalog_lists_collections_and_streams(h: &Harness) {
    let s = &h.store;
    let mut b = WriteBatch::new();
    for (d, c, n) in [
        ("d", "a", 50),
        ("d", "a.b", 1),
        ("d", "a-", 2),
        ("d", "b", 3),
        ("d", "gone", 1),
        ("dd", "a0", 1),
        ("c", "z", 1),
    ] {
        for i in 0..n {
            b = b.document(DocWrite::new(
                doc(d, c, &format!("k{i:03}")),
                PutMode::Create,
                obj(json!({"i": i})),
            ));
        }
    }
    for (d, st) in [
        ("d", "s1"),
        ("d", "s0"),
        ("d", "s.x"),
        ("dd", "s9"),
        ("c", "s"),
    ] {
        b = b.append(entry(&stream(d, st), 1, 1));
    }
    s.write(b).await.unwrap();
    assert!(
        s.delete_document(&doc("d", "gone", "k000"), None)
            .await
            .unwrap()
    );

    let id = DeploymentId::new("d").unwrap();
    let names = |v: Vec<Name>| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let all = names(s.collections(&id, None, 100).await.unwrap());
    assert_eq!(all, ["a", "a-", "a.b", "b"]);
    let first = s.collections(&id, None, 2).await.unwrap();
    assert_eq!(names(first.clone()), ["a", "a-"]);
    let rest = s.collections(&id, first.last(), 10).await.unwrap();
    assert_eq!(names(rest), ["a.b", "b"]);
    assert!(s.collections(&id, None, 0).await.unwrap().is_empty());

    let all = names(s.streams(&id, None, 100).await.unwrap());
    assert_eq!(all, ["s.x", "s0", "s1"]);
    let first = s.streams(&id, None, 1).await.unwrap();
    assert_eq!(names(first.clone()), ["s.x"]);
    let rest = s.streams(&id, first.last(), 10).await.unwrap();
    assert_eq!(names(rest), ["s0", "s1"]);

    let nobody = DeploymentId::new("nobody").unwrap();
    assert!(s.collections(&nobody, None, 10).await.unwrap().is_empty());
    assert!(s.streams(&nobody, None, 10).await.unwrap().is_empty());
}

/// 64 concurrent point reads (a state, a document, an absent id) all return the one committed
/// record: however a backend runs point reads (on the calling task or on a pool), they agree
/// under load.
pub async fn concurrent_point_reads_agree(h: &Harness) {
    point_reads_agree_on(h.store.clone()).await;
}

/// The body of [`concurrent_point_reads_agree`], for a store a backend opened with its own
/// read settings (e.g. inline reads off, one pooled reader).
pub async fn point_reads_agree_on(s: Arc<dyn StateStore>) {
    let d = DeploymentId::new("reads").expect("valid id");
    let a = doc("reads", "book", "p");
    if s.get(&d).await.unwrap().is_none() {
        s.put(
            StateWrite::create(d.clone(), obj(json!({"n": 1}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap();
        s.put_document(DocWrite::new(
            a.clone(),
            PutMode::Create,
            obj(json!({"q": 2})),
        ))
        .await
        .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (s, d, a) = (s.clone(), d.clone(), a.clone());
        tasks.spawn(async move {
            let st = s.get(&d).await.unwrap().expect("stored state");
            assert_eq!((st.version, st.state), (1, obj(json!({"n": 1}))));
            let d2 = s.get_document(&a).await.unwrap().expect("stored document");
            assert_eq!((d2.version, d2.value), (1, obj(json!({"q": 2}))));
            let absent = DeploymentId::new("reads-absent").expect("valid id");
            assert!(s.get(&absent).await.unwrap().is_none(), "absent id");
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("a reader panicked");
    }
}
