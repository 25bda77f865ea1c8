//! Table layout and the format version.
//!
//! `head`: deployment id → (current version, created_at µs) — the CAS point.
//! `versions`: (deployment id, version) → (schema_version, updated_at µs, checksum hex bytes,
//! canonical JSON body). The checksum is kept as bytes, not `&str`: redb decodes `&str` values
//! with a panic on invalid UTF-8, and a damaged record must be an integrity error, not a panic.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use tierstate_core::{Error, Result};

use crate::error::{BACKEND, map};

/// The format this build writes and the newest it opens.
pub const FORMAT_VERSION: u32 = 1;

pub(crate) const META: TableDefinition<&str, u32> = TableDefinition::new("tierstate_meta");
pub(crate) const HEAD: TableDefinition<&str, (u64, i64)> = TableDefinition::new("ts_head");
/// Key of one stored version: (deployment id, version).
pub(crate) type VersionKey = (&'static str, u64);
/// Value of one stored version: (schema_version, updated_at µs, checksum hex, body).
pub(crate) type VersionValue = (u32, i64, &'static [u8], &'static [u8]);

pub(crate) const VERSIONS: TableDefinition<VersionKey, VersionValue> =
    TableDefinition::new("ts_version");

const FORMAT_KEY: &str = "format_version";

/// Upgrade steps: step `v` takes a file from format `v - 1` to `v` inside the opening write
/// transaction (a copy into a new table, then a swap, when a layout changes). Format 1 is the
/// only one so far, so there are none yet.
pub const STEPS: &[Step] = &[];

/// One upgrade step: the format it produces and what it does.
pub type Step = (u32, &'static str);

/// The format recorded in the file at `path` (`None` for a file with no tierstate tables) and
/// the steps opening it would apply, without changing anything. Fails with `Locked` if another
/// process has the file open.
///
/// # Errors
/// `Backend` if the file cannot be opened; `SchemaTooNew` for a newer format.
pub fn pending_steps(path: &std::path::Path) -> Result<(Option<u32>, Vec<Step>)> {
    use redb::ReadableDatabase;
    let db = redb::Database::open(path).map_err(map)?;
    let txn = db.begin_read().map_err(map)?;
    let found = match txn.open_table(META) {
        Ok(meta) => meta.get(FORMAT_KEY).map_err(map)?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(map(e)),
    };
    if let Some(v) = found
        && v > FORMAT_VERSION
    {
        return Err(Error::SchemaTooNew {
            backend: BACKEND,
            found: v,
            supported: FORMAT_VERSION,
        });
    }
    let from = found.unwrap_or(0);
    Ok((
        found,
        STEPS.iter().copied().filter(|(v, _)| *v > from).collect(),
    ))
}

/// Creates the tables of a new file and records the format; refuses a newer format.
pub(crate) fn ensure_format(txn: &WriteTransaction) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(map)?;
    let found = meta.get(FORMAT_KEY).map_err(map)?.map(|v| v.value());
    match found {
        None => {
            meta.insert(FORMAT_KEY, FORMAT_VERSION).map_err(map)?;
        }
        Some(v) if v > FORMAT_VERSION => {
            return Err(Error::SchemaTooNew {
                backend: BACKEND,
                found: v,
                supported: FORMAT_VERSION,
            });
        }
        // Version 1 is the only format so far; copy-to-new-table upgrade steps go here.
        Some(_) => {}
    }
    drop(meta);
    txn.open_table(HEAD).map_err(map)?;
    txn.open_table(VERSIONS).map_err(map)?;
    Ok(())
}
