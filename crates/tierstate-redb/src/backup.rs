//! A backup of a redb store through one read transaction: every table of the current format
//! copied into a new file, built under a temporary name and renamed into place, so the copy is
//! one moment's snapshot while the writer goes on, and the destination is whole or absent.

use std::path::Path;

use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use tierstate_core::{BackendErrorKind, Error, Result};

use crate::error::{BACKEND, map};
use crate::tables;

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Io,
        message: format!("cannot {what} {}: {e}", path.display()),
        source: Some(Box::new(e)),
    }
}

/// Copies what `txn` sees into the new file `dest`.
pub(crate) fn backup(txn: &ReadTransaction, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::invalid(
            "backup",
            format!("{} exists: name a new file", dest.display()),
        ));
    }
    let name = dest.file_name().map_or_else(
        || "backup.redb".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dest.with_file_name(format!(".{name}.backup-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let built = write_copy(txn, &tmp).and_then(|()| {
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync", &tmp, e))
    });
    let placed = built.and_then(|()| {
        // A hard link refuses an existing name, where a rename would replace it.
        std::fs::hard_link(&tmp, dest).map_err(|e| io("create", dest, e))
    });
    let _ = std::fs::remove_file(&tmp);
    placed?;
    if let Some(dir) = dest.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_copy(txn: &ReadTransaction, tmp: &Path) -> Result<()> {
    let db = Database::create(tmp).map_err(map)?;
    let w = db.begin_write().map_err(map)?;
    copy(txn, &w, tables::META)?;
    copy(txn, &w, tables::HEAD)?;
    copy(txn, &w, tables::VERSIONS)?;
    copy(txn, &w, tables::DOC_HEAD)?;
    copy(txn, &w, tables::DOC_VERSIONS)?;
    copy(txn, &w, tables::J_HEAD)?;
    copy(txn, &w, tables::JOURNAL)?;
    copy(txn, &w, tables::J_KEYS)?;
    copy(txn, &w, tables::J_EVENTS)?;
    w.commit().map_err(map)
}

/// Copies one table row by row; a table the source never created is left out.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    r: &ReadTransaction,
    w: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<()> {
    let src = match r.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(map(e)),
    };
    let mut dst = w.open_table(def).map_err(map)?;
    for row in src.iter().map_err(map)? {
        let (k, v) = row.map_err(map)?;
        dst.insert(k.value(), v.value()).map_err(map)?;
    }
    Ok(())
}
