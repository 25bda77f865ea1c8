//! Position events, accounting events and the registry's migration state.
//!
//! - **Position events** (open, close, collect fees, snapshot): *first write wins by event
//!   id*: saving an id that is stored returns the stored event and writes nothing, whatever
//!   the new content. Attribution is the one field that changes afterwards, and only as an
//!   explicit compare-and-swap ([`Events::update_attribution`]). Layout: document
//!   `position.events/<event id>` and journal `position.log` (one entry per event, keyed by
//!   its id, for newest-first listing).
//! - **Accounting events** (lending, LP, perp, swap …): append-only and idempotent by id (the
//!   same content again is Ok; different content is `EventConflict`). The position reference
//!   is filled from the registry at write time, and the append is guarded by the row's
//!   version in the same transaction. Journal `accounting.events`.
//! - **Migration state** per (primitive, cutover key): insert-if-absent, partial update,
//!   backfill completion. Documents `registry.migrations/<primitive>|<cutover key>`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::Error::KeyReused;
use tierstate_core::{
    Append, BatchOp, DeploymentId, DocAddr, DocWrite, JournalQuery, Name, PutMode, StateStore,
    StreamAddr, WriteBatch,
};

use crate::error::{AccountingError, Result, retryable};
use crate::ledger::{check_time, from_object, to_object};
use crate::registry::{Registry, RegistryStatus, row_key};
use crate::retry::Retry;
use crate::text::{check_id, text_enum};
use crate::time::truncate_to_micros;

/// Collection of position events.
pub const POSITION_EVENTS: &str = "position.events";
/// Journal listing position events in write order.
pub const POSITION_LOG: &str = "position.log";
/// Journal of accounting events.
pub const ACCOUNTING_EVENTS: &str = "accounting.events";
/// Collection of migration state rows.
pub const MIGRATIONS: &str = "registry.migrations";
/// The events' schema; a newer one is refused.
pub const EVENT_SCHEMA: u64 = 1;

const PAGE: usize = 512;

text_enum!(
    /// What happened to a position.
    PositionEventType, "position event type", "open, modify, close, collect_fees, snapshot" {
        /// Opened.
        Open = "open",
        /// Changed while open: resized, re-ranged, re-levered (seed 002's position_modified).
        Modify = "modify",
        /// Closed.
        Close = "close",
        /// Fees collected.
        CollectFees = "collect_fees",
        /// Its state recorded.
        Snapshot = "snapshot",
    }
);

text_enum!(
    /// The kind of an accounting event.
    AccountingEventKind, "accounting event kind", "lending, lp, perp, swap, transfer, fee" {
        /// Supply, borrow, repay, withdraw.
        Lending = "lending",
        /// Liquidity provision.
        Lp = "lp",
        /// Perpetual futures.
        Perp = "perp",
        /// A swap.
        Swap = "swap",
        /// A transfer in or out.
        Transfer = "transfer",
        /// A fee.
        Fee = "fee",
    }
);

/// One event in a position's life. First write wins by `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PositionEvent {
    /// Unique per deployment.
    pub event_id: String,
    /// The deployment.
    pub deployment_id: String,
    /// The position it concerns.
    pub position_id: String,
    /// The kind of position, e.g. `lp`, `perp`.
    pub position_type: String,
    /// What happened.
    pub event_type: PositionEventType,
    /// When (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// What the strategy recorded.
    pub payload: Map<String, Value>,
    /// The position as of the event, as the one position record, if the strategy keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<tierstate_positions::PositionRecord>,
    /// PnL attribution, filled in later.
    pub attribution: Option<Map<String, Value>>,
    /// The version of the attribution logic that wrote `attribution`.
    pub attribution_version: u32,
}

impl PositionEvent {
    /// A new event with no attribution.
    ///
    /// # Errors
    /// `InvalidInput`/`InvalidTime` naming a bad field.
    pub fn new(
        event_id: impl Into<String>,
        deployment_id: impl Into<String>,
        position_id: impl Into<String>,
        position_type: impl Into<String>,
        event_type: PositionEventType,
        time: DateTime<Utc>,
        payload: Map<String, Value>,
    ) -> Result<Self> {
        let e = Self {
            event_id: event_id.into(),
            deployment_id: deployment_id.into(),
            position_id: position_id.into(),
            position_type: position_type.into(),
            event_type,
            time: truncate_to_micros(time),
            payload,
            position: None,
            attribution: None,
            attribution_version: 0,
        };
        e.validate()?;
        Ok(e)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// `InvalidInput`/`InvalidTime` naming the field.
    pub fn validate(&self) -> Result<()> {
        check_id("event id", &self.event_id)?;
        check_id("deployment id", &self.deployment_id)?;
        check_id("position id", &self.position_id)?;
        check_id("position type", &self.position_type)?;
        if let Some(p) = &self.position {
            p.validate()
                .map_err(|e| AccountingError::invalid("position", e.to_string()))?;
        }
        check_time("event time", self.time)
    }
}

/// A stored position event and the version an attribution update must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event.
    pub event: PositionEvent,
    /// Its document version (1 until its attribution is updated).
    pub version: u64,
}

/// What saving a position event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSaved {
    /// Stored now.
    Stored(StoredEvent),
    /// The id was already stored (first write wins): the stored event, unchanged.
    AlreadyStored(StoredEvent),
}

/// A position as its events leave it ([`Events::rebuild_position`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltPosition {
    /// The position.
    pub position_id: String,
    /// The record of the latest event that carried one.
    pub record: Option<tierstate_positions::PositionRecord>,
    /// Opened and not closed since.
    pub open: bool,
    /// Events folded.
    pub events: u64,
    /// Time of the latest event.
    pub last_event: DateTime<Utc>,
}

/// Which position events [`Events::position_events`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this position.
    pub position_id: Option<String>,
    /// Only these kinds of position (seed 000's filter set); `None`: any kind, an empty set:
    /// none.
    pub position_types: Option<std::collections::BTreeSet<String>>,
    /// Only this event type.
    pub event_type: Option<PositionEventType>,
}

/// Where an accounting event's position is found in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionLookup {
    /// By the row's key parts.
    Row {
        /// Chain.
        chain: String,
        /// Primitive.
        primitive: String,
        /// Physical identity hash.
        identity_hash: String,
    },
    /// By the handle a row holds in a category.
    Handle {
        /// Accounting category.
        category: String,
        /// The handle.
        handle: String,
    },
}

/// The registry row an accounting event refers to, as it stood when the event was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionRef {
    /// The row's key (`chain|primitive|identity hash`).
    pub row: String,
    /// Its version then.
    pub version: u64,
    /// Its status then.
    pub status: RegistryStatus,
}

/// A typed accounting event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AccountingEvent {
    /// Unique per deployment.
    pub event_id: String,
    /// The deployment.
    pub deployment_id: String,
    /// Its kind.
    pub kind: AccountingEventKind,
    /// When (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// The registry row, filled at write time (`None` for events of no position).
    pub position: Option<PositionRef>,
    /// The event's figures (amounts as decimal strings).
    pub payload: Map<String, Value>,
}

impl AccountingEvent {
    /// A new event; its position is filled when it is saved.
    ///
    /// # Errors
    /// `InvalidInput`/`InvalidTime` naming a bad field.
    pub fn new(
        event_id: impl Into<String>,
        deployment_id: impl Into<String>,
        kind: AccountingEventKind,
        time: DateTime<Utc>,
        payload: Map<String, Value>,
    ) -> Result<Self> {
        let e = Self {
            event_id: event_id.into(),
            deployment_id: deployment_id.into(),
            kind,
            time: truncate_to_micros(time),
            position: None,
            payload,
        };
        check_id("event id", &e.event_id)?;
        check_id("deployment id", &e.deployment_id)?;
        check_time("event time", e.time)?;
        Ok(e)
    }
}

/// The migration (cutover) state of one primitive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationState {
    /// The primitive.
    pub primitive: String,
    /// The cutover it tracks.
    pub cutover_key: String,
    /// Fields the cutover keeps (partial updates merge into these).
    pub fields: Map<String, Value>,
    /// When the backfill completed, if it has.
    pub backfill_completed_at: Option<DateTime<Utc>>,
}

/// One deployment's position events, accounting events and migration state.
#[derive(Clone)]
pub struct Events {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    registry: Registry,
    events: Name,
    migrations: Name,
    log: StreamAddr,
    accounting: StreamAddr,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The events of `deployment` in `store`.
    ///
    /// # Panics
    /// Never: the names are constants, valid by construction.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        let stream = |s: &str| StreamAddr {
            deployment_id: deployment.clone(),
            stream: Name::stream(s).expect("constant stream names are valid"),
        };
        let name = |s: &str| Name::collection(s).expect("constant collection names are valid");
        Self {
            registry: Registry::new(store.clone(), deployment),
            store,
            deployment: deployment.clone(),
            events: name(POSITION_EVENTS),
            migrations: name(MIGRATIONS),
            log: stream(POSITION_LOG),
            accounting: stream(ACCOUNTING_EVENTS),
        }
    }

    fn owned(&self, deployment_id: &str, what: &'static str, id: &str) -> Result<()> {
        if deployment_id != self.deployment.as_str() {
            return Err(AccountingError::invalid(
                what,
                format!(
                    "{id} belongs to deployment {deployment_id}, not {}",
                    self.deployment
                ),
            ));
        }
        Ok(())
    }

    fn event_addr(&self, event_id: &str) -> Result<DocAddr> {
        check_id("event id", event_id)?;
        Ok(DocAddr {
            deployment_id: self.deployment.clone(),
            collection: self.events.clone(),
            key: Name::key(event_id)?,
        })
    }

    /// Saves a position event; if its id is stored, returns the stored one and writes
    /// nothing (first write wins).
    ///
    /// # Errors
    /// `InvalidInput`/`InvalidTime`; `Store`.
    pub async fn save_position_event(&self, e: &PositionEvent) -> Result<EventSaved> {
        e.validate()?;
        self.owned(&e.deployment_id, "position event", &e.event_id)?;
        let at = self.event_addr(&e.event_id)?;
        if let Some(s) = self.position_event(&e.event_id).await? {
            return Ok(EventSaved::AlreadyStored(s));
        }
        let mut index = Map::new();
        index.insert("event_id".into(), Value::from(e.event_id.clone()));
        let batch = WriteBatch::new()
            .document(DocWrite::new(
                at,
                PutMode::Create,
                to_object("position event", EVENT_SCHEMA, e)?,
            ))
            .append(Append::new(self.log.clone(), e.time, index).with_key(Name::key(&e.event_id)?));
        match self.store.write(batch).await {
            Ok(_) => Ok(EventSaved::Stored(StoredEvent {
                event: e.clone(),
                version: 1,
            })),
            // Another writer stored the id first: theirs wins.
            Err(err) if crate::error::retryable(&err) => {
                match self.position_event(&e.event_id).await? {
                    Some(s) => Ok(EventSaved::AlreadyStored(s)),
                    None => Err(err.into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The position event with this id, if stored.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store`; `NewerSchema`.
    pub async fn position_event(&self, event_id: &str) -> Result<Option<StoredEvent>> {
        let at = self.event_addr(event_id)?;
        let Some(d) = self.store.get_document(&at).await? else {
            return Ok(None);
        };
        if let Some(Value::String(t)) = d.value.get("event_type") {
            t.parse::<PositionEventType>()?;
        }
        let event: PositionEvent = from_object("position event", EVENT_SCHEMA, d.value)?;
        event.validate()?;
        Ok(Some(StoredEvent {
            event,
            version: d.version,
        }))
    }

    /// Sets an event's attribution: a compare-and-swap on the version read.
    ///
    /// # Errors
    /// `Store(Conflict)` with expected and actual versions if it changed since; `EventNotFound`.
    pub async fn update_attribution(
        &self,
        current: &StoredEvent,
        attribution: Map<String, Value>,
        attribution_version: u32,
    ) -> Result<StoredEvent> {
        let mut next = current.event.clone();
        next.attribution = Some(attribution);
        next.attribution_version = attribution_version;
        let at = self.event_addr(&next.event_id)?;
        let d = self
            .store
            .put_document(DocWrite::new(
                at,
                PutMode::Update {
                    expected: current.version,
                },
                to_object("position event", EVENT_SCHEMA, &next)?,
            ))
            .await
            .map_err(|e| match e {
                tierstate_core::Error::Conflict { actual: None, .. } => {
                    AccountingError::EventNotFound {
                        deployment: self.deployment.to_string(),
                        event: next.event_id.clone(),
                    }
                }
                e => e.into(),
            })?;
        Ok(StoredEvent {
            event: next,
            version: d.version,
        })
    }

    /// Position events newest first (in write order), filtered, at most `limit`.
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit; `Store`.
    pub async fn position_events(
        &self,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        if limit == 0 {
            return Err(AccountingError::invalid("limit", "must be at least 1"));
        }
        let mut out = Vec::new();
        let mut query = Some(JournalQuery::newest(PAGE));
        while let Some(q) = query {
            let page = self.store.read_journal(&self.log, q).await?;
            for entry in page.entries {
                let Some(id) = entry.value.get("event_id").and_then(Value::as_str) else {
                    return Err(AccountingError::invalid(
                        "position log",
                        format!("entry {} names no event", entry.seq),
                    ));
                };
                let Some(s) = self.position_event(id).await? else {
                    return Err(AccountingError::invalid(
                        "position log",
                        format!("entry {} names event {id}, which is not stored", entry.seq),
                    ));
                };
                let e = &s.event;
                let keep = filter
                    .position_id
                    .as_ref()
                    .is_none_or(|p| *p == e.position_id)
                    && filter
                        .position_types
                        .as_ref()
                        .is_none_or(|t| t.contains(&e.position_type))
                    && filter.event_type.is_none_or(|t| t == e.event_type);
                if keep {
                    out.push(s);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            query = page.next;
        }
        Ok(out)
    }

    /// A position rebuilt from its events, oldest first (seed 002's reconstruction, as orders
    /// rebuild theirs): the record of the latest event that carries one, and whether the
    /// last open or close left it open. `None` if it has no events.
    ///
    /// # Errors
    /// As [`Events::position_events`].
    pub async fn rebuild_position(&self, position_id: &str) -> Result<Option<RebuiltPosition>> {
        let history = self.position_history(position_id).await?;
        let Some(last) = history.last() else {
            return Ok(None);
        };
        let mut out = RebuiltPosition {
            position_id: position_id.to_owned(),
            record: None,
            open: false,
            events: history.len() as u64,
            last_event: last.event.time,
        };
        for s in &history {
            match s.event.event_type {
                PositionEventType::Open => out.open = true,
                PositionEventType::Close => out.open = false,
                PositionEventType::Modify
                | PositionEventType::CollectFees
                | PositionEventType::Snapshot => {}
            }
            if let Some(p) = &s.event.position {
                out.record = Some(p.clone());
            }
        }
        Ok(Some(out))
    }

    /// A position's whole history, oldest first by event time (ties: write order).
    ///
    /// # Errors
    /// As [`Events::position_events`].
    pub async fn position_history(&self, position_id: &str) -> Result<Vec<StoredEvent>> {
        check_id("position id", position_id)?;
        let filter = EventFilter {
            position_id: Some(position_id.to_owned()),
            ..EventFilter::default()
        };
        let mut all = self.position_events(&filter, usize::MAX).await?;
        all.reverse();
        all.sort_by_key(|s| s.event.time);
        Ok(all)
    }

    /// Saves an accounting event, filling its position reference from the registry row
    /// `lookup` names, guarded by that row's version in the same transaction. The same event
    /// again returns the stored one; the same id with different content is `EventConflict`.
    ///
    /// # Errors
    /// `RowNotFound` if `lookup` names no row; `EventConflict`; `Contended`; `Store`.
    pub async fn save_accounting_event(
        &self,
        event: &AccountingEvent,
        lookup: Option<&PositionLookup>,
    ) -> Result<AccountingEvent> {
        self.owned(&event.deployment_id, "accounting event", &event.event_id)?;
        check_id("event id", &event.event_id)?;
        check_time("event time", event.time)?;
        let key = Name::key(&event.event_id)?;
        let mut retry = Retry::new("the registry row of an accounting event");
        loop {
            let mut e = event.clone();
            let mut batch = WriteBatch::new();
            if let Some(l) = lookup {
                let row = match l {
                    PositionLookup::Row {
                        chain,
                        primitive,
                        identity_hash,
                    } => self.registry.get(chain, primitive, identity_hash).await?,
                    PositionLookup::Handle { category, handle } => {
                        self.registry.by_handle(category, handle).await?
                    }
                };
                let Some(row) = row else {
                    return Err(AccountingError::RowNotFound {
                        deployment: self.deployment.to_string(),
                        lookup: format!("{l:?}"),
                    });
                };
                let k = row_key(&row.row.chain, &row.row.primitive, &row.row.identity_hash);
                batch.push(BatchOp::Expect {
                    address: DocAddr {
                        deployment_id: self.deployment.clone(),
                        collection: Name::collection(crate::registry::ROWS)?,
                        key: Name::key(&k)?,
                    },
                    version: Some(row.version),
                });
                e.position = Some(PositionRef {
                    row: k,
                    version: row.version,
                    status: row.row.status,
                });
            }
            // Idempotency by id compares the event as the caller gave it, position aside.
            if let Some(stored) = self.accounting_event(&event.event_id).await? {
                let mut bare = stored.clone();
                bare.position = None;
                let mut given = event.clone();
                given.position = None;
                if bare == given {
                    return Ok(stored);
                }
                return Err(AccountingError::EventConflict {
                    deployment: self.deployment.to_string(),
                    event: event.event_id.clone(),
                });
            }
            let value = to_object("accounting event", EVENT_SCHEMA, &e)?;
            batch.push(BatchOp::Append(
                Append::new(self.accounting.clone(), e.time, value).with_key(key.clone()),
            ));
            match self.store.write(batch).await {
                Ok(_) => return Ok(e),
                // The row moved (stamp it again), or another writer stored the id (compare).
                Err(err) if retryable(&err) || matches!(err, KeyReused { .. }) => {
                    retry.wait().await?;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The accounting event with this id, if stored.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store`; `NewerSchema`.
    pub async fn accounting_event(&self, event_id: &str) -> Result<Option<AccountingEvent>> {
        check_id("event id", event_id)?;
        let page = self
            .store
            .read_journal(&self.accounting, JournalQuery::ByKey(Name::key(event_id)?))
            .await?;
        page.entries
            .into_iter()
            .next()
            .map(|e| decode_accounting(e.value))
            .transpose()
    }

    /// Accounting events in write order, optionally only those of one registry row.
    ///
    /// # Errors
    /// `Store`; `NewerSchema`.
    pub async fn accounting_events(&self, row: Option<&str>) -> Result<Vec<AccountingEvent>> {
        let mut out = Vec::new();
        let mut query = Some(JournalQuery::from_seq(1, PAGE));
        while let Some(q) = query {
            let page = self.store.read_journal(&self.accounting, q).await?;
            for entry in page.entries {
                let e = decode_accounting(entry.value)?;
                if row.is_none_or(|r| e.position.as_ref().is_some_and(|p| p.row == r)) {
                    out.push(e);
                }
            }
            query = page.next;
        }
        Ok(out)
    }

    fn migration_addr(&self, primitive: &str, cutover_key: &str) -> Result<DocAddr> {
        check_id("primitive", primitive)?;
        check_id("cutover key", cutover_key)?;
        if primitive.contains('|') {
            return Err(AccountingError::invalid("primitive", "must not hold '|'"));
        }
        Ok(DocAddr {
            deployment_id: self.deployment.clone(),
            collection: self.migrations.clone(),
            key: Name::key(format!("{primitive}|{cutover_key}"))?,
        })
    }

    /// Inserts the migration state row unless one exists; returns the stored row and
    /// whether it was written now.
    ///
    /// # Errors
    /// `InvalidInput`; `Store`.
    pub async fn insert_migration_state(
        &self,
        primitive: &str,
        cutover_key: &str,
        fields: Map<String, Value>,
    ) -> Result<(MigrationState, bool)> {
        let at = self.migration_addr(primitive, cutover_key)?;
        let state = MigrationState {
            primitive: primitive.to_owned(),
            cutover_key: cutover_key.to_owned(),
            fields,
            backfill_completed_at: None,
        };
        let w = DocWrite::new(
            at,
            PutMode::Create,
            to_object("migration state", EVENT_SCHEMA, &state)?,
        );
        match self.store.put_document(w).await {
            Ok(_) => Ok((state, true)),
            Err(tierstate_core::Error::AlreadyExists { .. }) => {
                let stored = self.migration_state(primitive, cutover_key).await?;
                stored.map(|s| (s, false)).ok_or_else(|| {
                    AccountingError::invalid("migration state", "vanished while inserting")
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The migration state row, if any.
    ///
    /// # Errors
    /// `InvalidInput`; `Store`; `NewerSchema`.
    pub async fn migration_state(
        &self,
        primitive: &str,
        cutover_key: &str,
    ) -> Result<Option<MigrationState>> {
        let at = self.migration_addr(primitive, cutover_key)?;
        self.store
            .get_document(&at)
            .await?
            .map(|d| from_object("migration state", EVENT_SCHEMA, d.value))
            .transpose()
    }

    /// Merges `fields` into the row's fields (a compare-and-swap, re-read on conflict).
    ///
    /// # Errors
    /// `MigrationStateMissing` if there is no row; `Contended`; `Store`.
    pub async fn update_migration_state(
        &self,
        primitive: &str,
        cutover_key: &str,
        fields: Map<String, Value>,
    ) -> Result<MigrationState> {
        self.change_migration(primitive, cutover_key, |s| s.fields.extend(fields.clone()))
            .await
    }

    /// Marks the backfill complete at `at` (kept if already marked).
    ///
    /// # Errors
    /// As [`Events::update_migration_state`].
    pub async fn mark_backfill_complete(
        &self,
        primitive: &str,
        cutover_key: &str,
        at: DateTime<Utc>,
    ) -> Result<MigrationState> {
        self.change_migration(primitive, cutover_key, |s| {
            s.backfill_completed_at
                .get_or_insert(truncate_to_micros(at));
        })
        .await
    }

    async fn change_migration(
        &self,
        primitive: &str,
        cutover_key: &str,
        f: impl Fn(&mut MigrationState),
    ) -> Result<MigrationState> {
        let at = self.migration_addr(primitive, cutover_key)?;
        let mut retry = Retry::new("the migration state");
        loop {
            let Some(d) = self.store.get_document(&at).await? else {
                return Err(AccountingError::MigrationStateMissing {
                    deployment: self.deployment.to_string(),
                    primitive: primitive.to_owned(),
                    cutover_key: cutover_key.to_owned(),
                });
            };
            let mut s: MigrationState = from_object("migration state", EVENT_SCHEMA, d.value)?;
            f(&mut s);
            let w = DocWrite::new(
                at.clone(),
                PutMode::Update {
                    expected: d.version,
                },
                to_object("migration state", EVENT_SCHEMA, &s)?,
            );
            match self.store.put_document(w).await {
                Ok(_) => return Ok(s),
                Err(e) if retryable(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn decode_accounting(value: Map<String, Value>) -> Result<AccountingEvent> {
    if let Some(Value::String(k)) = value.get("kind") {
        k.parse::<AccountingEventKind>()?;
    }
    from_object("accounting event", EVENT_SCHEMA, value)
}
