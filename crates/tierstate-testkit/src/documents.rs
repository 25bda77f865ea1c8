//! Checks of documents: compare-and-swap, listing and key ranges, the catalog, and point reads
//! that agree under concurrency.

use crate::support::*;

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

/// A document write may keep its own number of versions, whatever its batch keeps: the
/// others in the batch keep the batch's, and a pruned version is gone from every read.
pub async fn a_document_keeps_its_own_retention(h: &Harness) {
    let s = &h.store;
    let keep1 = Retention::KeepLast(NonZeroU32::new(1).unwrap());
    let (one, all) = (doc("d", "orders.intents", "q1"), doc("d", "notes", "n1"));
    for n in 1..=20 {
        let value = obj(json!({ "n": n }));
        s.write(
            WriteBatch::new()
                .document(
                    DocWrite::new(one.clone(), PutMode::Overwrite, value.clone())
                        .with_retention(keep1),
                )
                .document(DocWrite::new(all.clone(), PutMode::Overwrite, value))
                .with_retention(Retention::KeepAll),
        )
        .await
        .unwrap();
    }
    let versions =
        |d: Vec<tierstate_core::Document>| d.iter().map(|d| d.version).collect::<Vec<_>>();
    assert_eq!(versions(s.document_history(&one, 100).await.unwrap()), [20]);
    assert_eq!(s.document_history(&all, 100).await.unwrap().len(), 20);
    assert!(s.document_version(&one, 19).await.unwrap().is_none());
    assert_eq!(
        s.document_version(&all, 1).await.unwrap().unwrap().value["n"],
        json!(1)
    );
    assert_eq!(
        s.get_document(&one).await.unwrap().unwrap().value["n"],
        json!(20)
    );
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
    assert!(h.inject(Fault::DocumentBody(damaged.clone())).await);
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

/// An ascending scan reads each document's current version however much history is kept
/// beside it (none, a few, more than a walk passes over, or a deleted and re-created one); a
/// damaged document is reported in place; and the stored rows a scan returns verify and
/// decode to the same documents.
pub async fn a_scan_reads_current_versions_whatever_the_history(h: &Harness) {
    let s = &h.store;
    let keys: Vec<String> = (0..30).map(|i| format!("h{i:03}")).collect();
    // Key i is written 1 + (i * 7) % 23 times, every version kept.
    for round in 0..23 {
        let mut b = WriteBatch::new().with_retention(Retention::KeepAll);
        for (i, k) in keys.iter().enumerate() {
            if round <= (i * 7) % 23 {
                let v = obj(json!({"k": k, "round": round}));
                b = b.document(DocWrite::new(doc("d", "hist", k), PutMode::Overwrite, v));
            }
        }
        s.write(b).await.unwrap();
    }
    for k in ["h004", "h011"] {
        s.delete_document(&doc("d", "hist", k), None).await.unwrap();
    }
    let again = obj(json!({"k": "h011", "round": 99}));
    s.put_document(DocWrite::new(
        doc("d", "hist", "h011"),
        PutMode::Create,
        again,
    ))
    .await
    .unwrap();
    let id = DeploymentId::new("d").unwrap();
    let coll = Name::collection("hist").unwrap();
    let mut expected = Vec::new();
    for k in &keys {
        if let Some(d) = s.get_document(&doc("d", "hist", k)).await.unwrap() {
            expected.push((k.clone(), d.version, d.value));
        }
    }
    assert_eq!(expected.len(), 29, "h004 deleted, h011 re-created");
    for (after, limit) in [
        (None, 100),
        (None, 7),
        (Some("h010"), 5),
        (Some("h004"), 100),
    ] {
        let range = KeyRange::after(after.map(|k| Name::key(k).unwrap()));
        let got: Vec<_> = s
            .scan_documents(&id, &coll, &range, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                let d = d.unwrap();
                (d.address.key.to_string(), d.version, d.value)
            })
            .collect();
        let want: Vec<_> = expected
            .iter()
            .filter(|(k, ..)| after.is_none_or(|a| k.as_str() > a))
            .take(limit)
            .cloned()
            .collect();
        assert_eq!(got, want, "scan after {after:?}, limit {limit}");
        let stored = s
            .scan_stored_documents(&id, &coll, &range, limit)
            .await
            .unwrap();
        assert_eq!(stored.len(), want.len());
        for (row, (k, version, value)) in stored.into_iter().zip(&want) {
            let row = row.unwrap();
            assert_eq!(
                (row.address.key.as_str(), row.version),
                (k.as_str(), *version)
            );
            let body = row.verified_body(tierstate_core::Tier::Warm).unwrap();
            let decoded: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).unwrap();
            assert_eq!(&decoded, value);
        }
    }
    let damaged = doc("d", "hist", "h020");
    assert!(h.inject(Fault::DocumentBody(damaged.clone())).await);
    let got = s
        .scan_documents(&id, &coll, &KeyRange::all(), 100)
        .await
        .unwrap();
    assert_eq!(got.len(), 29);
    for (d, (k, ..)) in got.iter().zip(&expected) {
        match d {
            Ok(d) => assert_eq!(d.address.key.as_str(), k),
            Err(Error::Integrity { target, .. }) => {
                assert_eq!(*target, Target::document(&damaged));
            }
            Err(e) => panic!("{k}: {e}"),
        }
    }
    assert_eq!(got.iter().filter(|d| d.is_err()).count(), 1);
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
