//! What a caller asks a store to write: CAS writes, grouped in an all-or-nothing batch.

use std::collections::HashSet;
use std::num::NonZeroU32;

use serde::Serialize;
use serde_json::{Map, Value};

use chrono::{DateTime, Utc};

use crate::{
    Append, Checksum, DeploymentId, DocAddr, DocWrite, Error, MAX_SCHEMA_VERSION, MAX_STATE_BYTES,
    Result, StateData, Tier, canonical_json,
};

/// What a write expects to find, like object_store's `PutMode`. There is no implicit rule:
/// every write says which of the three it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Create version 1; fails with `AlreadyExists` if the deployment exists.
    Create,
    /// Replace version `expected`; fails with `Conflict` if the stored version differs or the
    /// deployment is absent.
    Update {
        /// The version the caller read and wants to replace.
        expected: u64,
    },
    /// Write whatever is stored (or create it). Last writer wins; use only for repair tools.
    Overwrite,
}

/// How many versions of each deployment a commit keeps (the newest is always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep the newest `n` versions; older ones are pruned in the same transaction: no read
    /// returns them after it commits, whatever later writes keep. (SQLite may delete their
    /// rows a few commits later, in runs.)
    KeepLast(NonZeroU32),
    /// Keep every version.
    KeepAll,
}

impl Retention {
    /// The default: the last 32 versions per deployment.
    pub const DEFAULT: Retention = Retention::KeepLast(NonZeroU32::new(32).unwrap());

    /// An embedded store deletes pruned rows when the boundary reaches a multiple of this: one
    /// delete per run of versions rather than one per commit (reads never see them either way).
    pub const PRUNE_RUN: u64 = 16;

    /// True if the commit that moves the boundary to `below` deletes the rows under it now: on
    /// a run boundary, or on every commit when fewer versions than a run are kept (such a
    /// record may never reach a run's end, and its rows would stay on disk).
    pub fn reclaims_at(self, below: u64) -> bool {
        below.is_multiple_of(Self::PRUNE_RUN)
            || matches!(self, Retention::KeepLast(n) if u64::from(n.get()) < Self::PRUNE_RUN)
    }

    /// Versions strictly below the returned one are pruned after committing `new_version`.
    pub fn prune_below(self, new_version: u64) -> Option<u64> {
        match self {
            Retention::KeepAll => None,
            Retention::KeepLast(n) => {
                let keep_from = new_version.saturating_sub(u64::from(n.get()) - 1);
                (keep_from > 1).then_some(keep_from)
            }
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One compare-and-swap write of a deployment's state.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    /// The deployment written.
    pub deployment_id: DeploymentId,
    /// The new state.
    pub state: Map<String, Value>,
    /// Payload schema version stored with it (default 1).
    pub schema_version: u32,
    /// What the write expects to find.
    pub mode: PutMode,
}

impl StateWrite {
    /// A write with an explicit mode.
    pub fn new(deployment_id: DeploymentId, mode: PutMode, state: Map<String, Value>) -> Self {
        Self {
            deployment_id,
            state,
            schema_version: 1,
            mode,
        }
    }

    /// Create-only write of version 1.
    pub fn create(deployment_id: DeploymentId, state: Map<String, Value>) -> Self {
        Self::new(deployment_id, PutMode::Create, state)
    }

    /// Write that replaces exactly version `expected`.
    pub fn update(deployment_id: DeploymentId, expected: u64, state: Map<String, Value>) -> Self {
        Self::new(deployment_id, PutMode::Update { expected }, state)
    }

    /// Unconditional write.
    pub fn overwrite(deployment_id: DeploymentId, state: Map<String, Value>) -> Self {
        Self::new(deployment_id, PutMode::Overwrite, state)
    }

    /// A write from any JSON value.
    ///
    /// # Errors
    /// `InvalidInput` if `state` is not a JSON object.
    pub fn from_value(deployment_id: DeploymentId, mode: PutMode, state: Value) -> Result<Self> {
        match state {
            Value::Object(map) => Ok(Self::new(deployment_id, mode, map)),
            other => Err(Error::invalid(
                "state",
                format!("must be a JSON object, got {}", json_kind(&other)),
            )),
        }
    }

    /// A write from a typed value that serializes to a JSON object.
    ///
    /// # Errors
    /// `Serialization` if serde fails; `InvalidInput` if `T` does not serialize to an object,
    /// holds a NaN or infinite number (JSON has none: serde_json would store `null`; the error
    /// names the field path), or nests deeper than [`crate::MAX_STATE_DEPTH`].
    pub fn typed<T: Serialize>(
        deployment_id: DeploymentId,
        mode: PutMode,
        state: &T,
    ) -> Result<Self> {
        crate::finite::check(state)?;
        let value = serde_json::to_value(state).map_err(|source| Error::Serialization {
            deployment_id: deployment_id.clone(),
            source,
        })?;
        Self::from_value(deployment_id, mode, value)
    }

    /// Sets the payload schema version.
    pub fn with_schema_version(mut self, schema_version: u32) -> Self {
        self.schema_version = schema_version;
        self
    }
}

/// What sort of JSON value `v` is, for error messages ("an array", "null", …).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One member of a [`WriteBatch`]: every record kind commits in the same backend transaction.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BatchOp {
    /// A CAS write of a deployment's state.
    Put(StateWrite),
    /// A CAS write of a document.
    Document(DocWrite),
    /// Removes a document and its history; with `expected`, only if that version is stored.
    DeleteDocument {
        /// The document.
        address: DocAddr,
        /// The version the caller expects to remove (`None`: whatever is there).
        expected: Option<u64>,
    },
    /// An append to a journal.
    Append(Append),
    /// A guard that writes nothing: the batch commits only if the document stands at
    /// `version` (`None`: absent), so a batch can depend on a record it read but does not
    /// change (e.g. an event stamped with the registry row it refers to).
    Expect {
        /// The document.
        address: DocAddr,
        /// The version it must have (`None`: it must not exist).
        version: Option<u64>,
    },
}

/// The records one domain change writes, planned against what it read: every domain offers its
/// changes as plans. Add any number of plans (of any domains) to a [`WriteBatch`] and commit
/// it once: all of them land or none does, and each lands only if what it read is unchanged.
/// A domain's convenience method is its plan and a commit.
pub trait Plan {
    /// The batch members, in order.
    fn ops(&self) -> &[BatchOp];
}

impl<P: Plan + ?Sized> Plan for &P {
    fn ops(&self) -> &[BatchOp] {
        (**self).ops()
    }
}

/// A batch is a plan too: a caller's own records join another batch whole.
impl Plan for WriteBatch {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// Writes that commit all together or not at all, in one backend transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    retention: Retention,
}

/// Appends members in order: a domain's planned writes join the caller's batch.
impl Extend<BatchOp> for WriteBatch {
    fn extend<I: IntoIterator<Item = BatchOp>>(&mut self, ops: I) {
        self.ops.extend(ops);
    }
}

impl WriteBatch {
    /// An empty batch with the default retention.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a state write.
    pub fn put(mut self, write: StateWrite) -> Self {
        self.ops.push(BatchOp::Put(write));
        self
    }

    /// Adds a document write.
    pub fn document(mut self, write: DocWrite) -> Self {
        self.ops.push(BatchOp::Document(write));
        self
    }

    /// Adds a document removal.
    pub fn delete_document(mut self, address: DocAddr, expected: Option<u64>) -> Self {
        self.ops.push(BatchOp::DeleteDocument { address, expected });
        self
    }

    /// Adds a guard: the batch commits only if `address` stands at `version` (`None`: absent).
    pub fn expect(mut self, address: DocAddr, version: Option<u64>) -> Self {
        self.ops.push(BatchOp::Expect { address, version });
        self
    }

    /// Adds a journal append.
    pub fn append(mut self, append: Append) -> Self {
        self.ops.push(BatchOp::Append(append));
        self
    }

    /// Adds a member.
    pub fn push(&mut self, op: BatchOp) {
        self.ops.push(op);
    }

    /// Adds every member of `plan`, in order.
    pub fn with(mut self, plan: &(impl Plan + ?Sized)) -> Self {
        self.ops.extend(plan.ops().iter().cloned());
        self
    }

    /// Sets how many versions per deployment the commit keeps.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The retention this batch commits with.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The members, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// The members, mutable (a manager stamps payload schema versions on them).
    pub fn ops_mut(&mut self) -> &mut [BatchOp] {
        &mut self.ops
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if the batch has no members.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Validates every member and encodes it canonically, before any backend work.
    ///
    /// # Errors
    /// `InvalidInput` if a state is larger than [`MAX_STATE_BYTES`], an update expects version
    /// 0, or one deployment appears twice in the batch (its outcome would be ambiguous).
    pub fn prepare(self) -> Result<PreparedBatch> {
        let mut seen = HashSet::with_capacity(self.ops.len());
        let mut seen_docs = HashSet::new();
        let mut out = PreparedBatch {
            writes: Vec::new(),
            documents: Vec::new(),
            removals: Vec::new(),
            appends: Vec::new(),
            checks: Vec::new(),
            retention: self.retention,
        };
        for op in self.ops {
            match op {
                BatchOp::Put(w) => {
                    if !seen.insert(w.deployment_id.clone()) {
                        return Err(Error::invalid(
                            "batch",
                            format!("deployment {} appears more than once", w.deployment_id),
                        ));
                    }
                    out.writes.push(PreparedWrite::new(w)?);
                }
                BatchOp::Document(d) => {
                    once(&mut seen_docs, &d.address)?;
                    if let PutMode::Update { expected: 0 } = d.mode {
                        return Err(Error::invalid("expected version", "versions start at 1"));
                    }
                    let (body, checksum) = match encode(&d.value, "document") {
                        Ok(x) => x,
                        Err(e) => {
                            crate::canonical::dismantle(d.value);
                            return Err(e);
                        }
                    };
                    out.documents.push(PreparedDoc {
                        write: d,
                        body: crate::compress::pack(body),
                        checksum,
                    });
                }
                BatchOp::DeleteDocument { address, expected } => {
                    once(&mut seen_docs, &address)?;
                    out.removals.push((address, expected));
                }
                BatchOp::Expect { address, version } => {
                    once(&mut seen_docs, &address)?;
                    if version == Some(0) {
                        return Err(Error::invalid("expected version", "versions start at 1"));
                    }
                    out.checks.push((address, version));
                }
                BatchOp::Append(a) => {
                    let (body, checksum) = match encode(&a.value, "entry") {
                        Ok(x) => x,
                        Err(e) => {
                            crate::canonical::dismantle(a.value);
                            return Err(e);
                        }
                    };
                    out.appends.push(PreparedAppend {
                        append: a,
                        body,
                        checksum,
                    });
                }
            }
        }
        Ok(out)
    }
}

fn once(seen: &mut HashSet<DocAddr>, address: &DocAddr) -> Result<()> {
    if seen.insert(address.clone()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "batch",
            format!("document {address} appears more than once"),
        ))
    }
}

/// Canonical bytes and checksum of a record body, within the size and depth limits.
fn encode(value: &Map<String, Value>, field: &'static str) -> Result<(Vec<u8>, Checksum)> {
    let body = canonical_json(value)?;
    if body.len() > MAX_STATE_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "is {} bytes of JSON, the limit is {MAX_STATE_BYTES}",
                body.len()
            ),
        ));
    }
    let checksum = Checksum::of(&body);
    Ok((body, checksum))
}

/// A validated batch, ready for a backend.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// The state writes, in batch order.
    pub writes: Vec<PreparedWrite>,
    /// The document writes, in batch order.
    pub documents: Vec<PreparedDoc>,
    /// The document removals, in batch order, with the version each expects.
    pub removals: Vec<(DocAddr, Option<u64>)>,
    /// The journal appends, in batch order.
    pub appends: Vec<PreparedAppend>,
    /// The guards: documents that must stand at a version (`None`: absent).
    pub checks: Vec<(DocAddr, Option<u64>)>,
    /// How many versions to keep per deployment and per document.
    pub retention: Retention,
}

impl PreparedBatch {
    /// True if the batch has no members.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.documents.is_empty()
            && self.removals.is_empty()
            && self.appends.is_empty()
            && self.checks.is_empty()
    }
}

/// A validated document write with the body to store (canonical JSON, compressed above the
/// threshold) and the checksum of the canonical JSON.
#[derive(Debug, Clone)]
pub struct PreparedDoc {
    /// The write as given.
    pub write: DocWrite,
    /// The bytes to store: canonical JSON, zstd-compressed above the threshold.
    pub body: Vec<u8>,
    /// SHA-256 of the canonical JSON.
    pub checksum: Checksum,
}

/// A validated journal append with its canonical body and checksum.
#[derive(Debug, Clone)]
pub struct PreparedAppend {
    /// The append as given.
    pub append: Append,
    /// Canonical JSON bytes.
    pub body: Vec<u8>,
    /// SHA-256 of `body`.
    pub checksum: Checksum,
}

/// A validated state write with the body to store (canonical JSON, compressed above the
/// threshold) and the checksum of the canonical JSON.
#[derive(Debug, Clone)]
pub struct PreparedWrite {
    /// The deployment written.
    pub deployment_id: DeploymentId,
    /// What the write expects.
    pub mode: PutMode,
    /// Payload schema version.
    pub schema_version: u32,
    /// The state as given (kept so the committed record needs no re-parse).
    pub state: Map<String, Value>,
    /// The bytes to store: the state's canonical JSON, zstd-compressed above the threshold.
    pub body: Vec<u8>,
    /// SHA-256 of the canonical JSON.
    pub checksum: Checksum,
}

impl PreparedWrite {
    /// Validates and encodes one write.
    ///
    /// # Errors
    /// `InvalidInput` for a state larger than [`MAX_STATE_BYTES`] or nested deeper than
    /// [`crate::MAX_STATE_DEPTH`], a schema version above [`MAX_SCHEMA_VERSION`], or an update
    /// that expects version 0.
    pub fn new(w: StateWrite) -> Result<Self> {
        if let PutMode::Update { expected: 0 } = w.mode {
            return Err(Error::invalid(
                "expected version",
                "versions start at 1; use PutMode::Create for a new deployment",
            ));
        }
        if w.schema_version > MAX_SCHEMA_VERSION {
            return Err(Error::invalid(
                "schema_version",
                format!(
                    "{} is above the largest storable {MAX_SCHEMA_VERSION}",
                    w.schema_version
                ),
            ));
        }
        let (body, checksum) = match canonical_json(&w.state) {
            Ok(body) if body.len() > MAX_STATE_BYTES => {
                return Err(Error::invalid(
                    "state",
                    format!(
                        "is {} bytes of JSON, the limit is {MAX_STATE_BYTES}",
                        body.len()
                    ),
                ));
            }
            Ok(body) => {
                let sum = Checksum::of(&body);
                (crate::compress::pack(body), sum)
            }
            Err(e) => {
                crate::canonical::dismantle(w.state);
                return Err(e);
            }
        };
        Ok(Self {
            deployment_id: w.deployment_id,
            mode: w.mode,
            schema_version: w.schema_version,
            state: w.state,
            body,
            checksum,
        })
    }

    /// The record this write becomes once committed at `version`, and the body bytes to store:
    /// built from the write itself, in the committing transaction, with no second read and no
    /// copy of the state (the writer thread of a group commit pays for every copy).
    pub fn into_committed(
        self,
        version: u64,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> (StateData, Vec<u8>) {
        let record = StateData {
            deployment_id: self.deployment_id,
            version,
            state: self.state,
            schema_version: self.schema_version,
            checksum: self.checksum,
            created_at,
            updated_at,
            loaded_from: Tier::Warm,
        };
        (record, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retention_prunes_below_the_window() {
        let keep3 = Retention::KeepLast(NonZeroU32::new(3).unwrap());
        assert_eq!(keep3.prune_below(1), None);
        assert_eq!(keep3.prune_below(3), None);
        assert_eq!(keep3.prune_below(4), Some(2));
        assert_eq!(keep3.prune_below(10), Some(8));
        let keep1 = Retention::KeepLast(NonZeroU32::new(1).unwrap());
        assert_eq!(keep1.prune_below(5), Some(5));
        assert_eq!(Retention::KeepAll.prune_below(1000), None);
    }

    #[test]
    fn rows_are_reclaimed_in_runs_unless_fewer_than_a_run_are_kept() {
        let (keep1, keep15) = (
            Retention::KeepLast(NonZeroU32::new(1).unwrap()),
            Retention::KeepLast(NonZeroU32::new(15).unwrap()),
        );
        for below in [2, 5, 17, 33] {
            assert!(keep1.reclaims_at(below) && keep15.reclaims_at(below));
            assert!(!Retention::DEFAULT.reclaims_at(below), "{below}");
        }
        assert!(Retention::DEFAULT.reclaims_at(32));
        assert!(!Retention::KeepLast(NonZeroU32::new(16).unwrap()).reclaims_at(17));
    }

    #[test]
    fn non_object_state_is_invalid_input() {
        let id = DeploymentId::new("d").unwrap();
        for v in [json!(null), json!(1), json!("s"), json!([1]), json!(true)] {
            let err = StateWrite::from_value(id.clone(), PutMode::Create, v).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { field: "state", .. }));
        }
        #[derive(Serialize)]
        struct NotAnObject(u32);
        assert!(StateWrite::typed(id, PutMode::Create, &NotAnObject(1)).is_err());
    }

    #[test]
    fn prepare_rejects_duplicates_and_version_zero() {
        let id = DeploymentId::new("d").unwrap();
        let dup = WriteBatch::new()
            .put(StateWrite::create(id.clone(), Map::new()))
            .put(StateWrite::overwrite(id.clone(), Map::new()));
        assert!(matches!(
            dup.prepare(),
            Err(Error::InvalidInput { field: "batch", .. })
        ));
        let zero = WriteBatch::new().put(StateWrite::update(id.clone(), 0, Map::new()));
        assert!(matches!(zero.prepare(), Err(Error::InvalidInput { .. })));
        let big = WriteBatch::new()
            .put(StateWrite::create(id, Map::new()).with_schema_version(MAX_SCHEMA_VERSION + 1));
        assert!(matches!(
            big.prepare(),
            Err(Error::InvalidInput {
                field: "schema_version",
                ..
            })
        ));
    }

    #[test]
    fn typed_non_finite_is_refused_with_its_path() {
        #[derive(Serialize)]
        struct S {
            pnl: f64,
        }
        let id = DeploymentId::new("d").unwrap();
        let err = StateWrite::typed(id, PutMode::Create, &S { pnl: f64::NAN }).unwrap_err();
        assert!(err.to_string().contains("$.pnl"), "{err}");
    }
}
