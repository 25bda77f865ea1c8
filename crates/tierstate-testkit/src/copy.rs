//! Checks of the restore primitive through a logical copy: every record arrives with its own
//! version numbers, times, checksums and chain hashes, and the copy goes on as the original.

use tierstate_core::InMemoryStore;
use tierstate_core::copy::copy_all;

use crate::support::*;

/// Fills `s` with the shapes a copy must carry: a state with pruned versions, documents with
/// history (one removed), a journal with idempotency keys, and a truncated journal.
async fn fill(s: &dyn StateStore) {
    crate::write_versions(s, &id("a"), 1..=40, keep(32)).await;
    crate::write_versions(s, &id("b"), 1..=3, KEEP_ALL).await;
    for n in 1..=5 {
        for k in ["k1", "k2", "gone"] {
            s.put_document(DocWrite::new(
                doc("a", "orders", k),
                PutMode::Overwrite,
                obj(json!({ "n": n, "big": "x".repeat(if k == "k2" { 20_000 } else { 1 }) })),
            ))
            .await
            .unwrap();
        }
    }
    s.delete_document(&doc("a", "orders", "gone"), None)
        .await
        .unwrap();
    let fills = stream("a", "fills");
    for n in 1..=25u64 {
        let mut a = Append::new(
            fills.clone(),
            Utc.timestamp_opt(1_700_000_000 + n as i64, 0).unwrap(),
            obj(json!({ "n": n })),
        );
        if n % 5 == 0 {
            a = a.with_key(Name::key(format!("key-{n}")).unwrap());
        }
        s.append(a).await.unwrap();
    }
    let cut = stream("c", "ticks");
    for n in 1..=10 {
        s.append(Append::new(cut.clone(), Utc::now(), obj(json!({ "n": n }))))
            .await
            .unwrap();
    }
    s.truncate_journal(&cut, TruncateBefore::Seq(7))
        .await
        .unwrap();
}

fn stream(d: &str, s: &str) -> StreamAddr {
    StreamAddr {
        deployment_id: id(d),
        stream: Name::stream(s).unwrap(),
    }
}

/// Everything `s` holds, as comparable text: every retained version and entry with its
/// numbers, times and hashes.
async fn dump(s: &dyn StateStore) -> Vec<String> {
    let mut out = Vec::new();
    for d in s.deployments(None, 100).await.unwrap() {
        for v in s.history(&d, usize::MAX).await.unwrap() {
            out.push(format!(
                "{d} state v{} {} {} {} {}",
                v.version, v.checksum, v.created_at, v.updated_at, v.schema_version
            ));
        }
        for c in s.collections(&d, None, 100).await.unwrap() {
            for doc in s.list_documents(&d, &c, None, 100).await.unwrap() {
                let doc = doc.unwrap();
                for v in s.document_history(&doc.address, usize::MAX).await.unwrap() {
                    out.push(format!(
                        "{} v{} {} {} {}",
                        v.address, v.version, v.checksum, v.created_at, v.updated_at
                    ));
                }
            }
        }
        for st in s.streams(&d, None, 100).await.unwrap() {
            let addr = StreamAddr {
                deployment_id: d.clone(),
                stream: st,
            };
            out.push(format!("{addr} {:?}", s.journal_info(&addr).await.unwrap()));
            let page = s
                .read_journal(&addr, JournalQuery::from_seq(0, 1_000))
                .await
                .unwrap();
            for e in page.entries {
                out.push(format!(
                    "{addr} #{} {:?} {} {} {} {} {}",
                    e.seq, e.key, e.event_time, e.commit_time, e.checksum, e.prev_hash, e.hash
                ));
            }
        }
    }
    out
}

/// A copy into this store and back out of it holds every record as the original does; the
/// copy takes new writes where the original would (next version, next linked entry); a store
/// holding records is refused as a destination.
pub async fn a_copy_holds_every_record_as_the_original(h: &Harness) {
    let original = InMemoryStore::new();
    fill(&original).await;
    let want = dump(&original).await;
    assert!(want.len() > 60, "{want:#?}");
    let copied = copy_all(&original, &*h.store, |_| {}).await.unwrap();
    assert_eq!(
        (copied.deployments, copied.states, copied.documents),
        (3, 35, 10)
    );
    assert_eq!((copied.entries, copied.journals), (29, 2));
    assert_eq!(
        dump(&*h.store).await,
        want,
        "copied into {}",
        h.store.backend()
    );
    // And out again, through this backend's reads.
    let back = InMemoryStore::new();
    copy_all(&*h.store, &back, |_| {}).await.unwrap();
    assert_eq!(
        dump(&back).await,
        want,
        "copied out of {}",
        h.store.backend()
    );
    // The copy goes on: the next version, a key already used, the next linked entry.
    let s = &h.store;
    crate::write_versions(&**s, &id("a"), 41..=41, keep(32)).await;
    assert_eq!(s.history(&id("a"), 100).await.unwrap().len(), 32);
    let fills = stream("a", "fills");
    let again = Append::new(fills.clone(), Utc::now(), obj(json!({ "n": 5 })))
        .with_key(Name::key("key-5").unwrap());
    assert!(
        !s.append(again).await.unwrap().fresh,
        "idempotency keys copied"
    );
    let next = s
        .append(Append::new(
            fills.clone(),
            Utc::now(),
            obj(json!({ "n": 26 })),
        ))
        .await
        .unwrap();
    assert_eq!(next.entry.seq, 26);
    let all = s
        .read_journal(&fills, JournalQuery::from_seq(0, 100))
        .await
        .unwrap();
    assert_eq!(all.entries.len(), 26, "every link verified on read");
    let cut = stream("c", "ticks");
    s.append(Append::new(
        cut.clone(),
        Utc::now(),
        obj(json!({ "n": 11 })),
    ))
    .await
    .unwrap();
    let info = s.journal_info(&cut).await.unwrap().unwrap();
    assert_eq!((info.first_seq, info.last_seq, info.count), (7, 11, 5));
    s.read_journal(&cut, JournalQuery::from_seq(0, 100))
        .await
        .unwrap();
    // A destination holding records is refused, and nothing is written to it.
    let before = dump(&**s).await;
    let err = copy_all(&original, &**s, |_| {}).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("empty"),
        "{err}"
    );
    assert_eq!(dump(&**s).await, before);
}
