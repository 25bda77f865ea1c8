//! A deployment's book: a small head document (its version is the book's), a snapshot of the
//! whole book, and the changes since the snapshot as entries of a journal. A save writes the
//! head and, when this store knows the version it saves over, only the positions that changed
//! (one entry); otherwise, or once the changes reach half the book, a new snapshot. A book
//! stored whole (head schema 1, before this layout) is read, and its next save moves it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    Append, BatchOp, DeploymentId, DocAddr, DocWrite, JournalQuery, PutMode, StateStore,
    StreamAddr, Target, Tier, TruncateBefore, WriteBatch,
};

use crate::book::{Missing, PositionBook};
use crate::error::{PositionError, Result};
use crate::record::{PositionRecord, StoredPosition};

/// The collection books live in.
pub const COLLECTION: &str = "positions";
/// The key of a deployment's book head in [`COLLECTION`].
pub const BOOK_KEY: &str = "book";
/// The key of the book's snapshot in [`COLLECTION`].
pub const SNAPSHOT_KEY: &str = "book.snapshot";
/// The journal of the changes to the book since its snapshot.
pub const CHANGES: &str = "positions.book";
/// The whole-book document's schema ([`PositionBook::to_document`], the snapshot, and books
/// stored before the head); a stored book with a newer one is refused.
pub const BOOK_SCHEMA: u64 = 1;
/// The head's schema.
const HEAD_SCHEMA: u64 = 2;
/// Changes kept after a snapshot before the next save writes a new one.
const MAX_CHANGES: u64 = 64;
/// Loads retried when a concurrent save moved the book between its reads.
const LOAD_TRIES: usize = 8;

/// A book as loaded: the book and the document version to save over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBook {
    /// The book.
    pub book: PositionBook,
    /// Its document version (the `expected` of the next save).
    pub version: u64,
}

/// The book at the version this store last loaded or saved: what a save diffs against.
#[derive(Debug, Clone)]
struct Known {
    version: u64,
    /// The version whose save wrote the snapshot (0: a book stored whole, no snapshot).
    snapshot: u64,
    /// Positions written by the changes since the snapshot.
    pending: usize,
    book: Arc<PositionBook>,
}

/// Loads and saves one deployment's book on any [`StateStore`].
#[derive(Clone)]
pub struct PositionStore {
    store: Arc<dyn StateStore>,
    address: DocAddr,
    snapshot: DocAddr,
    changes: StreamAddr,
    known: Arc<std::sync::Mutex<Option<Known>>>,
}

impl std::fmt::Debug for PositionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionStore")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Head {
    /// The version whose save wrote the snapshot.
    snapshot: u64,
    /// Positions in the book.
    count: usize,
}

/// One save's changes: the book at `version` is the one before with these applied.
#[derive(Serialize)]
struct ChangeOut<'a> {
    version: u64,
    upsert: Vec<&'a PositionRecord>,
    remove: Vec<(String, String)>,
    chains: Vec<&'a str>,
    missing: Vec<MissingRow>,
}

#[derive(Deserialize)]
struct ChangeIn {
    version: u64,
    upsert: Vec<StoredPosition>,
    remove: Vec<(String, String)>,
    chains: Vec<String>,
    missing: Vec<MissingRow>,
}

impl PositionStore {
    /// The book of `deployment` in `store`.
    ///
    /// # Errors
    /// `InvalidInput` if the deployment id cannot address a document.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Result<Self> {
        Ok(Self {
            address: DocAddr::new(deployment.as_str(), COLLECTION, BOOK_KEY)?,
            snapshot: DocAddr::new(deployment.as_str(), COLLECTION, SNAPSHOT_KEY)?,
            changes: StreamAddr::new(deployment.as_str(), CHANGES)?,
            store,
            known: Arc::default(),
        })
    }

    /// Where the book's head is stored.
    pub fn address(&self) -> &DocAddr {
        &self.address
    }

    /// Where the book's snapshot is stored.
    pub fn snapshot_address(&self) -> &DocAddr {
        &self.snapshot
    }

    /// The journal of the book's changes since its snapshot.
    pub fn changes(&self) -> &StreamAddr {
        &self.changes
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The stored book, checksum verified and every field checked; `None` if never saved.
    ///
    /// # Errors
    /// `Store(Integrity)` for damaged bytes, or a snapshot and changes that do not make up the
    /// head's book; `NewerSchema`; `UnknownPositionType`, `InvalidDecimal`, `InvalidInput`
    /// naming the first bad field; `Store` for I/O.
    pub async fn load(&self) -> Result<Option<SavedBook>> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.load_once(tries == LOAD_TRIES).await? {
                Some(None) => return Ok(None),
                Some(Some(known)) => {
                    let saved = SavedBook {
                        book: (*known.book).clone(),
                        version: known.version,
                    };
                    self.remember(known);
                    return Ok(Some(saved));
                }
                None => {} // a save moved the book between two reads: again
            }
        }
    }

    /// One attempt: `None` if the reads did not agree (unless `last`, when that is damage).
    async fn load_once(&self, last: bool) -> Result<Option<Option<Known>>> {
        let Some(head) = self.store.get_document(&self.address).await? else {
            return Ok(Some(None));
        };
        let version = head.version;
        // A book stored whole (before the head) holds its positions.
        if head.value.contains_key("positions") {
            let book = Arc::new(decode(head.value)?);
            return Ok(Some(Some(Known {
                version,
                snapshot: 0,
                pending: 0,
                book,
            })));
        }
        let h: Head = tierstate_core::codec::decode_doc(HEAD_SCHEMA, head.value)
            .map_err(|e| stored("book head", e))?;
        let damaged = |target: Target, why: String| {
            PositionError::Store(tierstate_core::Error::Integrity {
                deployment_id: self.address.deployment_id.clone(),
                target,
                tier: Tier::Warm,
                version,
                expected: format!("the book at version {version}"),
                actual: why,
            })
        };
        // A save leaves at most MAX_CHANGES after the snapshot it names.
        let wanted = match version.checked_sub(h.snapshot) {
            Some(n) if n <= MAX_CHANGES => n,
            _ => {
                let why = format!("head names the snapshot of version {}", h.snapshot);
                return Err(damaged(Target::document(&self.address), why));
            }
        };
        let snap = self.store.get_document(&self.snapshot).await?;
        let snap_of = snap
            .as_ref()
            .and_then(|d| d.value.get("version"))
            .and_then(Value::as_u64);
        if snap_of != Some(h.snapshot) {
            if last {
                let why = format!("snapshot of version {snap_of:?}, head names {}", h.snapshot);
                return Err(damaged(Target::document(&self.snapshot), why));
            }
            return Ok(None);
        }
        let mut value = snap.map(|d| d.value).unwrap_or_default();
        value.remove("version");
        let mut book = decode(value)?;
        let mut pending = 0;
        if wanted > 0 {
            let page = self
                .store
                .read_journal(&self.changes, JournalQuery::newest(wanted as usize))
                .await?;
            let mut changes = Vec::with_capacity(page.entries.len());
            for e in page.entries.into_iter().rev() {
                let mut value = e.value;
                tierstate_core::codec::check_schema(&value, 1)
                    .map_err(|err| stored("book change", err))?;
                value.remove(tierstate_core::codec::SCHEMA_KEY);
                let c: ChangeIn = serde_json::from_value(Value::Object(value)).map_err(|err| {
                    let why = tierstate_core::codec::DecodeError::Malformed(err.to_string());
                    stored("book change", why)
                })?;
                changes.push(c);
            }
            let versions: Vec<u64> = changes.iter().map(|c| c.version).collect();
            let expected: Vec<u64> = (h.snapshot + 1..=version).collect();
            if versions != expected {
                if last {
                    let why = format!("changes for versions {versions:?}, not {expected:?}");
                    return Err(damaged(Target::journal(&self.changes), why));
                }
                return Ok(None);
            }
            for c in changes {
                pending += c.upsert.len() + c.remove.len();
                apply(&mut book, c)?;
            }
        }
        if book.len() != h.count {
            let why = format!("{} positions, head counts {}", book.len(), h.count);
            return Err(damaged(Target::document(&self.address), why));
        }
        Ok(Some(Some(Known {
            version,
            snapshot: h.snapshot,
            pending,
            book: Arc::new(book),
        })))
    }

    /// Saves `book` over version `expected` (`None`: the first save). Returns the new version.
    ///
    /// # Errors
    /// `Store(Conflict)` carrying the stored version if another writer saved first;
    /// `Store(AlreadyExists)` for a first save over an existing book.
    pub async fn save(&self, book: &PositionBook, expected: Option<u64>) -> Result<u64> {
        let change = self.plan_save(book, expected)?;
        self.store.write(WriteBatch::new().with(&change)).await?;
        let (version, whole) = (change.version, matches!(change.next, Next::Whole(_)));
        self.advance(change.next);
        if whole {
            self.forget_changes(version).await;
        }
        Ok(version)
    }

    /// Plans saving `book` over version `expected`, for a caller's own [`WriteBatch`] (state,
    /// journal entries and the book in one transaction). Over the version this store last
    /// loaded or saved, it writes only the positions that changed.
    ///
    /// # Errors
    /// `InvalidInput` if the book cannot be encoded.
    pub fn plan_save(&self, book: &PositionBook, expected: Option<u64>) -> Result<BookChange> {
        let version = expected.map_or(1, |v| v + 1);
        let mode = match expected {
            Some(v) => PutMode::Update { expected: v },
            None => PutMode::Create,
        };
        let known = self.known.lock().map(|k| k.clone()).unwrap_or_default();
        if let (Some(v), Some(k)) = (expected, known)
            && k.version == v
            && k.snapshot > 0
            && v + 1 - k.snapshot <= MAX_CHANGES
        {
            let out = diff(&k.book, book);
            let pending = k.pending + out.upsert.len() + out.remove.len();
            if pending <= (book.len() / 2).max(32) {
                let out = ChangeOut { version, ..out };
                let entry = Append::new(self.changes.clone(), Utc::now(), stamp(1, &out)?);
                let (chains, missing) = (
                    book.chains().map(str::to_owned).collect(),
                    missing_rows(book),
                );
                return Ok(BookChange {
                    version,
                    ops: vec![
                        self.head_write(mode, k.snapshot, book.len())?,
                        BatchOp::Append(entry),
                    ],
                    next: Next::Changed {
                        over: v,
                        pending,
                        upsert: out.upsert.iter().map(|p| (*p).clone()).collect(),
                        remove: out.remove.clone(),
                        chains,
                        missing,
                    },
                });
            }
        }
        // A snapshot: the whole book, and a head naming it.
        let mut whole = encode(book)?;
        whole.insert("version".into(), Value::from(version));
        Ok(BookChange {
            version,
            ops: vec![
                self.head_write(mode, version, book.len())?,
                BatchOp::Document(DocWrite::new(
                    self.snapshot.clone(),
                    PutMode::Overwrite,
                    whole,
                )),
            ],
            next: Next::Whole(Known {
                version,
                snapshot: version,
                pending: 0,
                book: Arc::new(book.clone()),
            }),
        })
    }

    /// The head's write: the book at its next version names the snapshot of `snapshot`.
    fn head_write(&self, mode: PutMode, snapshot: u64, count: usize) -> Result<BatchOp> {
        let head = Head { snapshot, count };
        let value = stamp(HEAD_SCHEMA, &head)?;
        Ok(BatchOp::Document(DocWrite::new(
            self.address.clone(),
            mode,
            value,
        )))
    }

    fn remember(&self, known: Known) {
        if let Ok(mut k) = self.known.lock() {
            *k = Some(known);
        }
    }

    /// After a save committed: the book as saved becomes the known one. A change is applied
    /// to the known book it was planned over (no copy of the whole book); if that is gone
    /// (another save or load meanwhile), nothing is known and the next save is a snapshot.
    fn advance(&self, next: Next) {
        let Ok(mut slot) = self.known.lock() else {
            return;
        };
        match next {
            Next::Whole(k) => *slot = Some(k),
            Next::Changed {
                over,
                pending,
                upsert,
                remove,
                chains,
                missing,
            } => {
                let Some(mut k) = slot.take().filter(|k| k.version == over) else {
                    return;
                };
                let book = Arc::make_mut(&mut k.book);
                if apply_records(book, &remove, chains, upsert, missing).is_ok() {
                    k.version = over + 1;
                    k.pending = pending;
                    *slot = Some(k);
                }
            }
        }
    }

    /// After a snapshot at `version`, removes the changes it folded in, keeping the newest
    /// entry (a journal keeps at least one). Best effort: a failure leaves them for the next
    /// snapshot, and a load reads only the changes after its snapshot.
    async fn forget_changes(&self, version: u64) {
        let Ok(page) = self
            .store
            .read_journal(&self.changes, JournalQuery::newest(1))
            .await
        else {
            return;
        };
        let Some(newest) = page.entries.first() else {
            return;
        };
        let folded = newest.value.get("version").and_then(Value::as_u64) < Some(version);
        if folded && newest.seq > 1 {
            let _ = self
                .store
                .truncate_journal(&self.changes, TruncateBefore::Seq(newest.seq))
                .await;
        }
    }
}

/// A planned save of the book ([`PositionStore::plan_save`]): it commits only if the book is
/// still at the version it was planned over.
#[derive(Debug, Clone)]
pub struct BookChange {
    /// The book's version once committed.
    pub version: u64,
    ops: Vec<BatchOp>,
    next: Next,
}

/// What a committed [`BookChange`] makes the known book.
#[derive(Debug, Clone)]
enum Next {
    /// A snapshot: the book as saved.
    Whole(Known),
    /// Changes over the known book at version `over`.
    Changed {
        over: u64,
        pending: usize,
        upsert: Vec<PositionRecord>,
        remove: Vec<(String, String)>,
        chains: Vec<String>,
        missing: Vec<MissingRow>,
    },
}

impl tierstate_core::Plan for BookChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// `value` as a document body stamped with `schema`.
fn stamp<T: Serialize>(schema: u64, value: &T) -> Result<Map<String, Value>> {
    tierstate_core::codec::encode_doc(schema, value).map_err(|e| PositionError::invalid("book", e))
}

fn stored(what: &'static str, e: tierstate_core::codec::DecodeError) -> PositionError {
    match e {
        tierstate_core::codec::DecodeError::Newer { found, supported } => {
            PositionError::NewerSchema { found, supported }
        }
        tierstate_core::codec::DecodeError::Malformed(m) => {
            PositionError::invalid("book", format!("stored {what} is malformed: {m}"))
        }
    }
}

/// What changed from `old` to `new`: positions added or different (decimals compared with
/// their scale), positions gone; the chains and missing runs whole (they are small).
fn diff<'a>(old: &PositionBook, new: &'a PositionBook) -> ChangeOut<'a> {
    use std::cmp::Ordering;
    let (mut upsert, mut remove) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => (&x.chain, &x.id).cmp(&(&y.chain, &y.id)),
        };
        match order {
            Ordering::Less => {
                let gone = a.next().expect("peeked");
                remove.push((gone.chain.clone(), gone.id.clone()));
            }
            Ordering::Greater => upsert.push(b.next().expect("peeked")),
            Ordering::Equal => {
                let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                if !identical(x, y) {
                    upsert.push(y);
                }
            }
        }
    }
    ChangeOut {
        version: 0,
        upsert,
        remove,
        chains: new.chains().collect(),
        missing: missing_rows(new),
    }
}

/// Whether two records are stored the same: every field, decimals with their scale.
fn identical(x: &PositionRecord, y: &PositionRecord) -> bool {
    let same = |a: &rust_decimal::Decimal, b: &rust_decimal::Decimal| {
        a.mantissa() == b.mantissa() && a.scale() == b.scale()
    };
    let same_opt =
        |a: &Option<rust_decimal::Decimal>, b: &Option<rust_decimal::Decimal>| match (a, b) {
            (Some(a), Some(b)) => same(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
    // Destructured so that a new field cannot be left out of the comparison.
    let PositionRecord {
        id,
        chain,
        kind,
        protocol,
        token,
        amount,
        value_usd,
        created_at,
        updated_at,
        metadata,
        entry_price,
        mark_price,
        unrealized_pnl,
        leverage,
        liquidation_price,
    } = x;
    *id == y.id
        && *chain == y.chain
        && *kind == y.kind
        && *protocol == y.protocol
        && *token == y.token
        && same(amount, &y.amount)
        && same(value_usd, &y.value_usd)
        && *created_at == y.created_at
        && *updated_at == y.updated_at
        && *metadata == y.metadata
        && same_opt(entry_price, &y.entry_price)
        && same_opt(mark_price, &y.mark_price)
        && same_opt(unrealized_pnl, &y.unrealized_pnl)
        && same_opt(leverage, &y.leverage)
        && same_opt(liquidation_price, &y.liquidation_price)
}

/// Applies one stored change to `book`.
fn apply(book: &mut PositionBook, c: ChangeIn) -> Result<()> {
    let upsert = c
        .upsert
        .into_iter()
        .map(StoredPosition::into_record)
        .collect::<Result<Vec<_>>>()?;
    apply_records(book, &c.remove, c.chains, upsert, c.missing)
}

/// Removes, sets the chains, upserts and sets the missing runs: one change.
fn apply_records(
    book: &mut PositionBook,
    remove: &[(String, String)],
    chains: Vec<String>,
    upsert: Vec<PositionRecord>,
    missing: Vec<MissingRow>,
) -> Result<()> {
    for (chain, id) in remove {
        if book.remove(id, chain)?.is_none() {
            return Err(PositionError::invalid(
                "book",
                format!("a stored change removes {id} on {chain}, which the book does not hold"),
            ));
        }
    }
    if !chains.iter().eq(book.chains()) {
        book.set_chains(chains)?;
    }
    for p in upsert {
        book.upsert(p)?;
    }
    set_missing(book, missing)
}

fn missing_rows(book: &PositionBook) -> Vec<MissingRow> {
    book.missing_map()
        .iter()
        .map(|((chain, id), m)| MissingRow {
            chain: chain.clone(),
            id: id.clone(),
            runs: m.runs,
            since: m.since,
        })
        .collect()
}

/// Sets the missing runs of `rows` on the positions `book` holds.
fn set_missing(book: &mut PositionBook, rows: Vec<MissingRow>) -> Result<()> {
    book.clear_missing();
    for m in rows {
        if book.get(&m.id, &m.chain)?.is_some() {
            book.set_missing(
                &m.chain,
                &m.id,
                Some(Missing {
                    runs: m.runs,
                    since: m.since,
                }),
            );
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct BookOut<'a> {
    chains: Vec<&'a str>,
    positions: Vec<&'a PositionRecord>,
    missing: Vec<MissingRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MissingRow {
    chain: String,
    id: String,
    runs: u32,
    since: DateTime<Utc>,
}

#[derive(Deserialize)]
struct BookIn {
    schema: u64,
    chains: Vec<String>,
    positions: Vec<StoredPosition>,
    #[serde(default)]
    missing: Vec<MissingRow>,
}

/// The book as a document value.
pub(crate) fn encode(book: &PositionBook) -> Result<Map<String, Value>> {
    let out = BookOut {
        chains: book.chains().collect(),
        positions: book.iter().collect(),
        missing: missing_rows(book),
    };
    tierstate_core::codec::encode_doc(BOOK_SCHEMA, &out)
        .map_err(|e| PositionError::invalid("book", e))
}

/// The book from a document value; the first bad field is named.
pub(crate) fn decode(value: Map<String, Value>) -> Result<PositionBook> {
    // Core's one codec says whether a newer build wrote it; the positions decode their own
    // decimals exactly, field by field.
    if let Err(tierstate_core::codec::DecodeError::Newer { found, .. }) =
        tierstate_core::codec::check_schema(&value, BOOK_SCHEMA)
    {
        return Err(PositionError::NewerSchema {
            found,
            supported: BOOK_SCHEMA,
        });
    }
    let stored: BookIn = serde_json::from_value(Value::Object(value))
        .map_err(|e| PositionError::invalid("book", format!("stored book is malformed: {e}")))?;
    if stored.schema != BOOK_SCHEMA {
        return Err(PositionError::invalid(
            "book",
            format!("unknown schema {}", stored.schema),
        ));
    }
    let mut book = PositionBook::new(stored.chains)?;
    for p in stored.positions {
        let r = p.into_record()?;
        let (chain, id) = (r.chain.clone(), r.id.clone());
        if book.upsert(r)?.is_some() {
            return Err(PositionError::invalid(
                "book",
                format!("position {id} on {chain} is stored twice"),
            ));
        }
    }
    set_missing(&mut book, stored.missing)?;
    Ok(book)
}
