//! Core types of tierstate: deployment ids, versioned state, documents and hash-chained
//! journals, the error type, canonical JSON with its SHA-256 checksum, batch planning, and the
//! [`StateStore`] trait every WARM backend implements.
//!
//! Backends only move bytes: the semantics of a write (which version it gets, when it conflicts)
//! live here, in [`cas`], so every backend behaves identically and the conformance suite in
//! `tierstate-testkit` checks that they do.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> tierstate_core::Result<()> {
//! use serde_json::json;
//! use tierstate_core::{DeploymentId, Error, InMemoryStore, StateStore, StateWrite, WriteBatch};
//!
//! let store = InMemoryStore::new();
//! let id = DeploymentId::new("grid-btc")?;
//! let body = |n: i64| json!({ "cash": n }).as_object().cloned().unwrap();
//! store.commit(WriteBatch::new().put(StateWrite::create(id.clone(), body(100)))).await?;
//! store.commit(WriteBatch::new().put(StateWrite::update(id.clone(), 1, body(90)))).await?;
//!
//! // A write against a version that is no longer the head changes nothing and says why.
//! let stale = store.commit(WriteBatch::new().put(StateWrite::update(id.clone(), 1, body(0))));
//! assert!(matches!(stale.await, Err(Error::Conflict { expected: 1, actual: Some(2), .. })));
//! assert_eq!(store.get(&id).await?.unwrap().version, 2);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod backup;
pub mod batch;
pub mod canonical;
pub mod cas;
pub mod codec;
pub mod compress;
pub mod copy;
mod document;
mod error;
pub mod exact;
pub mod fault;
mod feed;
mod finite;
pub mod group;
mod id;
pub mod journal;
pub mod memory;
mod names;
pub mod plan;
mod redact;
pub mod retry;
mod schema;
mod side;
mod signal;
mod state;
mod store;
mod tail;

pub use batch::{
    BatchOp, Plan, PreparedAppend, PreparedBatch, PreparedDoc, PreparedWrite, PutMode, Retention,
    StateWrite, WriteBatch, json_kind,
};
pub use canonical::{Checksum, canonical_json};
pub use document::{DocWrite, Document, KeyRange, StoredDoc};
pub use error::{BackendErrorKind, Error, Result};
pub use exact::parse_decimal;
pub use fault::{Fault, FaultSeam};
pub use feed::{Change, ChangeFeed};
pub use id::{DeploymentId, MAX_ID_LEN, check_id};
pub use journal::{
    Append, Appended, JournalEntry, JournalInfo, JournalPage, JournalQuery, StoredEntry,
    TruncateBefore,
};
pub use memory::InMemoryStore;
pub use names::{DocAddr, Name, StreamAddr, Target};
pub use plan::Committed;
pub use redact::redact_url;
pub use retry::{Backoff, Retried, RetryPolicy, retry_if};
pub use schema::{SchemaMigrate, SchemaStatus, SchemaStep};
pub use side::Side;
pub use signal::Signal;
pub use state::{StateData, StoredRecord, Tier, commit_time, epoch_micros, truncate_to_micros};
pub use store::{CommitProbe, StateStore};
pub use tail::JournalTail;

/// Largest canonical state body a store accepts (64 MiB); larger writes are `InvalidInput`.
pub const MAX_STATE_BYTES: usize = 64 * 1024 * 1024;

/// Deepest nesting of arrays and objects a state may have, counting the state object itself as
/// level 1. Deeper writes are `InvalidInput` before anything is queued; the write path recurses
/// no deeper, and serde_json (the read path, limit 128) parses everything it accepts.
pub const MAX_STATE_DEPTH: usize = 100;

/// Largest payload schema version a store accepts (every backend stores it as a signed 32-bit
/// integer); larger values are `InvalidInput`, never clamped.
pub const MAX_SCHEMA_VERSION: u32 = i32::MAX as u32;
