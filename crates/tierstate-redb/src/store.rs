//! [`RedbStore`]: the [`StateStore`] implementation.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, ReadTransaction};
use tierstate_core::journal::{JournalInfo, JournalPage, JournalQuery};
use tierstate_core::{
    BackendErrorKind, Committed, DeploymentId, DocAddr, Document, Error, KeyRange, Name, Result,
    Signal, StateData, StateStore, StoredDoc, StoredRecord, StreamAddr, Tier, TruncateBefore,
    WriteBatch,
};
use tokio::sync::{oneshot, watch};

use crate::RedbConfig;
use crate::error::{BACKEND, closed, map};
use crate::handle::Handle;
use crate::tables::{DOC_HEAD, HEAD, J_EVENTS, J_HEAD, J_KEYS, JOURNAL, VERSIONS, ensure_format};
use crate::writer::{self, Job, Writer};

/// The redb WARM store. Clone it freely: clones share the database and the writer thread.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedbConfig,
    db: Arc<Handle>,
    /// `None` for a store opened read-only.
    writer: Option<Writer>,
    signal: Signal,
    /// A repaired copy read in place of a file its last writer did not close (read-only).
    _scratch: Option<Scratch>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(w) = &self.writer {
            w.close();
        }
    }
}

/// A temporary file removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.config.path)
            .field("durability", &self.inner.config.durability)
            .finish()
    }
}

fn open_db(config: &RedbConfig) -> Result<crate::handle::Db> {
    let path = &config.path;
    if !path.exists()
        && let Some(db) = create_new(path)?
    {
        return Ok(crate::handle::Db::Rw(db));
    }
    let db = crate::error::guarded(path, || {
        Database::create(path).map_err(|e| naming(path, map(e)))
    })?;
    init(db).map(crate::handle::Db::Rw)
}

/// Creates a database at `path` all at once: it is built and committed under a temporary name
/// beside it (mode 0600; redb would use the umask), then linked into place, so a process killed
/// while creating leaves no file or a complete one, never a header half written. `None`: another
/// process created the file first (open that one).
fn create_new(path: &std::path::Path) -> Result<Option<Database>> {
    let io = |what: &str, e: std::io::Error| Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Io,
        message: format!("cannot {what} {}: {e}", path.display()),
        source: Some(Box::new(e)),
    };
    let name = path.file_name().map_or_else(
        || "tierstate.redb".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = path.with_file_name(format!(".{name}.creating-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    let built = crate::error::guarded(path, || {
        Database::create(&tmp).map_err(|e| naming(path, map(e)))
    })
    .and_then(init);
    let db = match built {
        Ok(db) => db,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // A hard link never replaces a file another process created meanwhile; the open database
    // (and its lock) stays on the same inode under the final name.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io("sync the directory of", e))?;
            }
            Ok(Some(db))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io("create", e)),
    }
}

/// Names the file in an error from opening it.
fn naming(path: &std::path::Path, mut err: Error) -> Error {
    if let Error::Backend { message, .. } = &mut err {
        *message = format!("cannot open {}: {message}", path.display());
    }
    err
}

/// Opens an existing file read-only and checks its format. A file whose last writer was
/// killed needs a repair, which a reader must not make: it reads a repaired copy instead (in
/// the temporary directory, removed when the store is dropped), so the file itself is
/// untouched.
fn open_read_only(path: &std::path::Path) -> Result<(crate::handle::Db, Option<Scratch>)> {
    let (db, scratch) = open_unchecked(path)?;
    let format = crate::error::guarded(path, || {
        let txn = db.begin_read().map_err(map)?;
        crate::tables::read_format(&txn)
    })?;
    check_format(path, format)?;
    Ok((db, scratch))
}

/// The format recorded in the file at `path` (`None`: no tierstate tables), read without
/// changing the file (a file its writer did not close is read from a repaired copy).
pub(crate) fn recorded_format(path: &std::path::Path) -> Result<Option<u32>> {
    let (db, _scratch) = open_unchecked(path)?;
    crate::error::guarded(path, || {
        let txn = db.begin_read().map_err(map)?;
        crate::tables::read_format(&txn)
    })
}

/// Opens `path` read-only, or a repaired copy of it when its last writer did not close it.
fn open_unchecked(path: &std::path::Path) -> Result<(crate::handle::Db, Option<Scratch>)> {
    if !path.exists() {
        return Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!("{} does not exist", path.display()),
            source: None,
        });
    }
    let opened = crate::error::guarded(path, || Ok(redb::ReadOnlyDatabase::open(path)))?;
    let (db, scratch) = match opened {
        Ok(db) => (crate::handle::Db::Ro(db), None),
        Err(redb::DatabaseError::RepairAborted) => {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let copy = std::env::temp_dir().join(format!(
                "tierstate-read-{}-{}.redb",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let scratch = Scratch(copy.clone());
            std::fs::copy(path, &copy).map_err(|e| Error::Backend {
                backend: BACKEND,
                kind: BackendErrorKind::Io,
                message: format!(
                    "{} needs a repair (its last writer did not close it) and cannot be copied to repair it aside: {e}",
                    path.display()
                ),
                source: Some(Box::new(e)),
            })?;
            tracing::info!(file = %path.display(), "reading a repaired copy: the file was not closed by its last writer");
            let repaired = crate::error::guarded(path, || {
                Database::create(&copy).map_err(|e| naming(path, map(e)))
            })?;
            (crate::handle::Db::Rw(repaired), Some(scratch))
        }
        Err(e) => return Err(naming(path, map(e))),
    };
    Ok((db, scratch))
}

/// Refuses a file a read-only store cannot read: no tierstate tables, an older format (a
/// read does not upgrade), a newer one.
fn check_format(path: &std::path::Path, format: Option<u32>) -> Result<()> {
    match format {
        Some(v) if v == crate::tables::FORMAT_VERSION => Ok(()),
        Some(v) if v > crate::tables::FORMAT_VERSION => Err(Error::SchemaTooNew {
            backend: BACKEND,
            found: v,
            supported: crate::tables::FORMAT_VERSION,
        }),
        Some(v) => Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Other,
            message: format!(
                "{} is at format {v}, older than this build's {}: a read does not upgrade it; run `tierstate migrate` first",
                path.display(),
                crate::tables::FORMAT_VERSION
            ),
            source: None,
        }),
        None => Err(Error::Backend {
            backend: BACKEND,
            kind: BackendErrorKind::Io,
            message: format!("{} holds no tierstate tables", path.display()),
            source: None,
        }),
    }
}

/// Creates the tables of a new database or checks the format of an existing one.
fn init(db: Database) -> Result<Database> {
    let txn = db.begin_write().map_err(map)?;
    ensure_format(&txn)?;
    txn.commit().map_err(map)?;
    Ok(db)
}

impl RedbStore {
    /// Opens (or creates, mode 0600) the file and starts the writer thread.
    ///
    /// # Errors
    /// `Backend` with kind `Locked` if another process has the file open; `Io` if it cannot be
    /// created or is not a redb file; `SchemaTooNew` if a newer tierstate wrote it.
    ///
    /// After an I/O error (a full disk) the store reopens the file by itself, with backoff;
    /// meanwhile calls fail with a retryable `Unavailable` error. No acknowledged write is lost:
    /// redb recovers the file from its last durable commit.
    pub async fn open(config: RedbConfig) -> Result<Self> {
        let cfg = config.clone();
        let db = tokio::task::spawn_blocking(move || open_db(&cfg))
            .await
            .map_err(|_| closed())??;
        let cfg = config.clone();
        Self::start(config, db, Box::new(move || open_db(&cfg)))
    }

    /// Opens an existing file for reading only: nothing is created, upgraded, repaired or
    /// written (every write fails), and the file may be read-only. A file whose last writer
    /// was killed is read from a repaired copy in the temporary directory.
    ///
    /// # Errors
    /// `Backend` (`Locked` while another process has the file open; `Io` for a missing file
    /// or one with no tierstate tables; `Other` for an older format, naming `migrate`);
    /// `SchemaTooNew`.
    pub async fn open_read_only(path: impl Into<std::path::PathBuf>) -> Result<Self> {
        let config = RedbConfig::new(path);
        let p = config.path.clone();
        let (db, scratch) = tokio::task::spawn_blocking(move || open_read_only(&p))
            .await
            .map_err(|_| closed())??;
        let handle = Arc::new(Handle::new(
            db,
            Box::new(|| Err(crate::error::read_only())),
            config.path.clone(),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                db: handle,
                writer: None,
                signal: Signal::new(),
                _scratch: scratch,
            }),
        })
    }

    /// Opens a store over a custom redb storage backend (fault injection in tests); `config.path`
    /// is only used in messages.
    ///
    /// # Errors
    /// As [`RedbStore::open`].
    #[cfg(feature = "test-hooks")]
    pub async fn open_with_backend(
        config: RedbConfig,
        backend: impl redb::StorageBackend + Clone,
    ) -> Result<Self> {
        let open = move || {
            init(
                Database::builder()
                    .create_with_backend(backend.clone())
                    .map_err(map)?,
            )
            .map(crate::handle::Db::Rw)
        };
        let first = open.clone();
        let db = tokio::task::spawn_blocking(first)
            .await
            .map_err(|_| closed())??;
        Self::start(config, db, Box::new(open))
    }

    fn start(
        config: RedbConfig,
        db: crate::handle::Db,
        reopen: crate::handle::Reopen,
    ) -> Result<Self> {
        let db = Arc::new(Handle::new(db, reopen, config.path.clone()));
        let writer = writer::start(
            db.clone(),
            config.durability,
            config.max_group,
            config.inline_writes,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                db,
                writer: Some(writer),
                signal: Signal::new(),
                _scratch: None,
            }),
        })
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &RedbConfig {
        &self.inner.config
    }

    /// How the writer has grouped commits since the store opened: a mean group near 1 under
    /// many concurrent writers means they are not sharing fsyncs.
    pub fn group_stats(&self) -> tierstate_core::group::GroupStats {
        self.inner
            .writer
            .as_ref()
            .map(Writer::stats)
            .unwrap_or_default()
    }

    /// Closes the store: the writer commits what is queued and stops, then the file is closed
    /// and its lock released, so the same file can be opened again, in this process or
    /// another. Later operations fail with a `Closed` error.
    pub async fn close(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(w) = &inner.writer {
                w.close();
            }
            inner.db.close();
        })
        .await;
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let handle = self.inner.db.clone();
        tokio::task::spawn_blocking(move || read_on(&handle, f))
            .await
            .map_err(|_| closed())?
    }

    /// A point read: on the calling task when [`RedbConfig::inline_reads`] allows and the
    /// file is healthy (no thread hop, which costs more than the read), otherwise on the
    /// blocking pool, where a recovery may wait for the file.
    async fn point_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.inner.config.inline_reads && !self.inner.db.is_poisoned() {
            return read_on(&self.inner.db, f);
        }
        self.read(f).await
    }

    async fn send_job<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .as_ref()
            .ok_or_else(crate::error::read_only)?
            .send(job(tx))?;
        rx.await.map_err(|_| closed())?
    }
}

/// An id in the file that tierstate could not have written.
/// Runs `f` in a read transaction of the current file, recovering it first if an I/O error
/// poisoned it, and poisoning it if `f` meets one.
fn read_on<T>(handle: &Handle, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
    handle.recover()?;
    let db = handle.current()?;
    let out = crate::error::guarded(&handle.path, || {
        db.begin_read().map_err(map).and_then(|txn| f(&txn))
    });
    if let Err(e) = &out {
        handle.poisoned_by(e);
    }
    out
}

fn bad_id(id: &str, e: Error) -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: format!("unexpected stored deployment id {id:?}: {e}"),
        source: None,
    }
}

/// A collection or stream name in the file that tierstate could not have written.
fn bad_name(what: &str, name: &str, e: Error) -> Error {
    Error::Backend {
        backend: BACKEND,
        kind: BackendErrorKind::Other,
        message: format!("unexpected stored {what} {name:?}: {e}"),
        source: None,
    }
}

/// One row of the head table as a range yields it.
type HeadRow<'t> = std::result::Result<
    (
        redb::AccessGuard<'t, &'static str>,
        redb::AccessGuard<'t, crate::tables::StateHead>,
    ),
    redb::StorageError,
>;

/// The heads after `after` (all of them for `None`), in id order, without tierstate's reserved
/// ids (those are not callers' deployments).
fn heads_after<'t>(
    head: &'t redb::ReadOnlyTable<&'static str, crate::tables::StateHead>,
    after: Option<&DeploymentId>,
) -> Result<impl Iterator<Item = HeadRow<'t>> + 't> {
    use std::ops::Bound;
    let range = match after {
        Some(a) => head.range::<&str>((Bound::Excluded(a.as_str()), Bound::Unbounded)),
        None => head.range::<&str>(..),
    }
    .map_err(map)?;
    Ok(range.filter(|row| {
        row.as_ref().map_or(true, |(k, _)| {
            !k.value().starts_with(DeploymentId::RESERVED_PREFIX)
        })
    }))
}

fn record(
    id: &str,
    version: u64,
    created: i64,
    value: (u32, i64, &[u8], &[u8]),
) -> Result<StoredRecord> {
    let (schema_version, updated, checksum, body) = value;
    Ok(StoredRecord {
        deployment_id: DeploymentId::from_stored(id).map_err(|e| bad_id(id, e))?,
        version,
        schema_version,
        body: body.to_vec(),
        checksum: String::from_utf8_lossy(checksum).into_owned(),
        created_at_us: created,
        updated_at_us: updated,
    })
}

fn get_version_in(
    txn: &ReadTransaction,
    id: &str,
    version: Option<u64>,
) -> Result<Option<StoredRecord>> {
    let head = txn.open_table(HEAD).map_err(map)?;
    let Some((current, created, _, keep_from)) = head.get(id).map_err(map)?.map(|g| g.value())
    else {
        return Ok(None);
    };
    let versions = txn.open_table(VERSIONS).map_err(map)?;
    let v = version.unwrap_or(current);
    if v < keep_from {
        // Pruned: its row may wait on disk for the next run's removal, but is never read.
        return Ok(None);
    }
    let Some(row) = versions.get((id, v)).map_err(map)? else {
        return Ok(None);
    };
    record(id, v, created, row.value()).map(Some)
}

#[async_trait]
impl StateStore for RedbStore {
    async fn backup_to(&self, dest: &std::path::Path) -> Result<()> {
        let dest = dest.to_owned();
        self.read(move |txn| crate::backup::backup(txn, &dest))
            .await
    }

    async fn close(&self) {
        RedbStore::close(self).await;
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn group_stats(&self) -> Option<tierstate_core::group::GroupStats> {
        Some(RedbStore::group_stats(self))
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>> {
        let id = id.clone();
        self.point_read(move |t| {
            get_version_in(t, id.as_str(), None)?
                .map(|r| r.verify(Tier::Warm))
                .transpose()
        })
        .await
    }

    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        let id = id.clone();
        self.point_read(move |t| {
            get_version_in(t, id.as_str(), Some(version))?
                .map(|r| r.verify(Tier::Warm))
                .transpose()
        })
        .await
    }

    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        let id = id.clone();
        self.read(move |t| {
            let head = t.open_table(HEAD).map_err(map)?;
            let Some((_, created, _, keep_from)) =
                head.get(id.as_str()).map_err(map)?.map(|g| g.value())
            else {
                return Ok(Vec::new());
            };
            let versions = t.open_table(VERSIONS).map_err(map)?;
            let mut out = Vec::new();
            for row in versions
                .range((id.as_str(), keep_from)..=(id.as_str(), u64::MAX))
                .map_err(map)?
                .rev()
                .take(limit)
            {
                let (k, v) = row.map_err(map)?;
                out.push(record(id.as_str(), k.value().1, created, v.value())?.verify(Tier::Warm)?);
            }
            Ok(out)
        })
        .await
    }

    async fn write(&self, batch: WriteBatch) -> Result<Committed> {
        let batch = batch.prepare()?;
        if batch.is_empty() {
            return Ok(Committed::default());
        }
        let appends = !batch.appends.is_empty();
        let committed = self
            .send_job(|reply| Job::Commit(tierstate_core::group::CommitJob::new(batch, reply)))
            .await?;
        if appends {
            self.inner.signal.bump();
        }
        Ok(committed)
    }

    async fn get_as_of(&self, id: &DeploymentId, at: DateTime<Utc>) -> Result<Option<StateData>> {
        let key = id.clone();
        let at_us = at.timestamp_micros();
        let (found, oldest) = self
            .read(move |t| {
                let head = t.open_table(HEAD).map_err(map)?;
                let Some((current, created, updated, keep_from)) =
                    head.get(key.as_str()).map_err(map)?.map(|g| g.value())
                else {
                    return Ok((None, None));
                };
                let versions = t.open_table(VERSIONS).map_err(map)?;
                let id = key.as_str();
                let oldest = match versions
                    .range((id, keep_from)..=(id, u64::MAX))
                    .map_err(map)?
                    .next()
                {
                    Some(r) => Some(r.map_err(map)?.0.value().1),
                    None => None,
                };
                if updated <= at_us {
                    // The head's commit time answers without scanning history.
                    return Ok((get_version_in(t, id, Some(current))?, oldest));
                }
                for r in versions
                    .range((id, keep_from)..(id, current))
                    .map_err(map)?
                    .rev()
                {
                    let (k, v) = r.map_err(map)?;
                    if v.value().1 <= at_us {
                        return Ok((Some(record(id, k.value().1, created, v.value())?), oldest));
                    }
                }
                Ok((None, oldest))
            })
            .await?;
        tierstate_core::plan::state_as_of(id, at, found, oldest)
    }

    async fn get_document(&self, address: &DocAddr) -> Result<Option<Document>> {
        let a = address.clone();
        let (rows, _) = self
            .point_read(move |t| crate::records::doc_versions(t, &a, true, None, 1))
            .await?;
        rows.into_iter()
            .next()
            .map(|r| r.verify(Tier::Warm))
            .transpose()
    }

    async fn document_version(&self, address: &DocAddr, version: u64) -> Result<Option<Document>> {
        let a = address.clone();
        let row = self
            .point_read(move |t| crate::records::doc_version(t, &a, version))
            .await?;
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn deployments(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>> {
        let after = after.cloned();
        self.read(move |t| crate::records::deployments(t, after.as_ref(), limit))
            .await
    }

    async fn check_engine(&self) -> Result<Option<Vec<String>>> {
        // A panic while walking one table is damage in it: each table is walked under its own
        // guard, so the others are still checked.
        let path = self.inner.config.path.clone();
        self.read(move |t| crate::records::check_tables(t, &path))
            .await
            .map(Some)
    }

    async fn document_history(&self, address: &DocAddr, limit: usize) -> Result<Vec<Document>> {
        let a = address.clone();
        let (rows, _) = self
            .read(move |t| crate::records::doc_versions(t, &a, false, None, limit))
            .await?;
        rows.into_iter().map(|r| r.verify(Tier::Warm)).collect()
    }

    async fn document_as_of(
        &self,
        address: &DocAddr,
        at: DateTime<Utc>,
    ) -> Result<Option<Document>> {
        let a = address.clone();
        let (rows, oldest) = self
            .read(move |t| {
                crate::records::doc_versions(t, &a, false, Some(at.timestamp_micros()), 1)
            })
            .await?;
        tierstate_core::plan::document_as_of(address, at, rows.into_iter().next(), oldest)
    }

    async fn scan_stored_documents(
        &self,
        id: &DeploymentId,
        collection: &Name,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<Result<StoredDoc>>> {
        let (id, collection, range) = (id.clone(), collection.clone(), range.clone());
        let rows = self
            .read(move |t| crate::records::scan_docs(t, &id, &collection, &range, limit))
            .await?;
        Ok(rows)
    }

    async fn collections(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        let (id, after) = (id.clone(), after.cloned());
        self.read(move |t| {
            let heads = t.open_table(DOC_HEAD).map_err(map)?;
            // Seek past each collection: every key of `c` sorts before (id, c + "\0", "").
            let mut from = after.map_or_else(String::new, |c| format!("{c}\0"));
            let mut out = Vec::new();
            while out.len() < limit {
                let mut range = heads
                    .range((id.as_str(), from.as_str(), "")..)
                    .map_err(map)?;
                let Some(row) = range.next() else { break };
                let (k, _) = row.map_err(map)?;
                let (d, c, _) = k.value();
                if d != id.as_str() {
                    break;
                }
                out.push(Name::collection(c).map_err(|e| bad_name("collection", c, e))?);
                from = format!("{c}\0");
            }
            Ok(out)
        })
        .await
    }

    async fn streams(
        &self,
        id: &DeploymentId,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<Name>> {
        let (id, after) = (id.clone(), after.cloned());
        self.read(move |t| {
            let heads = t.open_table(J_HEAD).map_err(map)?;
            let from = after.as_ref().map_or("", Name::as_str);
            let mut out = Vec::new();
            for row in heads.range((id.as_str(), from)..).map_err(map)? {
                let (k, _) = row.map_err(map)?;
                let (d, s) = k.value();
                if d != id.as_str() || out.len() == limit {
                    break;
                }
                if after.is_some() && s == from {
                    continue;
                }
                out.push(Name::stream(s).map_err(|e| bad_name("stream", s, e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn journal_info(&self, stream: &StreamAddr) -> Result<Option<JournalInfo>> {
        let s = stream.clone();
        let head = self
            .read(move |t| {
                let table = t.open_table(J_HEAD).map_err(map)?;
                crate::records::head_in(&table, &s).map_err(map)?
            })
            .await?;
        Ok(head.map(JournalInfo::from))
    }

    async fn read_journal(&self, stream: &StreamAddr, query: JournalQuery) -> Result<JournalPage> {
        let s = stream.clone();
        let point = query.is_point();
        let read = move |t: &ReadTransaction| {
            let heads = t.open_table(J_HEAD).map_err(map)?;
            let head = crate::records::head_in(&heads, &s).map_err(map)??;
            let resolved = query.resolve(head, &s)?;
            let journal = t.open_table(JOURNAL).map_err(map)?;
            let keys = t.open_table(J_KEYS).map_err(map)?;
            let events = t.open_table(J_EVENTS).map_err(map)?;
            let rows = crate::records::fetch(&journal, &keys, &events, &s, &resolved.fetch)
                .map_err(map)??;
            let mut linked = Vec::new();
            for p in resolved.links(&rows) {
                let seq = tierstate_core::journal::Fetch::Seq { lo: p, hi: p };
                linked.extend(
                    crate::records::fetch(&journal, &keys, &events, &s, &seq).map_err(map)??,
                );
            }
            resolved.finish(&s, rows, linked, Tier::Warm)
        };
        if point {
            self.point_read(read).await
        } else {
            self.read(read).await
        }
    }

    async fn truncate_journal(&self, stream: &StreamAddr, before: TruncateBefore) -> Result<u64> {
        let stream = stream.clone();
        let n = self
            .send_job(|reply| Job::Truncate {
                stream,
                before,
                reply,
            })
            .await?;
        self.inner.signal.bump();
        Ok(n)
    }

    async fn restore(&self, plan: tierstate_core::plan::Plan) -> Result<()> {
        let appended = !plan.entries.is_empty();
        let plan = Box::new(plan);
        self.send_job(|reply| Job::Restore { plan, reply }).await?;
        if appended {
            self.inner.signal.bump();
        }
        Ok(())
    }

    fn journal_signal(&self) -> watch::Receiver<u64> {
        self.inner.signal.subscribe()
    }

    async fn delete(&self, id: &DeploymentId) -> Result<bool> {
        let id = id.clone();
        self.send_job(|reply| Job::Delete { id, reply }).await
    }

    async fn list(&self, after: Option<&DeploymentId>, limit: usize) -> Result<Vec<DeploymentId>> {
        let after = after.cloned();
        self.read(move |t| {
            let head = t.open_table(HEAD).map_err(map)?;
            let iter = heads_after(&head, after.as_ref())?;
            let mut out = Vec::new();
            for row in iter.take(limit) {
                let (k, _) = row.map_err(map)?;
                out.push(DeploymentId::from_stored(k.value()).map_err(|e| bad_id(k.value(), e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>> {
        let after = after.cloned();
        self.read(move |t| {
            let head = t.open_table(HEAD).map_err(map)?;
            let versions = t.open_table(VERSIONS).map_err(map)?;
            let iter = heads_after(&head, after.as_ref())?;
            let mut out = Vec::new();
            for row in iter.take(limit) {
                let (k, v) = row.map_err(map)?;
                let id = k.value();
                let (version, created, _, _) = v.value();
                let Some(body) = versions.get((id, version)).map_err(map)? else {
                    continue;
                };
                out.push(
                    record(id, version, created, body.value()).and_then(|r| r.verify(Tier::Warm)),
                );
            }
            Ok(out)
        })
        .await
    }
}

/// The one fault seam: damage runs inside the writer's own transaction; failing appends make
/// the writer abandon a commit after its rows were written.
#[cfg(feature = "test-hooks")]
#[async_trait]
impl tierstate_core::FaultSeam for RedbStore {
    async fn inject(&self, fault: tierstate_core::Fault) -> Result<bool> {
        use tierstate_core::Fault;
        let run: crate::writer::HookFn = match fault {
            Fault::StateBytes {
                id,
                version,
                offset,
                mask,
            } => Box::new(move |t| crate::hooks::damage_state(t, &id, version, offset, mask)),
            Fault::DocumentBody(a) => Box::new(move |t| crate::hooks::damage_document(t, &a)),
            Fault::DocumentRowGone(a) => Box::new(move |t| crate::hooks::lose_document_row(t, &a)),
            Fault::Entry {
                stream,
                seq,
                damage,
            } => Box::new(move |t| crate::hooks::damage_entry(t, &stream, seq, damage)),
            Fault::FailAppends { stream, on } => {
                let mut f = self.inner.db.failing.lock();
                return Ok(if on {
                    f.insert(stream)
                } else {
                    f.remove(&stream)
                });
            }
            other => {
                return Err(Error::invalid(
                    "fault",
                    format!("{other:?} is not injected into redb"),
                ));
            }
        };
        self.send_job(|reply| Job::Hook { run, reply }).await
    }
}
