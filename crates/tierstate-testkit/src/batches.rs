//! Checks of batches: all members or none, across states, documents and journals, and guards.

use crate::support::*;

/// Every member of a batch commits, and the results come back in batch order.
pub async fn batch_commits_all(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("b"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    let batch = WriteBatch::new()
        .put(StateWrite::create(id("a"), obj(json!({"n": 10}))))
        .put(StateWrite::update(id("b"), 1, obj(json!({"n": 20}))))
        .put(StateWrite::overwrite(id("c"), obj(json!({"n": 30}))))
        .with_retention(KEEP_ALL);
    let out = s.commit(batch).await.unwrap();
    let got: Vec<(&str, u64)> = out
        .iter()
        .map(|d| (d.deployment_id.as_str(), d.version))
        .collect();
    assert_eq!(got, vec![("a", 1), ("b", 2), ("c", 1)]);
    for (name, n) in [("a", 10), ("b", 20), ("c", 30)] {
        assert_eq!(
            s.get(&id(name)).await.unwrap().unwrap().state,
            obj(json!({"n": n}))
        );
    }
    assert!(
        s.commit(WriteBatch::new()).await.unwrap().is_empty(),
        "empty batch commits nothing"
    );
}

/// One failing member leaves nothing of the batch written.
pub async fn batch_failing_member_writes_nothing(h: &Harness) {
    let s = &h.store;
    s.put(StateWrite::create(id("b"), obj(json!({"n": 1}))), KEEP_ALL)
        .await
        .unwrap();
    s.put(
        StateWrite::update(id("b"), 1, obj(json!({"n": 2}))),
        KEEP_ALL,
    )
    .await
    .unwrap();
    let batch = WriteBatch::new()
        .put(StateWrite::create(id("a"), obj(json!({"n": 10}))))
        .put(StateWrite::update(id("b"), 1, obj(json!({"n": 20}))))
        .put(StateWrite::create(id("c"), obj(json!({"n": 30}))));
    let err = s.commit(batch).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 1,
                actual: Some(2),
                ..
            }
        ),
        "got {err:?}"
    );
    assert!(
        s.get(&id("a")).await.unwrap().is_none(),
        "member before the failure was written"
    );
    assert!(
        s.get(&id("c")).await.unwrap().is_none(),
        "member after the failure was written"
    );
    let b = s.get(&id("b")).await.unwrap().unwrap();
    assert_eq!((b.version, b.state), (2, obj(json!({"n": 2}))));
    assert_eq!(s.history(&id("b"), 10).await.unwrap().len(), 2);
    // A create that collides fails the batch the same way.
    let batch = WriteBatch::new()
        .put(StateWrite::create(id("d"), obj(json!({}))))
        .put(StateWrite::create(id("b"), obj(json!({}))));
    assert!(matches!(
        s.commit(batch).await.unwrap_err(),
        Error::AlreadyExists { .. }
    ));
    assert!(s.get(&id("d")).await.unwrap().is_none());
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
