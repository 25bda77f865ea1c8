//! redb-specific behaviour: one process per file, format version, permissions, reopen.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;
use tierstate_core::{BackendErrorKind, DeploymentId, Error, Retention, StateStore, StateWrite};
use tierstate_redb::{FORMAT_VERSION, RedbConfig, RedbDurability, RedbStore};

fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).unwrap()
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn second_open_is_a_typed_locked_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.redb");
    let first = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
    let err = RedbStore::open(RedbConfig::new(&path)).await.unwrap_err();
    match &err {
        Error::Backend {
            backend: "redb",
            kind: BackendErrorKind::Locked,
            message,
            ..
        } => {
            assert!(message.contains("another process"), "{message}")
        }
        other => panic!("expected a Locked error, got {other:?}"),
    }
    assert!(!err.is_retryable());
    drop(first);
    RedbStore::open(RedbConfig::new(&path))
        .await
        .expect("opens once the holder is gone");
}

#[tokio::test]
async fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.redb");
    drop(RedbStore::open(RedbConfig::new(&path)).await.unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u32>::new("tierstate_meta"))
                .unwrap();
            meta.insert("format_version", FORMAT_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = RedbStore::open(RedbConfig::new(&path)).await.unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { backend: "redb", found, .. } if found == FORMAT_VERSION + 1),
        "{err:?}"
    );
}

/// Pruned versions leave reads at once and the file in runs of 16: after 100 writes keeping
/// 4, history is the 4 newest, and between 4 and 4 + 16 rows of the deployment are on disk.
#[tokio::test]
async fn pruned_versions_are_removed_in_runs() {
    use redb::ReadableDatabase;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    let store = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
    let keep4 = Retention::KeepLast(std::num::NonZeroU32::new(4).unwrap());
    tierstate_testkit::write_versions(&store, &id("a"), 1..=100, keep4).await;
    let kept: Vec<u64> = store
        .history(&id("a"), 100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.version)
        .collect();
    assert_eq!(kept, vec![100, 99, 98, 97]);
    assert!(store.get_version(&id("a"), 96).await.unwrap().is_none());
    store.close().await;
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let versions = txn
        .open_table(
            redb::TableDefinition::<(&str, u64), (u32, i64, &[u8], &[u8])>::new("ts_version"),
        )
        .unwrap();
    let on_disk = versions.range(("a", 0)..=("a", u64::MAX)).unwrap().count();
    assert!(
        (4..=4 + 16).contains(&on_disk),
        "{on_disk} rows on disk for 4 kept"
    );
}

/// Concurrent writers: every write is committed once, in a group on the writer thread or alone
/// on its caller's, and the store's group stats say which.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_stats_count_every_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        RedbStore::open(RedbConfig::new(dir.path().join("g.redb")))
            .await
            .unwrap(),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let d = id(&format!("w{w}"));
            tierstate_testkit::write_versions(&*store, &d, 1..=50, Retention::DEFAULT).await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let stats = store.group_stats();
    assert_eq!(stats.grouped + stats.inline, 8 * 50, "{stats:?}");
    assert!(stats.groups <= stats.grouped, "{stats:?}");
    for w in 0..8 {
        let head = store.get(&id(&format!("w{w}"))).await.unwrap().unwrap();
        assert_eq!(head.version, 50);
    }
}

#[tokio::test]
async fn new_files_are_private_and_reopen_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    {
        let s = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
        s.put(
            StateWrite::create(id("a"), obj(json!({"n": 1}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap();
        s.put(
            StateWrite::update(id("a"), 1, obj(json!({"n": 2}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap();
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let s = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
    let d = s.get(&id("a")).await.unwrap().unwrap();
    assert_eq!((d.version, d.state), (2, obj(json!({"n": 2}))));
}

#[tokio::test]
async fn non_redb_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    std::fs::write(&path, vec![7u8; 10_000]).unwrap();
    let err = RedbStore::open(RedbConfig::new(&path)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redb",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn fast_mode_still_reads_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(
        RedbConfig::new(dir.path().join("f.redb")).durability(RedbDurability::None),
    )
    .await
    .unwrap();
    s.put(
        StateWrite::create(id("a"), obj(json!({}))),
        Retention::DEFAULT,
    )
    .await
    .unwrap();
    assert_eq!(s.get(&id("a")).await.unwrap().unwrap().version, 1);
}

fn layout(path: &std::path::Path) -> String {
    use redb::{ReadableDatabase, TableHandle};
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let mut names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_owned())
        .collect();
    names.sort();
    let meta = txn
        .open_table(redb::TableDefinition::<&str, u32>::new("tierstate_meta"))
        .unwrap();
    let format = meta.get("format_version").unwrap().unwrap().value();
    format!("format_version: {format}\ntables: {names:?}\n")
}

/// The redb layout of every format as a reviewed snapshot: format 1 from a fixture, the
/// current one from a new file (the types of each table are in `tables.rs`, whose doc comment
/// the snapshot's table list must match).
#[tokio::test]
async fn format_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v1.redb");
    tierstate_redb::create_format_1(&old, &[]).unwrap();
    insta::assert_snapshot!("redb_format_v1", layout(&old));
    let path = dir.path().join("s.redb");
    drop(RedbStore::open(RedbConfig::new(&path)).await.unwrap());
    assert!(layout(&path).starts_with(&format!("format_version: {FORMAT_VERSION}\n")));
    insta::assert_snapshot!("redb_format_current", layout(&path));
}

/// A format-1 file with data upgrades to the current format on open, in one transaction, data
/// intact:
/// the heads are copied with their current version's commit time, the old table is gone, and
/// the new record kinds work. The dry run lists the step first and changes nothing.
#[tokio::test]
async fn format_1_fixture_upgrades_with_data_intact() {
    use tierstate_core::{Checksum, canonical_json};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    let bodies: Vec<Vec<u8>> = (1..=3)
        .map(|n| canonical_json(&obj(serde_json::json!({"n": n}))).unwrap())
        .collect();
    let sums: Vec<String> = bodies.iter().map(|b| Checksum::of(b).to_hex()).collect();
    let t0 = 1_700_000_000_000_000i64;
    tierstate_redb::create_format_1(
        &path,
        &[
            ("a", 1, &bodies[0], &sums[0], t0, t0),
            ("b", 2, &bodies[1], &sums[1], t0, t0 + 5_000_000),
            ("c", 1, &bodies[2], &sums[2], t0, t0 + 1),
        ],
    )
    .unwrap();
    let (found, steps) = tierstate_redb::pending_steps(&path).unwrap();
    assert_eq!(
        (found, steps.iter().map(|s| s.0).collect::<Vec<_>>()),
        (Some(1), vec![2, 3])
    );
    assert_eq!(
        tierstate_redb::pending_steps(&path).unwrap().0,
        Some(1),
        "a dry run changes nothing"
    );
    let store = RedbStore::open(RedbConfig::new(&path)).await.unwrap();
    for (name, v, n) in [("a", 1, 1), ("b", 2, 2), ("c", 1, 3)] {
        let d = store.get(&id(name)).await.unwrap().unwrap();
        assert_eq!((d.version, d.state), (v, obj(serde_json::json!({"n": n}))));
    }
    // The copied head carries the current version's commit time: as of just before it, b
    // was at an older (unretained) version; as of it, at v2.
    let b_at = chrono::DateTime::from_timestamp_micros(t0 + 5_000_000).unwrap();
    assert_eq!(
        store
            .get_as_of(&id("b"), b_at)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert!(matches!(
        store
            .get_as_of(&id("b"), b_at - chrono::Duration::microseconds(1))
            .await,
        Err(Error::NotRetained { .. })
    ));
    let ledger = tierstate_core::StreamAddr::new("a", "ledger").unwrap();
    store
        .write(
            tierstate_core::WriteBatch::new()
                .put(StateWrite::update(
                    id("a"),
                    1,
                    obj(serde_json::json!({"n": 10})),
                ))
                .append(tierstate_core::Append::new(
                    ledger.clone(),
                    chrono::Utc::now(),
                    obj(serde_json::json!({"x": 1})),
                )),
        )
        .await
        .unwrap();
    assert_eq!(store.journal_info(&ledger).await.unwrap().unwrap().count, 1);
    drop(store);
    let (found, steps) = tierstate_redb::pending_steps(&path).unwrap();
    assert_eq!((found, steps.len()), (Some(FORMAT_VERSION), 0));
    assert_eq!(layout(&path), {
        let fresh = dir.path().join("fresh.redb");
        drop(RedbStore::open(RedbConfig::new(&fresh)).await.unwrap());
        layout(&fresh)
    });
}

/// Point reads on the calling task and on the blocking pool both pass the shared check of
/// concurrent point reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_agree_inline_and_pooled_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    for inline in [true, false] {
        let store = RedbStore::open(RedbConfig::new(&path).inline_reads(inline))
            .await
            .unwrap();
        tierstate_testkit::checks::point_reads_agree_on(std::sync::Arc::new(store.clone())).await;
        store.close().await;
    }
}

/// A backup taken while a writer commits holds everything acknowledged before it began —
/// states, documents and journals with their chains — and opens as a store of its own; an
/// existing destination is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_a_writer_commits_holds_everything_acknowledged_before_it() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use tierstate_core::{
        Append, DocAddr, DocWrite, JournalQuery, PutMode, StreamAddr, WriteBatch,
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        RedbStore::open(RedbConfig::new(dir.path().join("src.redb")))
            .await
            .unwrap(),
    );
    let doc = DocAddr::new("w", "books", "main").unwrap();
    let stream = StreamAddr::new("w", "fills").unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acked, stop) = (store.clone(), acked.clone(), stop.clone());
        let (doc, stream) = (doc.clone(), stream.clone());
        tokio::spawn(async move {
            let mut v = 0u64;
            while !stop.load(Ordering::Acquire) {
                let body = obj(json!({"n": v}));
                let (w, d) = if v == 0 {
                    (StateWrite::create(id("w"), body.clone()), PutMode::Create)
                } else {
                    (
                        StateWrite::update(id("w"), v, body.clone()),
                        PutMode::Update { expected: v },
                    )
                };
                let batch = WriteBatch::new()
                    .put(w)
                    .document(DocWrite::new(doc.clone(), d, body.clone()))
                    .append(Append::new(stream.clone(), chrono::Utc::now(), body));
                store.write(batch).await.unwrap();
                v += 1;
                acked.store(v, Ordering::Release);
            }
        })
    };
    while acked.load(Ordering::Acquire) < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let before = acked.load(Ordering::Acquire);
    let dest = dir.path().join("copy.redb");
    store.backup_to(&dest).await.unwrap();
    stop.store(true, Ordering::Release);
    writer.await.unwrap();
    let e = store.backup_to(&dest).await.unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");

    let copy = RedbStore::open(RedbConfig::new(&dest)).await.unwrap();
    let d = copy.get(&id("w")).await.unwrap().unwrap();
    assert!(
        d.version >= before,
        "backup v{} < acknowledged v{before}",
        d.version
    );
    assert_eq!(d.state["n"], json!(d.version - 1));
    // One batch, one moment: the document and the journal stand where the state does.
    assert_eq!(
        copy.get_document(&doc).await.unwrap().unwrap().version,
        d.version
    );
    let info = copy.journal_info(&stream).await.unwrap().unwrap();
    assert_eq!(info.last_seq, d.version);
    let page = copy
        .read_journal(&stream, JournalQuery::from_seq(1, 10_000))
        .await
        .unwrap();
    assert_eq!(page.entries.len() as u64, d.version);
    assert_eq!(copy.check_engine().await.unwrap(), Some(vec![]));
}
