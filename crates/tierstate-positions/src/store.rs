//! A deployment's book as one versioned document: saved with CAS, loaded exactly.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{BatchOp, DeploymentId, DocAddr, DocWrite, PutMode, StateStore, WriteBatch};

use crate::book::{Missing, PositionBook};
use crate::error::{PositionError, Result};
use crate::record::{PositionRecord, StoredPosition};

/// The collection books live in.
pub const COLLECTION: &str = "positions";
/// The key of a deployment's book in [`COLLECTION`].
pub const BOOK_KEY: &str = "book";
/// The book document's schema; a stored book with a newer one is refused.
pub const BOOK_SCHEMA: u64 = 1;

/// A book as loaded: the book and the document version to save over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBook {
    /// The book.
    pub book: PositionBook,
    /// Its document version (the `expected` of the next save).
    pub version: u64,
}

/// Loads and saves one deployment's book on any [`StateStore`].
#[derive(Clone)]
pub struct PositionStore {
    store: Arc<dyn StateStore>,
    address: DocAddr,
}

impl std::fmt::Debug for PositionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionStore")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl PositionStore {
    /// The book of `deployment` in `store`.
    ///
    /// # Errors
    /// `InvalidInput` if the deployment id cannot address a document.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Result<Self> {
        let address = DocAddr::new(deployment.as_str(), COLLECTION, BOOK_KEY)?;
        Ok(Self { store, address })
    }

    /// Where the book is stored.
    pub fn address(&self) -> &DocAddr {
        &self.address
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The stored book, checksum verified and every field checked; `None` if never saved.
    ///
    /// # Errors
    /// `Store(Integrity)` for damaged bytes; `NewerSchema`; `UnknownPositionType`,
    /// `InvalidDecimal`, `InvalidInput` naming the first bad field; `Store` for I/O.
    pub async fn load(&self) -> Result<Option<SavedBook>> {
        let Some(doc) = self.store.get_document(&self.address).await? else {
            return Ok(None);
        };
        Ok(Some(SavedBook {
            book: decode(doc.value)?,
            version: doc.version,
        }))
    }

    /// Saves `book` over version `expected` (`None`: the first save). Returns the new version.
    ///
    /// # Errors
    /// `Store(Conflict)` carrying the stored version if another writer saved first;
    /// `Store(AlreadyExists)` for a first save over an existing book.
    pub async fn save(&self, book: &PositionBook, expected: Option<u64>) -> Result<u64> {
        let change = self.plan_save(book, expected)?;
        self.store.write(WriteBatch::new().with(&change)).await?;
        Ok(change.version)
    }

    /// Plans saving `book` over version `expected`, for a caller's own [`WriteBatch`] (state,
    /// journal entries and the book in one transaction).
    ///
    /// # Errors
    /// `InvalidInput` if the book cannot be encoded.
    pub fn plan_save(&self, book: &PositionBook, expected: Option<u64>) -> Result<BookChange> {
        let mode = match expected {
            Some(v) => PutMode::Update { expected: v },
            None => PutMode::Create,
        };
        Ok(BookChange {
            version: expected.map_or(1, |v| v + 1),
            ops: vec![BatchOp::Document(DocWrite::new(
                self.address.clone(),
                mode,
                encode(book)?,
            ))],
        })
    }
}

/// A planned save of the book ([`PositionStore::plan_save`]): it commits only if the book is
/// still at the version it was planned over.
#[derive(Debug, Clone)]
pub struct BookChange {
    /// The book's version once committed.
    pub version: u64,
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for BookChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

#[derive(Serialize)]
struct BookOut<'a> {
    chains: Vec<&'a str>,
    positions: Vec<&'a PositionRecord>,
    missing: Vec<MissingRow>,
}

#[derive(Serialize, Deserialize)]
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
        missing: book
            .missing_map()
            .iter()
            .map(|((chain, id), m)| MissingRow {
                chain: chain.clone(),
                id: id.clone(),
                runs: m.runs,
                since: m.since,
            })
            .collect(),
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
    for m in stored.missing {
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
    Ok(book)
}
