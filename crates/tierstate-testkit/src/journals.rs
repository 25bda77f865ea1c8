//! Checks of journals: contiguous sequences, idempotency keys, optimistic appends, queries,
//! truncation that keeps the chain, and the tail that follows one.

use crate::support::*;

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
