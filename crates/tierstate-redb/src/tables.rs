//! Table layout and the format version.
//!
//! Format 3 (current):
//! - `ts_head_v3`: deployment id → (current version, created_at µs, updated_at µs of the current
//!   version, keep_from) — the CAS point; the commit time lets a read as of a time answer from
//!   the head; `keep_from` is the oldest version reads may return (retention moves it in the
//!   commit; the rows below it are removed a run of versions at a time, see
//!   [`tierstate_core::Retention::reclaims_at`]).
//! - `ts_version`: (deployment id, version) → (schema_version, updated_at µs, checksum hex bytes,
//!   canonical JSON body).
//! - `ts_doc_head_v3` / `ts_doc_version`: the same two shapes for documents, keyed by
//!   (deployment, collection, key); the head is (version, created_at µs, keep_from).
//! - `ts_journal_head`: (deployment, stream) → (last seq, last hash, last commit µs, anchor seq,
//!   anchor hash); `ts_journal`: (deployment, stream, seq) → the entry; `ts_journal_key`: the
//!   unique idempotency-key index; `ts_journal_event`: the event-time index.
//!
//! Checksums, hashes and keys are kept as bytes, not `&str`: redb decodes `&str` values with a
//! panic on invalid UTF-8, and a damaged record must be an integrity error, not a panic.
//!
//! Format 1 had `ts_head` (version, created_at) and no documents or journals; format 2 had
//! `ts_head_v2` and `ts_doc_head` without `keep_from` (every stored version was retained).

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use tierstate_core::{Error, Result};

use crate::error::{BACKEND, map};

/// The format this build writes and the newest it opens.
pub const FORMAT_VERSION: u32 = 3;

pub(crate) const META: TableDefinition<&str, u32> = TableDefinition::new("tierstate_meta");
/// Format 1's head table: replaced by [`HEAD`] in the step to format 2.
pub(crate) const HEAD_V1: TableDefinition<&str, (u64, i64)> = TableDefinition::new("ts_head");
/// Format 2's head table: replaced by [`HEAD`] in the step to format 3.
pub(crate) const HEAD_V2: TableDefinition<&str, (u64, i64, i64)> =
    TableDefinition::new("ts_head_v2");
/// A state head: (version, created_at µs, updated_at µs, keep_from).
pub(crate) type StateHead = (u64, i64, i64, u64);
/// deployment id → [`StateHead`].
pub(crate) const HEAD: TableDefinition<&str, StateHead> = TableDefinition::new("ts_head_v3");
/// Format 2's document head table: replaced by [`DOC_HEAD`] in the step to format 3.
pub(crate) const DOC_HEAD_V2: TableDefinition<(&str, &str, &str), (u64, i64)> =
    TableDefinition::new("ts_doc_head");
/// A document head: (version, created_at µs, keep_from).
pub(crate) type DocHead = (u64, i64, u64);
/// (deployment, collection, key) → [`DocHead`].
pub(crate) const DOC_HEAD: TableDefinition<(&str, &str, &str), DocHead> =
    TableDefinition::new("ts_doc_head_v3");
/// (deployment, collection, key, version) → (updated_at µs, checksum hex, body).
pub(crate) type DocVersionKey = (&'static str, &'static str, &'static str, u64);
/// A document version's value: (updated_at µs, checksum hex, body).
pub(crate) type DocVersionValue = (i64, &'static [u8], &'static [u8]);
pub(crate) const DOC_VERSIONS: TableDefinition<DocVersionKey, DocVersionValue> =
    TableDefinition::new("ts_doc_version");
/// (deployment, stream) → (last seq, last hash hex, last commit µs, anchor seq, anchor hash hex).
pub(crate) type JournalHeadValue = (u64, &'static [u8], i64, u64, &'static [u8]);
pub(crate) const J_HEAD: TableDefinition<(&str, &str), JournalHeadValue> =
    TableDefinition::new("ts_journal_head");
/// One journal entry's value: (event µs, commit µs, idempotency key or empty, checksum hex,
/// previous hash hex, hash hex, body).
pub(crate) type EntryValue = (
    i64,
    i64,
    &'static [u8],
    &'static [u8],
    &'static [u8],
    &'static [u8],
    &'static [u8],
);
/// (deployment, stream, seq) → [`EntryValue`].
pub(crate) const JOURNAL: TableDefinition<(&str, &str, u64), EntryValue> =
    TableDefinition::new("ts_journal");
/// (deployment, stream, idempotency key) → seq: one entry per key, by construction.
pub(crate) const J_KEYS: TableDefinition<(&str, &str, &str), u64> =
    TableDefinition::new("ts_journal_key");
/// (deployment, stream, event µs, seq) → (): the event-time index.
pub(crate) const J_EVENTS: TableDefinition<(&str, &str, i64, u64), ()> =
    TableDefinition::new("ts_journal_event");
/// Key of one stored version: (deployment id, version).
pub(crate) type VersionKey = (&'static str, u64);
/// Value of one stored version: (schema_version, updated_at µs, checksum hex, body).
pub(crate) type VersionValue = (u32, i64, &'static [u8], &'static [u8]);

pub(crate) const VERSIONS: TableDefinition<VersionKey, VersionValue> =
    TableDefinition::new("ts_version");

const FORMAT_KEY: &str = "format_version";

/// Upgrade steps: step `v` takes a file from format `v - 1` to `v` inside the opening write
/// transaction, so an upgrade happens wholly or not at all.
pub const STEPS: &[Step] = &[
    (
        2,
        "copy ts_head (version, created_at) into ts_head_v2 (version, created_at, updated_at of \
         the current version, read from ts_version), drop ts_head; create the document and \
         journal tables",
    ),
    (
        3,
        "copy ts_head_v2 into ts_head_v3 and ts_doc_head into ts_doc_head_v3, each head with \
         keep_from 1 (every stored version stays readable), drop the old head tables",
    ),
];

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

/// Creates the tables of a new file, upgrades an older format, refuses a newer one.
/// The format recorded in the file (`None`: no tierstate tables), read without changing it.
pub(crate) fn read_format(txn: &redb::ReadTransaction) -> Result<Option<u32>> {
    match txn.open_table(META) {
        Ok(meta) => Ok(meta.get(FORMAT_KEY).map_err(map)?.map(|v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(map(e)),
    }
}

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
        Some(v) => {
            if v < 2 {
                upgrade_to_2(txn)?;
                tracing::info!(step = 2, "upgraded tierstate redb format");
            }
            if v < 3 {
                upgrade_to_3(txn)?;
                tracing::info!(step = 3, "upgraded tierstate redb format");
            }
            meta.insert(FORMAT_KEY, FORMAT_VERSION).map_err(map)?;
        }
    }
    drop(meta);
    create_tables(txn)
}

fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(HEAD).map_err(map)?;
    txn.open_table(VERSIONS).map_err(map)?;
    txn.open_table(DOC_HEAD).map_err(map)?;
    txn.open_table(DOC_VERSIONS).map_err(map)?;
    txn.open_table(J_HEAD).map_err(map)?;
    txn.open_table(JOURNAL).map_err(map)?;
    txn.open_table(J_KEYS).map_err(map)?;
    txn.open_table(J_EVENTS).map_err(map)?;
    Ok(())
}

/// Step 2: copies every head into the new head table with its current version's commit time.
fn upgrade_to_2(txn: &WriteTransaction) -> Result<()> {
    let old = txn.open_table(HEAD_V1).map_err(map)?;
    let versions = txn.open_table(VERSIONS).map_err(map)?;
    let mut new = txn.open_table(HEAD_V2).map_err(map)?;
    for row in old.iter().map_err(map)? {
        let (k, v) = row.map_err(map)?;
        let (id, (version, created)) = (k.value(), v.value());
        // A head whose current version is missing keeps its creation time (reads of it report
        // the missing version as before).
        let updated = versions
            .get((id, version))
            .map_err(map)?
            .map_or(created, |g| g.value().1);
        new.insert(id, (version, created, updated)).map_err(map)?;
    }
    drop((old, versions, new));
    txn.delete_table(HEAD_V1).map_err(map)?;
    Ok(())
}

/// Step 3: copies every state and document head into the tables with `keep_from`.
fn upgrade_to_3(txn: &WriteTransaction) -> Result<()> {
    {
        let old = txn.open_table(HEAD_V2).map_err(map)?;
        let mut new = txn.open_table(HEAD).map_err(map)?;
        for row in old.iter().map_err(map)? {
            let (k, v) = row.map_err(map)?;
            let (version, created, updated) = v.value();
            new.insert(k.value(), (version, created, updated, 1))
                .map_err(map)?;
        }
        let old = txn.open_table(DOC_HEAD_V2).map_err(map)?;
        let mut new = txn.open_table(DOC_HEAD).map_err(map)?;
        for row in old.iter().map_err(map)? {
            let (k, v) = row.map_err(map)?;
            let (version, created) = v.value();
            new.insert(k.value(), (version, created, 1)).map_err(map)?;
        }
    }
    txn.delete_table(HEAD_V2).map_err(map)?;
    txn.delete_table(DOC_HEAD_V2).map_err(map)?;
    Ok(())
}

/// One state of a format-1 fixture: (id, version, canonical body, checksum hex, created µs,
/// updated µs).
pub type Format1State<'a> = (&'a str, u64, &'a [u8], &'a str, i64, i64);

/// Test and tooling helper: writes a format-1 file at `path` holding `states`
/// (id, version, canonical body, checksum hex, created µs, updated µs), to test upgrades.
///
/// # Errors
/// `Backend` if redb fails.
pub fn create_format_1(path: &std::path::Path, states: &[Format1State<'_>]) -> Result<()> {
    let db = redb::Database::create(path).map_err(map)?;
    let txn = db.begin_write().map_err(map)?;
    {
        let mut meta = txn.open_table(META).map_err(map)?;
        meta.insert(FORMAT_KEY, 1).map_err(map)?;
        let mut head = txn.open_table(HEAD_V1).map_err(map)?;
        let mut versions = txn.open_table(VERSIONS).map_err(map)?;
        for (id, v, body, sum, created, updated) in states {
            head.insert(*id, (*v, *created)).map_err(map)?;
            versions
                .insert((*id, *v), (1, *updated, sum.as_bytes(), *body))
                .map_err(map)?;
        }
    }
    txn.commit().map_err(map)?;
    Ok(())
}

/// The redb file's own schema migrations ([`tierstate_core::SchemaMigrate`]).
#[derive(Debug, Clone)]
pub struct RedbSchema {
    path: std::path::PathBuf,
}

impl RedbSchema {
    /// The schema of the file at `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait::async_trait]
impl tierstate_core::SchemaMigrate for RedbSchema {
    async fn status(&self) -> Result<tierstate_core::SchemaStatus> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let empty = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
            let found = if empty {
                None
            } else {
                crate::store::recorded_format(&path)?
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
            let mut pending: Vec<tierstate_core::SchemaStep> = STEPS
                .iter()
                .filter(|(v, _)| *v > from)
                .map(|(v, what)| tierstate_core::SchemaStep {
                    version: u64::from(*v),
                    description: (*what).to_owned(),
                })
                .collect();
            if found.is_none() && pending.is_empty() {
                pending.push(tierstate_core::SchemaStep {
                    version: u64::from(FORMAT_VERSION),
                    description: "create the tierstate tables".into(),
                });
            }
            Ok(tierstate_core::SchemaStatus {
                backend: BACKEND,
                found: found.map(u64::from),
                latest: u64::from(FORMAT_VERSION),
                pending,
            })
        })
        .await
        .map_err(|_| crate::error::closed())?
    }

    async fn apply(&self) -> Result<tierstate_core::SchemaStatus> {
        // Opening the file for writing applies the missing steps in one write transaction.
        crate::RedbStore::open(crate::RedbConfig::new(&self.path))
            .await?
            .close()
            .await;
        self.status().await
    }
}
