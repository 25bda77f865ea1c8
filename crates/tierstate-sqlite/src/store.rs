//! [`SqliteStore`]: the [`StateStore`] implementation.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tierstate_core::journal::{Fetch, JournalInfo, JournalPage, JournalQuery};
use tierstate_core::{
    BackendErrorKind, CommitProbe, Committed, DeploymentId, DocAddr, Document, KeyRange, Name,
    Result, Signal, StateData, StateStore, StoredDoc, StreamAddr, Tier, TruncateBefore, WriteBatch,
};
use tokio::sync::{oneshot, watch};

use crate::SqliteConfig;
use crate::error::closed;
use crate::reader::{self, Readers};
use crate::schema::{ReadMode, open_writer};
use crate::sharing::{LockFile, SharedProbe, Sharing};
use crate::writer::{self, Job, Writer};

/// The SQLite WARM store. Clone it freely: clones share the writer thread and reader pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    /// `None` for a store opened read-only.
    writer: Option<Writer>,
    readers: Readers,
    probe: Option<Arc<SharedProbe>>,
    signal: Signal,
    /// Held until [`SqliteStore::close`]: says who else may use the file (none when
    /// read-only).
    lock: parking_lot::Mutex<Option<LockFile>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer finishes what is queued (nobody waits for it any more) and exits.
        if let Some(w) = &self.writer {
            w.close();
        }
    }
}

/// The error a write to a store opened read-only gets.
fn read_only() -> tierstate_core::Error {
    tierstate_core::Error::Backend {
        backend: crate::error::BACKEND,
        kind: tierstate_core::BackendErrorKind::Other,
        message: "this store was opened read-only: it takes no writes".into(),
        source: None,
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .field("synchronous", &self.inner.config.synchronous)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (or creates, mode 0600) the database and starts the writer thread.
    ///
    /// # Errors
    /// `Backend` (`Io`) if the file cannot be created or opened or is not a tierstate database;
    /// `Locked` if another store uses the file and the two did not both ask for
    /// [`Sharing::Shared`]; `SchemaTooNew` if a newer tierstate wrote it; `Busy` if another
    /// process holds the write lock past the busy timeout.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        if config.read_only {
            return Self::open_read_only(config).await;
        }
        let cfg = config.clone();
        let (lock, writer_conn, reader_conn, probe) = tokio::task::spawn_blocking(move || {
            let lock = LockFile::take(&cfg.path, cfg.sharing)?;
            let w = open_writer(&cfg).inspect_err(|_| lock.release_if_created())?;
            // Open one reader now so a file readers cannot open fails here, not on first load.
            let r = crate::schema::open_reader(&cfg, ReadMode::Writer)?;
            let probe = match cfg.sharing {
                Sharing::Exclusive => None,
                Sharing::Shared => Some(Arc::new(SharedProbe::new(crate::schema::open_reader(
                    &cfg,
                    ReadMode::Writer,
                )?)?)),
            };
            Ok::<_, tierstate_core::Error>((lock, w, r, probe))
        })
        .await
        .map_err(|_| closed())??;
        let writer = writer::start(
            writer_conn,
            config.max_group,
            config.inline_writes,
            probe.clone(),
        )?;
        let readers = Readers::new(config.clone(), ReadMode::Writer);
        readers.give_back(reader_conn);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                writer: Some(writer),
                readers,
                probe,
                signal: Signal::new(),
                lock: parking_lot::Mutex::new(Some(lock)),
            }),
        })
    }

    /// Opens an existing file for reading only ([`SqliteConfig::read_only`]): no lock file, no
    /// writer, no schema change; refuses an empty or foreign file and an older or newer schema
    /// by name. Reads alongside any writer (SQLite's WAL keeps each read consistent).
    async fn open_read_only(config: SqliteConfig) -> Result<Self> {
        let cfg = config.clone();
        let (mode, conn) = tokio::task::spawn_blocking(move || {
            if std::fs::metadata(&cfg.path).is_ok_and(|m| m.len() == 0) {
                return Err(tierstate_core::Error::Backend {
                    backend: crate::error::BACKEND,
                    kind: tierstate_core::BackendErrorKind::Io,
                    message: format!("{} is empty: not a tierstate database", cfg.path.display()),
                    source: None,
                });
            }
            let (mode, conn) = crate::schema::open_for_reading(&cfg)?;
            crate::schema::check_readable(&conn, &cfg.path)?;
            Ok((mode, conn))
        })
        .await
        .map_err(|_| closed())??;
        let readers = Readers::new(config.clone(), mode);
        readers.give_back(conn);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                writer: None,
                readers,
                probe: None,
                signal: Signal::new(),
                lock: parking_lot::Mutex::new(None),
            }),
        })
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &SqliteConfig {
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

    /// Stops the writer after it has committed everything queued, and waits for it. Later
    /// writes fail with a `Closed` error; reads go on (for tools and tests that need a store
    /// that reads but no longer writes).
    pub async fn stop_writer(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(w) = &inner.writer {
                w.close();
            }
        })
        .await;
    }

    /// Closes the store: the writer commits what is queued and stops, the reader
    /// connections close, and the file's lock is released, so the same file can be opened
    /// again, in this process or another. Later operations fail with a `Closed` error.
    pub async fn close(&self) {
        self.stop_writer().await;
        self.inner.readers.close();
        self.inner.lock.lock().take();
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.readers.with(f))
            .await
            .map_err(|_| closed())?
    }

    /// A point read: on the calling task when [`SqliteConfig::inline_reads`] allows and a
    /// pooled connection is idle (no thread hop, which costs more than the read), otherwise
    /// on the blocking pool.
    async fn point_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if !self.inner.config.inline_reads {
            return self.read(f).await;
        }
        match self.inner.readers.with_idle(f) {
            Ok(out) => out,
            Err(f) => self.read(f).await,
        }
    }

    async fn send_job<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .as_ref()
            .ok_or_else(read_only)?
            .send(job(tx))?;
        rx.await.map_err(|_| closed())?
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn group_stats(&self) -> Option<tierstate_core::group::GroupStats> {
        Some(SqliteStore::group_stats(self))
    }

    fn commit_probe(&self) -> Option<Arc<dyn CommitProbe>> {
        self.inner.probe.clone().map(|p| p as Arc<dyn CommitProbe>)
    }

    async fn get(&self, id: &DeploymentId) -> Result<Option<StateData>> {
        let id = id.clone();
        self.point_read(move |c| {
            reader::get(c, id.as_str())?
                .map(|r| r.verify(Tier::Warm))
                .transpose()
        })
        .await
    }

    async fn get_version(&self, id: &DeploymentId, version: u64) -> Result<Option<StateData>> {
        let id = id.clone();
        self.point_read(move |c| {
            reader::get_version(c, id.as_str(), version)?
                .map(|r| r.verify(Tier::Warm))
                .transpose()
        })
        .await
    }

    async fn history(&self, id: &DeploymentId, limit: usize) -> Result<Vec<StateData>> {
        let id = id.clone();
        self.read(move |c| {
            reader::history(c, id.as_str(), limit)?
                .into_iter()
                .map(|r| r.verify(Tier::Warm))
                .collect()
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
        let (found, oldest) = self
            .read(move |c| crate::records::state_as_of(c, key.as_str(), at.timestamp_micros()))
            .await?;
        tierstate_core::plan::state_as_of(id, at, found, oldest)
    }

    async fn get_document(&self, address: &DocAddr) -> Result<Option<Document>> {
        let a = address.clone();
        let rows = self
            .point_read(move |c| crate::records::doc_versions(c, &a, true, None, 1))
            .await?;
        rows.into_iter()
            .next()
            .map(|r| r.verify(Tier::Warm))
            .transpose()
    }

    async fn document_version(&self, address: &DocAddr, version: u64) -> Result<Option<Document>> {
        let a = address.clone();
        let row = self
            .point_read(move |c| crate::records::doc_version(c, &a, version))
            .await?;
        row.map(|r| r.verify(Tier::Warm)).transpose()
    }

    async fn deployments(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<DeploymentId>> {
        let after = after.cloned();
        self.read(move |c| reader::deployments(c, after.as_ref().map(|a| a.as_str()), limit))
            .await
    }

    async fn check_engine(&self) -> Result<Option<Vec<String>>> {
        self.read(reader::integrity_check).await.map(Some)
    }

    async fn backup_to(&self, dest: &std::path::Path) -> Result<()> {
        let dest = dest.to_owned();
        // SQLite's online backup in one step: every page copied inside one read transaction,
        // so the copy is the snapshot of one moment while the writer goes on committing; from
        // a read-only connection too (nothing is written to the source).
        self.read(move |c| {
            tierstate_core::backup::write_new(crate::error::BACKEND, &dest, |tmp| {
                let mut dst = rusqlite::Connection::open(tmp).map_err(crate::error::map)?;
                let backup =
                    rusqlite::backup::Backup::new(c, &mut dst).map_err(crate::error::map)?;
                match backup.step(-1).map_err(crate::error::map)? {
                    rusqlite::backup::StepResult::Done => Ok(()),
                    other => Err(tierstate_core::Error::Backend {
                        backend: crate::error::BACKEND,
                        kind: BackendErrorKind::Busy,
                        message: format!("the backup did not finish ({other:?}): try again"),
                        source: None,
                    }),
                }
            })
        })
        .await
    }

    async fn document_history(&self, address: &DocAddr, limit: usize) -> Result<Vec<Document>> {
        let a = address.clone();
        let rows = self
            .read(move |c| crate::records::doc_versions(c, &a, false, None, limit))
            .await?;
        rows.into_iter().map(|r| r.verify(Tier::Warm)).collect()
    }

    async fn document_as_of(
        &self,
        address: &DocAddr,
        at: DateTime<Utc>,
    ) -> Result<Option<Document>> {
        let a = address.clone();
        let (found, oldest) = self
            .read(move |c| {
                let found =
                    crate::records::doc_versions(c, &a, false, Some(at.timestamp_micros()), 1)?;
                Ok((found.into_iter().next(), crate::records::doc_oldest(c, &a)?))
            })
            .await?;
        tierstate_core::plan::document_as_of(address, at, found, oldest)
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
            .read(move |c| crate::records::scan_docs(c, id.as_str(), &collection, &range, limit))
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
        self.read(move |c| {
            crate::records::collections(c, id.as_str(), after.as_ref().map(Name::as_str), limit)
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
        self.read(move |c| {
            crate::records::streams(c, id.as_str(), after.as_ref().map(Name::as_str), limit)
        })
        .await
    }

    async fn journal_info(&self, stream: &StreamAddr) -> Result<Option<JournalInfo>> {
        let s = stream.clone();
        let head = self
            .read(move |c| crate::records::journal_head(c, &s))
            .await?;
        Ok(head.map(JournalInfo::from))
    }

    async fn read_journal(&self, stream: &StreamAddr, query: JournalQuery) -> Result<JournalPage> {
        let s = stream.clone();
        let point = query.is_point();
        let read = move |c: &Connection| {
            // Head and rows from one snapshot, so a concurrent truncation cannot tear the read.
            c.execute_batch("BEGIN").map_err(crate::error::map)?;
            let out = (|| {
                let head = crate::records::journal_head(c, &s)?;
                let resolved = query.resolve(head, &s)?;
                let rows = crate::records::fetch(c, &s, &resolved.fetch)?;
                let mut linked = Vec::new();
                for p in resolved.links(&rows) {
                    linked.extend(crate::records::fetch(c, &s, &Fetch::Seq { lo: p, hi: p })?);
                }
                resolved.finish(&s, rows, linked, Tier::Warm)
            })();
            let _ = c.execute_batch("COMMIT");
            out
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
        self.read(move |c| reader::list(c, after.as_ref().map(|a| a.as_str()), limit))
            .await
    }

    async fn scan(
        &self,
        after: Option<&DeploymentId>,
        limit: usize,
    ) -> Result<Vec<Result<StateData>>> {
        let after = after.cloned();
        self.read(move |c| {
            let rows = reader::scan(c, after.as_ref().map(|a| a.as_str()), limit)?;
            Ok(rows
                .into_iter()
                .map(|r| r.and_then(|r| r.verify(Tier::Warm)))
                .collect())
        })
        .await
    }
}

/// The one fault seam: each fault runs inside the writer's own transaction.
#[cfg(feature = "test-hooks")]
#[async_trait]
impl tierstate_core::FaultSeam for SqliteStore {
    async fn inject(&self, fault: tierstate_core::Fault) -> Result<bool> {
        use tierstate_core::Fault;
        let run: crate::writer::HookFn = match fault {
            Fault::StateBytes {
                id,
                version,
                offset,
                mask,
            } => Box::new(move |c| crate::hooks::damage_state(c, &id, version, offset, mask)),
            Fault::DocumentBody(a) => Box::new(move |c| crate::hooks::damage_document(c, &a)),
            Fault::DocumentRowGone(a) => Box::new(move |c| crate::hooks::lose_document_row(c, &a)),
            Fault::Entry {
                stream,
                seq,
                damage,
            } => Box::new(move |c| crate::hooks::damage_entry(c, &stream, seq, damage)),
            Fault::FailAppends { stream, on } => {
                Box::new(move |c| crate::hooks::fail_appends(c, &stream, on))
            }
            other => {
                return Err(tierstate_core::Error::invalid(
                    "fault",
                    format!("{other:?} is not injected into SQLite"),
                ));
            }
        };
        self.send_job(|reply| Job::Hook { run, reply }).await
    }
}
