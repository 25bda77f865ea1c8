//! Checks of what a verifier and time travel rely on: every deployment holding any record, any
//! retained version by number, reads as of a time, audit reads that step over damaged or
//! missing entries and name each, reads by time and key that see a deleted neighbour, and the
//! engine's own consistency check.

use crate::support::*;

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

/// `deployments` lists every deployment with a state, a document or a journal (not only
/// those with a state, as `list` does), in byte order, paged, without tierstate's own.
pub async fn every_deployment_with_any_record_is_listed(h: &Harness) {
    let s = &h.store;
    s.put(
        StateWrite::create(id("b-state"), obj(json!({}))),
        Default::default(),
    )
    .await
    .unwrap();
    s.put_document(DocWrite::new(
        DocAddr::new("a-docs", "c", "k").unwrap(),
        PutMode::Create,
        obj(json!({"x": 1})),
    ))
    .await
    .unwrap();
    s.append(Append::new(
        StreamAddr::new("c-journal", "j").unwrap(),
        t(1),
        obj(json!({"x": 1})),
    ))
    .await
    .unwrap();
    // A deployment with all three is listed once.
    s.put(
        StateWrite::create(id("d-all"), obj(json!({}))),
        Default::default(),
    )
    .await
    .unwrap();
    s.put_document(DocWrite::new(
        DocAddr::new("d-all", "c", "k").unwrap(),
        PutMode::Create,
        obj(json!({})),
    ))
    .await
    .unwrap();
    s.append(Append::new(
        StreamAddr::new("d-all", "j").unwrap(),
        t(1),
        obj(json!({})),
    ))
    .await
    .unwrap();
    let all = s.deployments(None, 100).await.unwrap();
    let names: Vec<&str> = all.iter().map(DeploymentId::as_str).collect();
    assert_eq!(names, ["a-docs", "b-state", "c-journal", "d-all"]);
    let page = s.deployments(Some(&id("a-docs")), 2).await.unwrap();
    let names: Vec<&str> = page.iter().map(DeploymentId::as_str).collect();
    assert_eq!(names, ["b-state", "c-journal"]);
    assert!(
        s.deployments(Some(&id("d-all")), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // `list` still means deployments with a state.
    let listed = s.list(None, 100).await.unwrap();
    let names: Vec<&str> = listed.iter().map(DeploymentId::as_str).collect();
    assert_eq!(names, ["b-state", "d-all"]);
}

/// Any retained version of a document reads by number, verified; a damaged one is an
/// `Integrity` error naming it while the others still read.
pub async fn document_versions_read_by_number(h: &Harness) {
    let s = &h.store;
    let a = DocAddr::new("d", "c", "k").unwrap();
    for n in 1..=3 {
        s.put_document(DocWrite::new(
            a.clone(),
            PutMode::Overwrite,
            obj(json!({"n": n})),
        ))
        .await
        .unwrap();
    }
    for v in 1..=3u64 {
        let d = s.document_version(&a, v).await.unwrap().unwrap();
        assert_eq!((d.version, &d.value["n"]), (v, &json!(v)));
    }
    assert!(s.document_version(&a, 4).await.unwrap().is_none());
    assert!(s.document_version(&a, 0).await.unwrap().is_none());
    let other = DocAddr::new("d", "c", "none").unwrap();
    assert!(s.document_version(&other, 1).await.unwrap().is_none());
    if h.inject(Fault::DocumentBody(a.clone())).await {
        match s.document_version(&a, 3).await {
            Err(Error::Integrity { version: 3, .. }) => {}
            other => panic!("damaged version 3: {other:?}"),
        }
        assert_eq!(
            s.document_version(&a, 2).await.unwrap().unwrap().value["n"],
            2
        );
    }
}

/// An audit read walks a whole journal past damage: every damaged or missing entry is listed
/// once, by sequence number, and every intact one is returned.
pub async fn audit_reads_step_over_damage(h: &Harness) {
    let s = &h.store;
    for (i, damage) in [
        EntryDamage::Body(Flip::Middle),
        EntryDamage::Checksum(Flip::Middle),
        EntryDamage::Hash(Flip::Middle),
        EntryDamage::Delete,
    ]
    .into_iter()
    .enumerate()
    {
        let st = StreamAddr::new("d", &format!("a{i}")).unwrap();
        six(&**s, &st).await;
        for seq in [2, 5] {
            assert!(
                h.inject(Fault::Entry {
                    stream: st.clone(),
                    seq,
                    damage
                })
                .await,
                "{damage:?}: hook found nothing"
            );
        }
        let mut seen = Vec::new();
        let mut damaged = Vec::new();
        let mut q = Some(JournalQuery::Audit { from: 1, limit: 2 });
        while let Some(query) = q {
            let page = s.read_journal(&st, query).await.unwrap();
            seen.extend(page.entries.iter().map(|e| e.seq));
            damaged.extend(page.damage.iter().map(|d| d.seq));
            for d in &page.damage {
                assert!(d.what.contains(&format!("#{}", d.seq)), "{d:?}");
            }
            q = page.next;
        }
        assert_eq!(seen, [1, 3, 4, 6], "{damage:?}");
        assert_eq!(damaged, [2, 5], "{damage:?}");
    }
    // An intact journal: nothing listed.
    let st = StreamAddr::new("d", "clean").unwrap();
    six(&**s, &st).await;
    let page = s
        .read_journal(
            &st,
            JournalQuery::Audit {
                from: 1,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.entries.len(), 6);
    assert!(page.damage.is_empty() && page.next.is_none());
}

/// A deleted entry is found by reads by time and by key that return one of its neighbours,
/// the newest entry included (its successor is the head).
pub async fn reads_by_time_see_a_deleted_neighbour(h: &Harness) {
    let s = &h.store;
    for (i, gone) in [3u64, 6].into_iter().enumerate() {
        let st = StreamAddr::new("d", &format!("w{i}")).unwrap();
        six(&**s, &st).await;
        assert!(
            h.inject(Fault::Entry {
                stream: st.clone(),
                seq: gone,
                damage: EntryDamage::Delete
            })
            .await,
            "hook found nothing"
        );
        let mut queries = vec![
            JournalQuery::window(t(0), t(1_000), 100),
            JournalQuery::window_newest_first(t(0), t(1_000), 100),
            // From the neighbour after #3, and from the one before #6.
            JournalQuery::window(t(40), t(1_000), 1),
        ];
        if gone == 6 {
            // The newest page: its first entry's successor is gone, and the head says so.
            queries.push(JournalQuery::window_newest_first(t(0), t(1_000), 1));
            queries.push(JournalQuery::window(t(50), t(1_000), 1));
        }
        for q in queries {
            match s.read_journal(&st, q.clone()).await {
                Err(Error::Integrity { version, .. }) => assert_eq!(version, gone, "{q:?}"),
                other => panic!("#{gone} deleted, {q:?} read {other:?}"),
            }
        }
    }
}

/// The engine's own check runs (where the backend has one) and finds nothing wrong in a
/// healthy store.
pub async fn engine_check_passes_on_a_healthy_store(h: &Harness) {
    let s = &h.store;
    s.put(
        StateWrite::create(id("e"), obj(json!({"n": 1}))),
        Default::default(),
    )
    .await
    .unwrap();
    six(&**s, &StreamAddr::new("e", "j").unwrap()).await;
    match s.check_engine().await.unwrap() {
        None => {} // the backend has no engine check of its own (memory, PostgreSQL)
        Some(problems) => assert!(problems.is_empty(), "{problems:?}"),
    }
}
