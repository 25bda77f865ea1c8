//! Checks of damage: a damaged state, document or journal entry is an `Integrity` error naming
//! it, never returned, never cached; a scan reports it in its place.

use crate::support::*;

/// Damaged stored bytes are an `Integrity` error naming the deployment and the WARM tier,
/// from every read path; intact versions still load.
pub async fn corruption_is_detected_never_returned(h: &Harness) {
    let s = &h.store;
    s.put(
        StateWrite::create(id("a"), obj(json!({"cash": "1000.25", "n": 1}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    s.put(
        StateWrite::update(id("a"), 1, obj(json!({"cash": "999.75", "n": 2}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    assert!(
        h.damage_state(id("a"), None).await,
        "damage hook found no record"
    );
    let err = s.get(&id("a")).await.unwrap_err();
    match &err {
        Error::Integrity {
            deployment_id,
            target: tierstate_core::Target::State,
            tier: Tier::Warm,
            version: 2,
            expected,
            actual,
        } => {
            assert_eq!(deployment_id.as_str(), "a");
            assert_ne!(expected, actual);
        }
        other => panic!("expected Integrity for a v2 in WARM, got {other:?}"),
    }
    assert!(
        err.to_string().contains("WARM"),
        "message names the tier: {err}"
    );
    assert!(matches!(
        s.get_version(&id("a"), 2).await,
        Err(Error::Integrity { .. })
    ));
    assert!(matches!(
        s.history(&id("a"), 10).await,
        Err(Error::Integrity { .. })
    ));
    // The intact older version is still readable, so an operator can restore from it.
    let v1 = s.get_version(&id("a"), 1).await.unwrap().unwrap();
    assert_eq!(v1.state, obj(json!({"cash": "1000.25", "n": 1})));
    // A CAS write over the damaged head still works and heals the current version.
    let v3 = s
        .put(StateWrite::update(id("a"), 2, v1.state.clone()), KEEP_ALL)
        .await
        .unwrap();
    assert_eq!(s.get(&id("a")).await.unwrap().unwrap(), v3);
}

/// A bulk scan reports a damaged record as an error in its place and returns the others.
pub async fn scan_reports_damage_in_place(h: &Harness) {
    let s = &h.store;
    for name in ["a", "b", "c"] {
        s.put(
            StateWrite::create(id(name), obj(json!({"name": name}))),
            KEEP_ALL,
        )
        .await
        .unwrap();
    }
    assert!(h.damage_state(id("b"), None).await);
    let scanned = s.scan(None, 10).await.unwrap();
    assert_eq!(scanned.len(), 3);
    assert_eq!(scanned[0].as_ref().unwrap().deployment_id.as_str(), "a");
    assert!(
        matches!(&scanned[1], Err(Error::Integrity { deployment_id, .. }) if deployment_id.as_str() == "b")
    );
    assert_eq!(scanned[2].as_ref().unwrap().deployment_id.as_str(), "c");
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
        h.inject(Fault::DocumentBody(a.clone())).await,
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
    if h.inject(Fault::DocumentRowGone(b.clone())).await {
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
            h.inject(Fault::Entry {
                stream: st.clone(),
                seq: 3,
                damage
            })
            .await,
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

/// A state and a document above the compression threshold round-trip exactly, with the
/// checksum of their canonical JSON; damage inside the stored (compressed) bytes is still an
/// `Integrity` error naming the record.
pub async fn large_bodies_are_compressed_and_still_checked(h: &Harness) {
    let s = &h.store;
    let rows: Vec<Value> = (0..4000)
        .map(|i| json!({"symbol": format!("SYM{}", i % 40), "qty": format!("{i}.125"), "open": i % 3 == 0}))
        .collect();
    let state = obj(json!({"positions": rows, "cash": "1000000.000000000000000001"}));
    let canonical = canonical_json(&state).unwrap();
    assert!(canonical.len() > tierstate_core::compress::DEFAULT_THRESHOLD * 4);
    let done = s
        .put(StateWrite::create(id("big"), state.clone()), KEEP_ALL)
        .await
        .unwrap();
    assert_eq!(
        done.checksum,
        Checksum::of(&canonical),
        "over the canonical JSON"
    );
    let back = s.get(&id("big")).await.unwrap().unwrap();
    assert_eq!(
        (back.state.clone(), back.checksum),
        (state.clone(), done.checksum)
    );
    s.put(StateWrite::update(id("big"), 1, state.clone()), KEEP_ALL)
        .await
        .unwrap();

    let a = doc("big", "books", "main");
    let d = s
        .put_document(DocWrite::new(a.clone(), PutMode::Create, state.clone()))
        .await
        .unwrap();
    assert_eq!(s.get_document(&a).await.unwrap().unwrap().value, state);
    assert_eq!(d.version, 1);

    // A bit flipped in the middle of the stored bytes: the frame fails or the checksum does.
    assert!(
        h.inject(Fault::StateBytes {
            id: id("big"),
            version: Some(2),
            offset: 500,
            mask: 0x20,
        })
        .await
    );
    assert!(
        matches!(
            s.get(&id("big")).await,
            Err(Error::Integrity { version: 2, .. })
        ),
        "damaged compressed state"
    );
    assert_eq!(
        s.get_version(&id("big"), 1).await.unwrap().unwrap().state,
        state,
        "the intact version still loads"
    );
    assert!(h.inject(Fault::DocumentBody(a.clone())).await);
    assert!(matches!(
        s.get_document(&a).await,
        Err(Error::Integrity { version: 1, .. })
    ));
}
