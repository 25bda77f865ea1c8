//! A logical copy of every record from one store into another, empty one: each retained state
//! version, document version and journal entry with its own version number, commit times,
//! checksum and chain hashes, and each journal's truncation anchor. Every record is read
//! verified, re-encoded to the bytes its checksum covers (checked again), and written through
//! [`StateStore::restore`] in plans of at most [`ROWS_PER_PLAN`] rows.

use std::collections::HashSet;

use crate::journal::{JournalHead, JournalQuery, StoredEntry};
use crate::plan::{Plan, RowWrite};
use crate::{Checksum, DeploymentId, DocAddr, Error, Name, Result, StateStore, StreamAddr};

/// Rows written per restore transaction.
pub const ROWS_PER_PLAN: usize = 1_000;

/// Deployments, collections, documents and entries read per page.
const PAGE: usize = 1_000;

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Deployments holding any record.
    pub deployments: u64,
    /// State versions.
    pub states: u64,
    /// Document versions.
    pub documents: u64,
    /// Journal entries.
    pub entries: u64,
    /// Journals.
    pub journals: u64,
}

/// Copies every deployment of `from` into `to`, which must hold none; `progress` hears the
/// running counts after each plan is written.
///
/// # Errors
/// `InvalidInput` if `to` holds any deployment, or if a journal has no retained entry (its
/// anchor cannot be read through the trait); the first damaged record's `Integrity` error,
/// naming it (what was written before stays in `to`); what either store fails with.
pub async fn copy_all(
    from: &dyn StateStore,
    to: &dyn StateStore,
    mut progress: impl FnMut(&Copied),
) -> Result<Copied> {
    if let Some(first) = to.deployments(None, 1).await?.first() {
        return Err(Error::invalid(
            "copy",
            format!(
                "the destination already holds records (deployment {first}): copy writes \
                 only into an empty store"
            ),
        ));
    }
    let mut out = Batcher {
        to,
        plan: Plan::empty(),
        rows: 0,
        seen: HashSet::new(),
        copied: Copied::default(),
    };
    let mut after: Option<DeploymentId> = None;
    loop {
        let ids = from.deployments(after.as_ref(), PAGE).await?;
        for id in &ids {
            copy_deployment(from, id, &mut out, &mut progress).await?;
            out.copied.deployments += 1;
        }
        match ids.last() {
            Some(last) if ids.len() == PAGE => after = Some(last.clone()),
            _ => break,
        }
    }
    out.flush(&mut progress).await?;
    Ok(out.copied)
}

async fn copy_deployment(
    from: &dyn StateStore,
    id: &DeploymentId,
    out: &mut Batcher<'_>,
    progress: &mut impl FnMut(&Copied),
) -> Result<()> {
    // State versions, oldest first.
    let mut versions = from.history(id, usize::MAX).await?;
    versions.reverse();
    let oldest = versions.first().map(|s| s.version);
    for s in versions {
        let first = Some(s.version) == oldest;
        let mut row = RowWrite::of_state(&s, oldest.filter(|&o| o > 1 && first), false)?;
        row.is_new = first;
        out.key(Key::State(id.clone()), progress).await?;
        out.plan.states.push(row);
        out.copied.states += 1;
        out.rows += 1;
    }
    // Documents, every retained version, oldest first.
    let mut after_coll: Option<Name> = None;
    loop {
        let colls = from.collections(id, after_coll.as_ref(), PAGE).await?;
        for c in &colls {
            let mut after_key: Option<Name> = None;
            loop {
                let page = from.list_documents(id, c, after_key.as_ref(), PAGE).await?;
                let n = page.len();
                for d in page {
                    let d = d?;
                    after_key = Some(d.address.key.clone());
                    copy_document(from, &d.address, out, progress).await?;
                }
                if n < PAGE {
                    break;
                }
            }
        }
        match colls.last() {
            Some(last) if colls.len() == PAGE => after_coll = Some(last.clone()),
            _ => break,
        }
    }
    // Journals, every retained entry, with the anchor the first one links to.
    let mut after_stream: Option<Name> = None;
    loop {
        let streams = from.streams(id, after_stream.as_ref(), PAGE).await?;
        for s in &streams {
            let addr = StreamAddr {
                deployment_id: id.clone(),
                stream: s.clone(),
            };
            copy_journal(from, &addr, out, progress).await?;
        }
        match streams.last() {
            Some(last) if streams.len() == PAGE => after_stream = Some(last.clone()),
            _ => break,
        }
    }
    Ok(())
}

async fn copy_document(
    from: &dyn StateStore,
    address: &DocAddr,
    out: &mut Batcher<'_>,
    progress: &mut impl FnMut(&Copied),
) -> Result<()> {
    let mut versions = from.document_history(address, usize::MAX).await?;
    versions.reverse();
    let oldest = versions.first().map(|d| d.version);
    for d in versions {
        let first = Some(d.version) == oldest;
        let mut row = RowWrite::of_document(&d, oldest.filter(|&o| o > 1 && first), false)?;
        row.is_new = first;
        out.key(Key::Document(address.clone()), progress).await?;
        out.plan.documents.push(row);
        out.copied.documents += 1;
        out.rows += 1;
    }
    Ok(())
}

async fn copy_journal(
    from: &dyn StateStore,
    stream: &StreamAddr,
    out: &mut Batcher<'_>,
    progress: &mut impl FnMut(&Copied),
) -> Result<()> {
    let Some(info) = from.journal_info(stream).await? else {
        return Ok(());
    };
    if info.count == 0 {
        return Err(Error::invalid(
            "copy",
            format!(
                "journal {stream} has no retained entry (truncated to seq {}): its chain anchor \
                 cannot be copied",
                info.last_seq
            ),
        ));
    }
    out.copied.journals += 1;
    let mut base: Option<(u64, Checksum)> = None;
    let mut query = Some(JournalQuery::Range {
        from: info.first_seq,
        to: u64::MAX,
        descending: false,
        limit: PAGE,
    });
    while let Some(q) = query {
        let page = from.read_journal(stream, q).await?;
        query = page.next;
        for e in page.entries {
            let anchor = *base.get_or_insert((e.seq - 1, e.prev_hash));
            out.key(Key::Journal(stream.clone()), progress).await?;
            out.plan.entries.push(StoredEntry::of_entry(&e)?);
            let head = JournalHead {
                last_seq: e.seq,
                last_hash: e.hash,
                last_commit_us: e.commit_time.timestamp_micros(),
                base_seq: anchor.0,
                base_hash: anchor.1,
            };
            // One head per journal per plan: the last entry's.
            match out.plan.heads.last_mut() {
                Some((s, h, _)) if s == stream => *h = head,
                _ => out.plan.heads.push((stream.clone(), head, false)),
            }
            out.copied.entries += 1;
            out.rows += 1;
        }
    }
    Ok(())
}

/// The record a plan row belongs to: a plan holds at most one row per state or document (a
/// journal's entries go in together, with one head).
#[derive(Hash, PartialEq, Eq)]
enum Key {
    State(DeploymentId),
    Document(DocAddr),
    Journal(StreamAddr),
}

struct Batcher<'a> {
    to: &'a dyn StateStore,
    plan: Plan,
    rows: usize,
    seen: HashSet<Key>,
    copied: Copied,
}

impl Batcher<'_> {
    /// Makes room for a row of `key`: writes the plan first if it is full or already holds a
    /// version of that state or document.
    async fn key(&mut self, key: Key, progress: &mut impl FnMut(&Copied)) -> Result<()> {
        let repeat = !matches!(key, Key::Journal(_)) && self.seen.contains(&key);
        if self.rows >= ROWS_PER_PLAN || repeat {
            self.flush(progress).await?;
        }
        self.seen.insert(key);
        Ok(())
    }

    async fn flush(&mut self, progress: &mut impl FnMut(&Copied)) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let plan = std::mem::replace(&mut self.plan, Plan::empty());
        self.to.restore(plan).await?;
        self.rows = 0;
        self.seen.clear();
        progress(&self.copied);
        Ok(())
    }
}
