//! SQLite-specific behaviour: file format, permissions, schema versioning, sharing a file.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use rusqlite::Connection;
use serde_json::json;
use tierstate_core::{DeploymentId, Error, Retention, StateStore, StateWrite};
use tierstate_sqlite::{
    SCHEMA_VERSION, SqliteConfig, SqliteStore, Synchronous, create_at_version, pending_steps,
};

fn id(s: &str) -> DeploymentId {
    DeploymentId::new(s).unwrap()
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

/// Tables, indexes and header fields of the database at `path`, as text.
fn schema_dump(path: &std::path::Path) -> String {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name",
        )
        .unwrap();
    let mut out = String::new();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "-- {} {} on {}\n{}\n",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?
            ))
        })
        .unwrap();
    for r in rows {
        out.push_str(&r.unwrap());
    }
    let user_version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    out.push_str(&format!(
        "-- user_version {user_version}, application_id {app_id:#x}\n"
    ));
    out
}

/// One snapshot per schema version, each from a fixture built at exactly that version; a new
/// file created by the store equals the newest.
#[tokio::test]
async fn schema_snapshots_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    for v in 1..=SCHEMA_VERSION {
        let path = dir.path().join(format!("v{v}.db"));
        create_at_version(&Connection::open(&path).unwrap(), v).unwrap();
        insta::assert_snapshot!(format!("sqlite_schema_v{v}"), schema_dump(&path));
    }
    let fresh = dir.path().join("fresh.db");
    SqliteStore::open(SqliteConfig::new(&fresh))
        .await
        .unwrap()
        .close()
        .await;
    assert_eq!(
        schema_dump(&fresh),
        schema_dump(&dir.path().join(format!("v{SCHEMA_VERSION}.db")))
    );
}

/// A database created at schema version 1, with data, is upgraded to the latest on open in one
/// transaction, data intact; the dry run shows the steps first.
#[tokio::test]
async fn v1_fixture_upgrades_with_data_intact() {
    use tierstate_core::{Checksum, canonical_json};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = Connection::open(&path).unwrap();
        create_at_version(&conn, 1).unwrap();
        for (name, n) in [("a", 1), ("b", 2)] {
            let body = canonical_json(&obj(json!({"n": n}))).unwrap();
            let sum = Checksum::of(&body).to_hex();
            conn.execute(
                "INSERT INTO ts_head VALUES (?1, 1, 1700000000000000)",
                [name],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO ts_version VALUES (?1, 1, 1, ?2, 1700000000000000, ?3)",
                rusqlite::params![name, sum, body],
            )
            .unwrap();
        }
    }
    let (found, pending) = pending_steps(&path).unwrap();
    assert_eq!(found, 1);
    assert_eq!(
        pending.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (2..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    assert_eq!(
        pending_steps(&path).unwrap().0,
        1,
        "a dry run changes nothing"
    );

    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    for (name, n) in [("a", 1), ("b", 2)] {
        let d = store.get(&id(name)).await.unwrap().unwrap();
        assert_eq!((d.version, d.state), (1, obj(json!({"n": n}))));
    }
    store
        .put(
            StateWrite::update(id("a"), 1, obj(json!({"n": 10}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap();
    // The records of v3 work in the upgraded file, atomically with state.
    let ledger = tierstate_core::StreamAddr::new("a", "ledger").unwrap();
    let book = tierstate_core::DocAddr::new("a", "positions", "book").unwrap();
    store
        .write(
            tierstate_core::WriteBatch::new()
                .put(StateWrite::update(id("a"), 2, obj(json!({"n": 11}))))
                .document(tierstate_core::DocWrite::new(
                    book.clone(),
                    tierstate_core::PutMode::Create,
                    obj(json!({"eth": "1.5"})),
                ))
                .append(tierstate_core::Append::new(
                    ledger.clone(),
                    chrono::Utc::now(),
                    obj(json!({"fill": 1})),
                )),
        )
        .await
        .unwrap();
    assert_eq!(store.get_document(&book).await.unwrap().unwrap().version, 1);
    assert_eq!(store.journal_info(&ledger).await.unwrap().unwrap().count, 1);
    store.close().await;
    assert!(pending_steps(&path).unwrap().1.is_empty());
    let fixture = dir.path().join("latest.db");
    create_at_version(&Connection::open(&fixture).unwrap(), SCHEMA_VERSION).unwrap();
    assert_eq!(
        schema_dump(&path),
        schema_dump(&fixture),
        "upgraded schema equals a new one"
    );
}

/// A failing upgrade step leaves the file at its old version (one transaction).
#[tokio::test]
async fn failed_upgrade_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clash.db");
    {
        let conn = Connection::open(&path).unwrap();
        create_at_version(&conn, 1).unwrap();
        // Something already holds the name step 2 wants, so step 2 fails.
        conn.execute_batch("CREATE TABLE ts_version_updated_at (x)")
            .unwrap();
    }
    assert!(SqliteStore::open(SqliteConfig::new(&path)).await.is_err());
    assert_eq!(
        pending_steps(&path).unwrap().0,
        1,
        "the failed upgrade left version 1"
    );
}

#[tokio::test]
async fn new_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    store
        .put(
            StateWrite::create(id("a"), obj(json!({}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap();
    for f in ["p.db", "p.db-wal", "p.db-shm"] {
        let p = dir.path().join(f);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
}

#[tokio::test]
async fn reopen_resumes_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    {
        let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
        store
            .put(
                StateWrite::create(id("a"), obj(json!({"n": 1}))),
                Retention::DEFAULT,
            )
            .await
            .unwrap();
        store
            .put(
                StateWrite::update(id("a"), 1, obj(json!({"n": 2}))),
                Retention::DEFAULT,
            )
            .await
            .unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let d = store.get(&id("a")).await.unwrap().unwrap();
    assert_eq!((d.version, d.state), (2, obj(json!({"n": 2}))));
    assert_eq!(store.history(&id("a"), 10).await.unwrap().len(), 2);
}

fn page_size(path: &std::path::Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

/// Opens the file at `path` with `page_size`, commits `w`, closes the store and returns the
/// file's page size.
async fn write_with_page_size(path: &std::path::Path, size: u32, w: StateWrite) -> u32 {
    let store = SqliteStore::open(SqliteConfig::new(path).page_size(size))
        .await
        .unwrap();
    store.put(w, Retention::DEFAULT).await.unwrap();
    store.close().await;
    drop(store);
    page_size(path)
}

/// A new file gets the configured page size (1 KiB by default); a file that exists
/// keeps the size it was created with, data intact; an invalid size is refused and creates
/// nothing.
#[tokio::test]
async fn page_size_is_set_at_creation_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(tierstate_sqlite::DEFAULT_PAGE_SIZE, 1024);
    assert_eq!(
        SqliteConfig::new("x").page_size,
        tierstate_sqlite::DEFAULT_PAGE_SIZE
    );
    let fresh = dir.path().join("fresh.db");
    let store = SqliteStore::open(SqliteConfig::new(&fresh)).await.unwrap();
    store.close().await;
    drop(store);
    assert_eq!(page_size(&fresh), 1024);
    let big = dir.path().join("big.db");
    let create = StateWrite::create(id("a"), obj(json!({"n": 1})));
    assert_eq!(write_with_page_size(&big, 4096, create).await, 4096);
    let update = StateWrite::update(id("a"), 1, obj(json!({"n": 2})));
    assert_eq!(write_with_page_size(&big, 512, update).await, 4096);
    let store = SqliteStore::open(SqliteConfig::new(&big)).await.unwrap();
    assert_eq!(store.get(&id("a")).await.unwrap().unwrap().version, 2);

    for bad in [0, 256, 1000, 131_072] {
        let p = dir.path().join(format!("bad{bad}.db"));
        let e = SqliteStore::open(SqliteConfig::new(&p).page_size(bad))
            .await
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                Error::InvalidInput {
                    field: "page_size",
                    ..
                }
            ),
            "{bad}: {e}"
        );
        assert!(!p.exists(), "{bad}: refused size created {}", p.display());
    }
}

/// Pruned versions leave reads at once and the file in runs: after any number of writes
/// keeping 4, at most 4 + 16 rows of a deployment's versions are on disk (the reclaiming
/// commit deletes everything below the boundary), and never fewer than the 4 kept.
#[tokio::test]
async fn pruned_versions_are_reclaimed_in_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let keep4 = Retention::KeepLast(std::num::NonZeroU32::new(4).unwrap());
    tierstate_testkit::write_versions(&store, &id("a"), 1..=1, keep4).await;
    let rows = |conn: &Connection| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM ts_version WHERE deployment_id = 'a'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (mut most, mut least) = (0, i64::MAX);
    for v in 1..100u64 {
        tierstate_testkit::write_versions(&store, &id("a"), v + 1..=v + 1, keep4).await;
        let on_disk = rows(&Connection::open(&path).unwrap());
        most = most.max(on_disk);
        if v >= 4 {
            least = least.min(on_disk);
        }
    }
    assert!(most <= 4 + 16, "{most} rows on disk for 4 kept");
    assert_eq!(least, 4, "a reclaiming commit deletes every pruned row");
    assert_eq!(store.history(&id("a"), 100).await.unwrap().len(), 4);
}

/// A document that keeps fewer versions than a run (an order's, keeping its current one) has
/// its old rows deleted by every commit: it may never reach a run's end, and its rows would
/// stay on disk for good.
#[tokio::test]
async fn a_record_keeping_fewer_versions_than_a_run_is_reclaimed_each_commit() {
    use tierstate_core::{DocAddr, DocWrite, PutMode};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let store = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let keep1 = Retention::KeepLast(std::num::NonZeroU32::new(1).unwrap());
    let (one, all) = (
        DocAddr::new("a", "orders.intents", "q1").unwrap(),
        DocAddr::new("a", "notes", "n1").unwrap(),
    );
    let rows = |key: &str| -> i64 {
        Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM ts_doc_version WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .unwrap()
    };
    for n in 1..=5 {
        let value = obj(serde_json::json!({ "n": n }));
        let batch = tierstate_core::WriteBatch::new()
            .document(
                DocWrite::new(one.clone(), PutMode::Overwrite, value.clone()).with_retention(keep1),
            )
            .document(DocWrite::new(all.clone(), PutMode::Overwrite, value));
        store.write(batch).await.unwrap();
        assert_eq!(rows("q1"), 1, "after {n} writes keeping 1");
        assert_eq!(
            rows("n1"),
            n,
            "the batch's own retention keeps the other document's"
        );
    }
    assert_eq!(store.document_history(&one, 10).await.unwrap().len(), 1);
}

/// Writers committed together (one group, one transaction) delete their pruned rows in that
/// commit: after concurrent writers keeping 4, every deployment's history is its 4 newest
/// versions and at most 4 + 16 of its rows are on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commits_reclaim_pruned_rows_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = Arc::new(SqliteStore::open(SqliteConfig::new(&path)).await.unwrap());
    let keep4 = Retention::KeepLast(std::num::NonZeroU32::new(4).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let d = id(&format!("w{w}"));
            tierstate_testkit::write_versions(&*store, &d, 1..=50, keep4).await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // Every write was committed once: in a group on the writer thread or alone on its caller's.
    let stats = store.group_stats();
    assert_eq!(stats.grouped + stats.inline, 8 * 50, "{stats:?}");
    assert!(stats.groups <= stats.grouped, "{stats:?}");
    let conn = Connection::open(&path).unwrap();
    for w in 0..8 {
        let d = format!("w{w}");
        let versions: Vec<u64> = store
            .history(&id(&d), 100)
            .await
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions, vec![50, 49, 48, 47], "{d}");
        let on_disk: i64 = conn
            .query_row(
                "SELECT count(*) FROM ts_version WHERE deployment_id = ?1",
                [&d],
                |r| r.get(0),
            )
            .unwrap();
        assert!((4..=4 + 16).contains(&on_disk), "{on_disk} rows of {d}");
    }
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap()
        .close()
        .await;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    match err {
        Error::SchemaTooNew {
            backend: "sqlite",
            found,
            supported,
        } => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other_db = dir.path().join("other.db");
    Connection::open(&other_db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    let err = SqliteStore::open(SqliteConfig::new(&other_db))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("did not create"), "{err}");

    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, vec![b'x'; 8192]).unwrap();
    let err = SqliteStore::open(SqliteConfig::new(&not_db))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    // One line: the cause and the file, said once.
    let msg = err.to_string();
    assert!(
        msg.contains("not a database") && msg.contains(&*not_db.to_string_lossy()),
        "{msg}"
    );
    assert_eq!(msg.matches("sqlite backend error").count(), 1, "{msg}");
    assert!(!msg.contains('\n'), "{msg}");

    let missing_dir = dir.path().join("no/such/dir/x.db");
    let err = SqliteStore::open(SqliteConfig::new(&missing_dir))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot create"), "{err}");
}

/// Two stores (two writer connections, as two processes would have) on one file keep CAS exact.
/// Both ask for sharing; without it the second is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_keep_cas_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let shared =
        |p: &std::path::Path| SqliteConfig::new(p).sharing(tierstate_sqlite::Sharing::Shared);
    let a = Arc::new(SqliteStore::open(shared(&path)).await.unwrap());
    let b = Arc::new(
        SqliteStore::open(shared(&path).synchronous(Synchronous::Normal))
            .await
            .unwrap(),
    );
    a.put(
        StateWrite::create(id("c"), obj(json!({"n": 0}))),
        Retention::KeepAll,
    )
    .await
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let s: Arc<SqliteStore> = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move {
            for _ in 0..50 {
                loop {
                    let cur = s.get(&id("c")).await.unwrap().unwrap();
                    let n = cur.state["n"].as_u64().unwrap();
                    match s
                        .put(
                            StateWrite::update(id("c"), cur.version, obj(json!({"n": n + 1}))),
                            Retention::KeepAll,
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let fin = a.get(&id("c")).await.unwrap().unwrap();
    assert_eq!(fin.state["n"], json!(200));
    assert_eq!(fin.version, 201);
}

#[tokio::test]
async fn closed_store_refuses_writes_with_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("c.db")))
        .await
        .unwrap();
    store.close().await;
    let err = store
        .put(
            StateWrite::create(id("a"), obj(json!({}))),
            Retention::DEFAULT,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                kind: tierstate_core::BackendErrorKind::Closed,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A process that forks holds a copy of the store's lock until its child execs; an open in
/// that window waits for it instead of failing. A holder that does not let go is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_lock_holder_is_waited_for_a_real_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let lock_path = dir.path().join("t.db-lock");
    let holder = std::fs::File::create(&lock_path).unwrap();
    holder.lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(holder);
    });
    SqliteStore::open(SqliteConfig::new(&path))
        .await
        .expect("opens once the transient holder lets go")
        .close()
        .await;
    release.join().unwrap();

    let holder = std::fs::File::open(&lock_path).unwrap();
    holder.lock().unwrap();
    let started = std::time::Instant::now();
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Backend {
                kind: tierstate_core::BackendErrorKind::Locked,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the refusal must not hang"
    );
}

/// Point reads on the calling task and on the blocking pool both pass the shared check of
/// concurrent point reads over one pooled reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_reads_agree_inline_and_pooled_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    for inline in [true, false] {
        let store = SqliteStore::open(SqliteConfig::new(&path).readers(1).inline_reads(inline))
            .await
            .unwrap();
        tierstate_testkit::checks::point_reads_agree_on(std::sync::Arc::new(store.clone())).await;
        store.close().await;
    }
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A read-only store creates, upgrades, locks and writes nothing: it reads a file nobody has
/// open and leaves no side file, reads beside the file's exclusive writer and sees its commits,
/// refuses every write, and refuses empty, older and foreign files by name, unchanged.
#[tokio::test]
async fn read_only_stores_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    {
        let w = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
        w.put(
            StateWrite::create(id("a"), obj(json!({"n": 1}))),
            Retention::default(),
        )
        .await
        .unwrap();
        w.close().await;
    }
    let before = files(dir.path());
    assert_eq!(before, ["r.db", "r.db-lock"]);
    std::fs::remove_file(dir.path().join("r.db-lock")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    {
        let r = SqliteStore::open(SqliteConfig::new(&path).read_only(true))
            .await
            .unwrap();
        assert_eq!(r.get(&id("a")).await.unwrap().unwrap().state["n"], 1);
        let e = r
            .put(
                StateWrite::create(id("b"), obj(json!({}))),
                Retention::default(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
    }
    assert_eq!(files(dir.path()), ["r.db"], "side files left behind");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file changed");
    // Beside its exclusive writer: reads see every commit the writer made.
    let w = SqliteStore::open(SqliteConfig::new(&path)).await.unwrap();
    let r = SqliteStore::open(SqliteConfig::new(&path).read_only(true))
        .await
        .unwrap();
    for n in 2..5 {
        let cur = w.get(&id("a")).await.unwrap().unwrap();
        w.put(
            StateWrite::update(id("a"), cur.version, obj(json!({"n": n}))),
            Retention::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.get(&id("a")).await.unwrap().unwrap().state["n"], n);
    }
    drop((w, r));
    // Empty, older and foreign files are refused and left as they were.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let e = SqliteStore::open(SqliteConfig::new(&empty).read_only(true))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty"), "{e}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    let old = dir.path().join("old.db");
    {
        let conn = Connection::open(&old).unwrap();
        create_at_version(&conn, 1).unwrap();
    }
    let e = SqliteStore::open(SqliteConfig::new(&old).read_only(true))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema 1") && e.contains("migrate"), "{e}");
    assert_eq!(
        pending_steps(&old).unwrap().0,
        1,
        "a read upgraded the file"
    );
    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let e = SqliteStore::open(SqliteConfig::new(&foreign).read_only(true))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not create"), "{e}");
    let missing = SqliteStore::open(SqliteConfig::new(dir.path().join("none.db")).read_only(true))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("does not exist"), "{missing}");
    assert!(!dir.path().join("none.db").exists());
    for f in files(dir.path()) {
        assert!(
            f.starts_with("r.db") || !f.contains('-'),
            "a refused read left {f}"
        );
    }
}

/// A backup taken while a writer commits holds everything acknowledged before it began, each
/// state whole and consistent with its version, passes the engine's check, and reopens; an
/// existing destination is refused and left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_a_writer_commits_holds_everything_acknowledged_before_it() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(SqliteConfig::new(dir.path().join("src.db")))
            .await
            .unwrap(),
    );
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acked, stop) = (store.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut v = 0u64;
            while !stop.load(Ordering::Acquire) {
                let body = obj(json!({"n": v, "pad": "x".repeat(512)}));
                let w = if v == 0 {
                    StateWrite::create(id("w"), body)
                } else {
                    StateWrite::update(id("w"), v, body)
                };
                v = store.put(w, Retention::DEFAULT).await.unwrap().version;
                acked.store(v, Ordering::Release);
            }
        })
    };
    while acked.load(Ordering::Acquire) < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let before = acked.load(Ordering::Acquire);
    let dest = dir.path().join("copy.db");
    store.backup_to(&dest).await.unwrap();
    let after_backup = acked.load(Ordering::Acquire);
    // Nothing of the copy's making is left beside it (its temporary name, a journal).
    let stray: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| f.contains("backup") || f.starts_with("copy.db-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    stop.store(true, Ordering::Release);
    writer.await.unwrap();
    assert!(
        after_backup > before,
        "the writer went on during the backup"
    );

    let copy = SqliteStore::open(SqliteConfig::new(&dest).read_only(true))
        .await
        .unwrap();
    let d = copy.get(&id("w")).await.unwrap().unwrap();
    assert!(
        d.version >= before,
        "backup v{} < acknowledged v{before}",
        d.version
    );
    assert_eq!(d.state["n"], json!(d.version - 1));
    assert_eq!(copy.check_engine().await.unwrap(), Some(vec![]));
    let e = store.backup_to(&dest).await.unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    assert_eq!(
        copy.get(&id("w")).await.unwrap().unwrap().version,
        d.version
    );
}
