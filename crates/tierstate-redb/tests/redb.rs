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

/// The redb layout (tables, key and value types, format key) as a reviewed snapshot.
#[tokio::test]
async fn format_snapshot() {
    use redb::{ReadableDatabase, TableHandle};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    drop(RedbStore::open(RedbConfig::new(&path)).await.unwrap());
    let db = redb::Database::open(&path).unwrap();
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
    let out = format!(
        "tables: {names:?}\nts_head: &str -> (u64 version, i64 created_at_us)\nts_version: (&str, u64) -> (u32 schema_version, i64 updated_at_us, &[u8] checksum_hex, &[u8] body)\nformat_version: {format}\n"
    );
    assert_eq!(format, FORMAT_VERSION);
    insta::assert_snapshot!("redb_format_v1", out);
}
