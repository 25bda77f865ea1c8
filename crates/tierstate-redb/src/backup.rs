//! A backup of a redb store through one read transaction: every table of the current format
//! copied into a new file (placed by core's `backup::write_new`, whole or absent), so the copy
//! is one moment's snapshot while the writer goes on.

use std::path::Path;

use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use tierstate_core::Result;

use crate::error::{BACKEND, map};
use crate::tables;

/// Copies what `txn` sees into the new file `dest` (whole or absent).
pub(crate) fn backup(txn: &ReadTransaction, dest: &Path) -> Result<()> {
    tierstate_core::backup::write_new(BACKEND, dest, |tmp| write_copy(txn, tmp))
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
