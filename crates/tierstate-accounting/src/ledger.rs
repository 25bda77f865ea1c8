//! The transaction ledger: every on-chain or venue action as one entry in an append-only,
//! hash-chained journal, idempotent by id, with running totals (a [`LedgerStats`] document)
//! changed in the same transaction as each append, so reading them is one document read.
//!
//! Layout (in the deployment's own records): journal `ledger`, keyed by entry id; document
//! `ledger/stats`, whose `last_seq` always equals the journal's last sequence number.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    Append, BatchOp, DeploymentId, DocAddr, DocWrite, JournalEntry, JournalQuery, Name, PutMode,
    StateStore, StreamAddr, WriteBatch,
};

use crate::error::{AccountingError, Result, retryable};
use crate::retry::Retry;
use crate::snapshot::ExecutionMode;
use crate::text::check_id;
use crate::time::truncate_to_micros;

/// The ledger journal, and the collection holding its running totals.
pub const LEDGER: &str = "ledger";
/// The key of the running totals in [`LEDGER`].
pub const STATS_KEY: &str = "stats";
/// The ledger entry's schema; a newer one is refused.
pub const LEDGER_SCHEMA: u64 = 1;

/// Entries read per page when a query filters.
const SCAN_PAGE: usize = 512;

/// One action: a swap, an LP open, a transfer … as it happened (or failed) on a chain or venue.
/// Money and amounts are [`Decimal`]; the evidence fields hold JSON as the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LedgerEntry {
    /// Unique per deployment: the idempotency key.
    pub id: String,
    /// The strategy cycle that acted.
    pub cycle_id: Option<String>,
    /// The deployment.
    pub deployment_id: String,
    /// Live, paper or dry run.
    pub execution_mode: ExecutionMode,
    /// When it happened (UTC, microseconds).
    pub time: DateTime<Utc>,
    /// What was intended, e.g. `SWAP`, `LP_OPEN` (1..=64 bytes of `A-Z a-z 0-9 _ . : -`).
    pub intent_type: String,
    /// Token given.
    pub token_in: Option<String>,
    /// Amount given (non-negative).
    pub amount_in: Option<Decimal>,
    /// Token received.
    pub token_out: Option<String>,
    /// Amount received (non-negative).
    pub amount_out: Option<Decimal>,
    /// Price obtained.
    pub effective_price: Option<Decimal>,
    /// Slippage against the quote, basis points (negative: price improvement).
    pub slippage_bps: Option<Decimal>,
    /// Gas units used.
    pub gas_used: Option<u64>,
    /// Gas cost in USD (non-negative).
    pub gas_usd: Option<Decimal>,
    /// Transaction hash.
    pub tx_hash: Option<String>,
    /// Chain, e.g. `arbitrum`.
    pub chain: Option<String>,
    /// Protocol, e.g. `uniswap_v3`.
    pub protocol: Option<String>,
    /// Whether the action succeeded.
    pub success: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// For a retry: the id of the failed attempt it follows (a separate entry, never an
    /// overwrite of it).
    pub retry_of: Option<String>,
    /// Data extracted from the receipt.
    pub extracted_data: Option<Value>,
    /// The prices the decision used.
    pub price_inputs: Option<Value>,
    /// Holdings before the action.
    pub pre_state: Option<Value>,
    /// Holdings after it.
    pub post_state: Option<Value>,
}

impl LedgerEntry {
    /// An entry with no amounts or evidence yet; set the public fields, then store it.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id, deployment or intent type; `InvalidTime` for a time
    /// outside 1970..=9999.
    pub fn new(
        id: impl Into<String>,
        deployment_id: impl Into<String>,
        execution_mode: ExecutionMode,
        time: DateTime<Utc>,
        intent_type: impl Into<String>,
        success: bool,
    ) -> Result<Self> {
        let e = Self {
            id: id.into(),
            cycle_id: None,
            deployment_id: deployment_id.into(),
            execution_mode,
            time: truncate_to_micros(time),
            intent_type: intent_type.into(),
            token_in: None,
            amount_in: None,
            token_out: None,
            amount_out: None,
            effective_price: None,
            slippage_bps: None,
            gas_used: None,
            gas_usd: None,
            tx_hash: None,
            chain: None,
            protocol: None,
            success,
            error: None,
            retry_of: None,
            extracted_data: None,
            price_inputs: None,
            pre_state: None,
            post_state: None,
        };
        e.validate()?;
        Ok(e)
    }

    /// Checks every field: ids, intent type, times, non-negative amounts and gas.
    ///
    /// # Errors
    /// `InvalidInput` or `InvalidTime` naming the field.
    pub fn validate(&self) -> Result<()> {
        check_id("ledger entry id", &self.id)?;
        check_id("deployment id", &self.deployment_id)?;
        check_intent_type(&self.intent_type)?;
        check_time("ledger time", self.time)?;
        for (field, v) in [
            ("cycle id", &self.cycle_id),
            ("token in", &self.token_in),
            ("token out", &self.token_out),
            ("tx hash", &self.tx_hash),
            ("chain", &self.chain),
            ("protocol", &self.protocol),
            ("retry of", &self.retry_of),
        ] {
            if let Some(v) = v {
                check_id(field, v)?;
            }
        }
        for (field, v) in [
            ("amount in", self.amount_in),
            ("amount out", self.amount_out),
            ("gas usd", self.gas_usd),
            ("effective price", self.effective_price),
        ] {
            if let Some(v) = v
                && v.is_sign_negative()
                && !v.is_zero()
            {
                return Err(AccountingError::invalid(
                    field,
                    format!("must not be negative, got {v}"),
                ));
            }
        }
        if (self.amount_in.is_some() && self.token_in.is_none())
            || (self.amount_out.is_some() && self.token_out.is_none())
        {
            return Err(AccountingError::invalid(
                "ledger entry",
                format!("{}: an amount without its token", self.id),
            ));
        }
        if self.retry_of.as_deref() == Some(self.id.as_str()) {
            return Err(AccountingError::invalid(
                "retry of",
                format!("{} cannot retry itself", self.id),
            ));
        }
        Ok(())
    }
}

fn check_intent_type(s: &str) -> Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
        return Err(AccountingError::invalid(
            "intent type",
            format!("{s:?}: must be 1..=64 bytes of A-Z a-z 0-9 _ . : -"),
        ));
    }
    Ok(())
}

/// Refuses times outside 1970..=9999: queries bound their windows there.
pub(crate) fn check_time(field: &'static str, t: DateTime<Utc>) -> Result<()> {
    if t.timestamp() < 0 || t.year() > 9999 {
        return Err(AccountingError::InvalidTime {
            field,
            value: t.to_rfc3339(),
            reason: "must be within 1970-01-01 ..= 9999-12-31 (UTC)".into(),
        });
    }
    Ok(())
}

/// The start and (exclusive) end of every window a query can ask for.
pub(crate) fn all_time() -> (DateTime<Utc>, DateTime<Utc>) {
    let end = DateTime::parse_from_rfc3339("10000-01-01T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (DateTime::<Utc>::UNIX_EPOCH, end)
}

/// A stored entry and its position in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLedgerEntry {
    /// The entry.
    pub entry: LedgerEntry,
    /// Its sequence number (1, 2, 3 … in commit order).
    pub seq: u64,
}

impl StoredLedgerEntry {
    /// The cursor that continues a newest-first listing after this entry.
    pub fn cursor(&self) -> LedgerCursor {
        LedgerCursor {
            time: self.entry.time,
            seq: self.seq,
        }
    }
}

/// A position in the newest-first listing: (time, seq) of the last entry seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCursor {
    /// Its time.
    pub time: DateTime<Utc>,
    /// Its sequence number.
    pub seq: u64,
}

/// What [`Ledger::entries`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Only entries strictly before this (time, seq) position: the previous page's `next`.
    pub before: Option<LedgerCursor>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries of this intent type.
    pub intent_type: Option<String>,
    /// Most entries returned (at least 1).
    pub limit: usize,
}

impl LedgerQuery {
    /// The newest `limit` entries.
    pub fn newest(limit: usize) -> Self {
        Self {
            before: None,
            since: None,
            intent_type: None,
            limit,
        }
    }
}

/// One page of entries, newest first (by time, then sequence number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerPage {
    /// The entries.
    pub entries: Vec<StoredLedgerEntry>,
    /// Where the next (older) page starts, if there may be one.
    pub next: Option<LedgerCursor>,
}

/// Running totals over every entry, kept in the same transaction as each append: reading
/// them is O(1) and they equal [`LedgerStats::over`] the whole ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LedgerStats {
    /// Entries.
    pub count: u64,
    /// Entries that succeeded.
    pub successes: u64,
    /// Gas units, failed attempts included (they burn gas too).
    pub gas_used: u64,
    /// Gas in USD, failed attempts included.
    pub gas_usd: Decimal,
    /// Per token: amount in plus amount out of the successful entries.
    pub volume: BTreeMap<String, Decimal>,
    /// Earliest entry time.
    pub first_time: Option<DateTime<Utc>>,
    /// Latest entry time.
    pub last_time: Option<DateTime<Utc>>,
    /// The sequence number of the last entry counted.
    pub last_seq: u64,
}

impl LedgerStats {
    /// The totals over `entries` (any order).
    ///
    /// # Errors
    /// `InvalidInput` if a sum overflows.
    pub fn over<'a>(entries: impl IntoIterator<Item = &'a StoredLedgerEntry>) -> Result<Self> {
        let mut s = Self::default();
        for e in entries {
            s.add(&e.entry, e.seq)?;
        }
        Ok(s)
    }

    /// Successes over entries; `None` with no entries (unmeasured, not zero).
    pub fn success_rate(&self) -> Option<Decimal> {
        (self.count > 0).then(|| Decimal::from(self.successes) / Decimal::from(self.count))
    }

    /// The volume of one token (zero if it never traded).
    pub fn volume_of(&self, token: &str) -> Decimal {
        self.volume.get(token).copied().unwrap_or_default()
    }

    /// Counts one more entry.
    fn add(&mut self, e: &LedgerEntry, seq: u64) -> Result<()> {
        let overflow = |what: &str| {
            AccountingError::invalid("ledger totals", format!("{what} overflows at {}", e.id))
        };
        self.count += 1;
        self.successes += u64::from(e.success);
        self.gas_used = self
            .gas_used
            .checked_add(e.gas_used.unwrap_or(0))
            .ok_or_else(|| overflow("gas used"))?;
        self.gas_usd = self
            .gas_usd
            .checked_add(e.gas_usd.unwrap_or_default())
            .ok_or_else(|| overflow("gas usd"))?;
        if e.success {
            for (token, amount) in [(&e.token_in, e.amount_in), (&e.token_out, e.amount_out)] {
                if let (Some(t), Some(a)) = (token, amount) {
                    let v = self.volume.entry(t.clone()).or_default();
                    *v = v.checked_add(a).ok_or_else(|| overflow("volume"))?;
                }
            }
        }
        self.first_time = Some(self.first_time.map_or(e.time, |t| t.min(e.time)));
        self.last_time = Some(self.last_time.map_or(e.time, |t| t.max(e.time)));
        self.last_seq = self.last_seq.max(seq);
        Ok(())
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new entry with this sequence number.
    Appended(u64),
    /// The same entry was already stored at this sequence number: nothing was written.
    Duplicate(u64),
}

/// A planned append: the records to write (the entry and the new totals), for
/// [`Ledger::commit`] or a caller's own batch. It commits only if the totals are still at the
/// version it was planned from.
#[derive(Debug, Clone)]
pub struct LedgerChange {
    /// What committing it means.
    pub recorded: Recorded,
    /// The totals once committed.
    pub stats: LedgerStats,
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for LedgerChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// Many planned appends ([`Ledger::plan_append_batch`]), to commit in the caller's batch.
#[derive(Debug, Clone)]
pub struct LedgerBatchChange {
    /// What committing it means for each entry, in order.
    pub recorded: Vec<Recorded>,
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for LedgerBatchChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// One deployment's transaction ledger on any [`StateStore`].
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    stream: StreamAddr,
    stats: DocAddr,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger of `deployment` in `store`.
    ///
    /// # Panics
    /// Never: the stream, collection and key names are constants, valid by construction.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        Self {
            stream: StreamAddr {
                deployment_id: deployment.clone(),
                stream: Name::stream(LEDGER).expect("constant stream name is valid"),
            },
            stats: DocAddr {
                deployment_id: deployment.clone(),
                collection: Name::collection(LEDGER).expect("constant collection is valid"),
                key: Name::key(STATS_KEY).expect("constant key is valid"),
            },
            store,
            deployment: deployment.clone(),
        }
    }

    /// Appends `entry`: the same id with the same content again is `Duplicate` and writes
    /// nothing; the same id with different content is `LedgerEntryConflict`.
    ///
    /// # Errors
    /// `InvalidInput`/`InvalidTime` for a bad entry (nothing written);
    /// `LedgerEntryConflict`; `Contended`; `Store` for I/O.
    pub async fn append(&self, entry: &LedgerEntry) -> Result<Recorded> {
        let mut retry = Retry::new("the ledger totals");
        loop {
            // Optimistic: no lookup of the id; a stored id fails the batch and is classified.
            let change = self.plan_new(entry).await?;
            match self.store.write(WriteBatch::new().with(&change)).await {
                Ok(_) => return Ok(change.recorded),
                Err(e) if self.key_taken(&e) => return self.classify(entry).await,
                // Another append moved the totals: plan again.
                Err(e) if retryable(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True if `e` says a batch's ledger key is already stored (see [`Append::new_only`]).
    pub(crate) fn key_taken(&self, e: &tierstate_core::Error) -> bool {
        matches!(e, tierstate_core::Error::AlreadyExists { target, .. }
            if *target == tierstate_core::Target::journal(&self.stream))
    }

    /// What appending `entry` means, given that its id is stored: a duplicate, or a conflict.
    ///
    /// # Errors
    /// `LedgerEntryConflict`; as [`Ledger::get`].
    pub(crate) async fn classify(&self, entry: &LedgerEntry) -> Result<Recorded> {
        match self.get(&entry.id).await? {
            Some(stored) if stored.entry == *entry => Ok(Recorded::Duplicate(stored.seq)),
            Some(stored) => Err(AccountingError::LedgerEntryConflict {
                deployment: self.deployment.to_string(),
                id: entry.id.clone(),
                seq: stored.seq,
            }),
            None => Err(AccountingError::invalid(
                "ledger entry",
                format!("{}: its key is taken but no entry holds it", entry.id),
            )),
        }
    }

    /// Plans `entry` as new, without looking its id up: the append is `new_only`, so if the
    /// id is stored the batch fails (see [`Ledger::key_taken`]) and writes nothing.
    pub(crate) async fn plan_new(&self, entry: &LedgerEntry) -> Result<LedgerChange> {
        entry.validate()?;
        self.check_owned(entry)?;
        let (mut stats, mode) = self.stats_for_update().await?;
        let seq = stats.last_seq + 1;
        stats.add(entry, seq)?;
        let ops = vec![
            self.append_op(entry, seq)?,
            BatchOp::Document(DocWrite::new(
                self.stats.clone(),
                mode,
                encode_stats(&stats)?,
            )),
        ];
        Ok(LedgerChange {
            recorded: Recorded::Appended(seq),
            stats,
            ops,
        })
    }

    async fn stats_for_update(&self) -> Result<(LedgerStats, PutMode)> {
        Ok(match self.store.get_document(&self.stats).await? {
            Some(d) => (
                decode_stats(d.value)?,
                PutMode::Update {
                    expected: d.version,
                },
            ),
            None => (LedgerStats::default(), PutMode::Create),
        })
    }

    fn append_op(&self, entry: &LedgerEntry, seq: u64) -> Result<BatchOp> {
        Ok(BatchOp::Append(
            Append::new(self.stream.clone(), entry.time, encode(entry)?)
                .with_key(Name::key(&entry.id)?)
                .new_only()
                .expecting(seq - 1),
        ))
    }

    /// Plans appending `entry`: reads the totals (and whether the id is stored) to extend
    /// them. A duplicate plans no writes. The append is `new_only`: if another writer stores
    /// the id before the batch commits, the batch fails with `AlreadyExists` and writes
    /// nothing.
    ///
    /// # Errors
    /// As [`Ledger::append`], without contention.
    pub async fn plan_append(&self, entry: &LedgerEntry) -> Result<LedgerChange> {
        entry.validate()?;
        self.check_owned(entry)?;
        if let Some(stored) = self.get(&entry.id).await? {
            if stored.entry == *entry {
                return Ok(LedgerChange {
                    recorded: Recorded::Duplicate(stored.seq),
                    stats: self.stats().await?,
                    ops: Vec::new(),
                });
            }
            return Err(AccountingError::LedgerEntryConflict {
                deployment: self.deployment.to_string(),
                id: entry.id.clone(),
                seq: stored.seq,
            });
        }
        self.plan_new(entry).await
    }

    /// Appends many entries in one transaction (an import or a backfill), each checked as
    /// [`Ledger::append`] checks it (one lookup per id); the totals move once. Returns what
    /// happened to each, in order.
    ///
    /// # Errors
    /// As [`Ledger::append`]; any refused entry refuses the whole batch.
    pub async fn append_batch(&self, entries: &[LedgerEntry]) -> Result<Vec<Recorded>> {
        let mut retry = Retry::new("the ledger totals");
        // Optimistic first (no lookups); if an id turns out to be stored, look every id up.
        let mut lookup = false;
        loop {
            let (recorded, ops) = self.plan_batch(entries, lookup).await?;
            if ops.is_empty() {
                return Ok(recorded);
            }
            let mut batch = WriteBatch::new();
            batch.extend(ops);
            match self.store.write(batch).await {
                Ok(_) => return Ok(recorded),
                Err(e) if !lookup && self.key_taken(&e) => lookup = true,
                Err(e) if retryable(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Plans appending many entries, for a caller that commits them in its own batch (one
    /// tick = one transaction): each id is looked up as [`Ledger::plan_append`] does, and the
    /// totals move once, by compare-and-swap.
    ///
    /// # Errors
    /// As [`Ledger::append_batch`].
    pub async fn plan_append_batch(&self, entries: &[LedgerEntry]) -> Result<LedgerBatchChange> {
        let (recorded, ops) = self.plan_batch(entries, true).await?;
        Ok(LedgerBatchChange { recorded, ops })
    }

    async fn plan_batch(
        &self,
        entries: &[LedgerEntry],
        lookup: bool,
    ) -> Result<(Vec<Recorded>, Vec<BatchOp>)> {
        let (mut stats, mode) = self.stats_for_update().await?;
        let mut seen: std::collections::HashMap<&str, (usize, u64)> =
            std::collections::HashMap::new();
        let (mut recorded, mut ops) = (Vec::with_capacity(entries.len()), Vec::new());
        for (i, e) in entries.iter().enumerate() {
            e.validate()?;
            self.check_owned(e)?;
            let conflict = |seq| AccountingError::LedgerEntryConflict {
                deployment: self.deployment.to_string(),
                id: e.id.clone(),
                seq,
            };
            if let Some(&(j, seq)) = seen.get(e.id.as_str()) {
                if entries[j] != *e {
                    return Err(conflict(seq));
                }
                recorded.push(Recorded::Duplicate(seq));
                continue;
            }
            if lookup && let Some(stored) = self.get(&e.id).await? {
                if stored.entry != *e {
                    return Err(conflict(stored.seq));
                }
                seen.insert(&e.id, (i, stored.seq));
                recorded.push(Recorded::Duplicate(stored.seq));
                continue;
            }
            let seq = stats.last_seq + 1;
            stats.add(e, seq)?;
            seen.insert(&e.id, (i, seq));
            recorded.push(Recorded::Appended(seq));
            ops.push(self.append_op(e, seq)?);
        }
        if !ops.is_empty() {
            ops.push(BatchOp::Document(DocWrite::new(
                self.stats.clone(),
                mode,
                encode_stats(&stats)?,
            )));
        }
        Ok((recorded, ops))
    }

    /// Commits a planned append on its own.
    ///
    /// # Errors
    /// `Store(Conflict)` if the ledger moved since it was planned.
    pub async fn commit(&self, change: &LedgerChange) -> Result<Recorded> {
        if !change.ops.is_empty() {
            self.store.write(WriteBatch::new().with(&change)).await?;
        }
        Ok(change.recorded)
    }

    /// The entry with this id, if stored.
    ///
    /// # Errors
    /// `InvalidInput` for a bad id; `Store(Integrity)` for damaged bytes; `NewerSchema`.
    pub async fn get(&self, id: &str) -> Result<Option<StoredLedgerEntry>> {
        check_id("ledger entry id", id)?;
        let page = self
            .store
            .read_journal(&self.stream, JournalQuery::ByKey(Name::key(id)?))
            .await?;
        page.entries.into_iter().next().map(stored).transpose()
    }

    /// The running totals: one document read.
    ///
    /// # Errors
    /// `Store` for I/O or damage; `NewerSchema`.
    pub async fn stats(&self) -> Result<LedgerStats> {
        match self.store.get_document(&self.stats).await? {
            Some(d) => decode_stats(d.value),
            None => Ok(LedgerStats::default()),
        }
    }

    /// The totals recomputed from every entry (a full read): what [`Ledger::stats`] must
    /// equal.
    ///
    /// # Errors
    /// As [`Ledger::entries`].
    pub async fn recompute_stats(&self) -> Result<LedgerStats> {
        let mut out = LedgerStats::default();
        let mut query = Some(JournalQuery::from_seq(1, SCAN_PAGE));
        while let Some(q) = query {
            let page = self.store.read_journal(&self.stream, q).await?;
            for e in page.entries {
                let e = stored(e)?;
                out.add(&e.entry, e.seq)?;
            }
            query = page.next;
        }
        Ok(out)
    }

    /// Entries newest first by (time, seq), optionally since a time, of one intent type,
    /// continuing before a cursor. Reads an index of entry times; with an intent-type filter
    /// it reads past the entries of other types.
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit or a bad intent type; as [`Ledger::get`].
    pub async fn entries(&self, q: &LedgerQuery) -> Result<LedgerPage> {
        if q.limit == 0 {
            return Err(AccountingError::invalid("limit", "must be at least 1"));
        }
        if let Some(t) = &q.intent_type {
            check_intent_type(t)?;
        }
        let (start, end) = all_time();
        let from = q.since.map_or(start, |t| t.max(start));
        if from >= end {
            return Ok(LedgerPage {
                entries: Vec::new(),
                next: None,
            });
        }
        let page_size = if q.intent_type.is_some() {
            SCAN_PAGE.max(q.limit)
        } else {
            q.limit
        };
        let mut query = Some(JournalQuery::WindowNewestFirst {
            from,
            to: end,
            before: q.before.map(|c| (c.time.timestamp_micros(), c.seq)),
            limit: page_size,
        });
        let mut out: Vec<StoredLedgerEntry> = Vec::new();
        let mut more = false;
        while let Some(jq) = query.take() {
            let page = self.store.read_journal(&self.stream, jq).await?;
            for e in page.entries {
                let e = stored(e)?;
                if q.intent_type
                    .as_ref()
                    .is_none_or(|t| *t == e.entry.intent_type)
                {
                    if out.len() == q.limit {
                        more = true;
                        break;
                    }
                    out.push(e);
                }
            }
            if more {
                break;
            }
            query = page.next;
            more = query.is_some() && out.len() == q.limit;
            if more {
                break;
            }
        }
        let next = more
            .then(|| out.last().map(StoredLedgerEntry::cursor))
            .flatten();
        Ok(LedgerPage { entries: out, next })
    }

    /// Oldest-first entries that carry a pre-state (the candidates for a first-action
    /// anchor), skipping `offset` of them, at most `limit`.
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit; as [`Ledger::get`].
    pub async fn anchor_candidates(
        &self,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<StoredLedgerEntry>> {
        if limit == 0 {
            return Err(AccountingError::invalid("limit", "must be at least 1"));
        }
        let (from, to) = all_time();
        let mut query = Some(JournalQuery::Window {
            from,
            to,
            after: None,
            limit: SCAN_PAGE,
        });
        let (mut out, mut skipped) = (Vec::new(), 0);
        while let Some(jq) = query.take() {
            let page = self.store.read_journal(&self.stream, jq).await?;
            for e in page.entries {
                let e = stored(e)?;
                if e.entry.pre_state.is_none() {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                    continue;
                }
                out.push(e);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            query = page.next;
        }
        Ok(out)
    }

    fn check_owned(&self, e: &LedgerEntry) -> Result<()> {
        if e.deployment_id != self.deployment.as_str() {
            return Err(AccountingError::invalid(
                "ledger entry",
                format!(
                    "{} belongs to deployment {}, not {}",
                    e.id, e.deployment_id, self.deployment
                ),
            ));
        }
        Ok(())
    }
}

fn stored(e: JournalEntry) -> Result<StoredLedgerEntry> {
    Ok(StoredLedgerEntry {
        seq: e.seq,
        entry: decode(e.value)?,
    })
}

/// Encodes a record with its schema (core's one document codec).
pub(crate) fn to_object<T: Serialize>(
    what: &'static str,
    schema: u64,
    v: &T,
) -> Result<Map<String, Value>> {
    tierstate_core::codec::encode_doc(schema, v).map_err(|e| AccountingError::invalid(what, e))
}

/// Decodes a record written by [`to_object`], refusing a newer schema (core's one codec).
pub(crate) fn from_object<T: for<'de> Deserialize<'de> + Serialize>(
    what: &'static str,
    supported: u64,
    value: Map<String, Value>,
) -> Result<T> {
    tierstate_core::codec::decode_doc(supported, value)
        .map_err(|e| decode_error(what, format!("a stored {what}"), e))
}

/// This crate's error for a body core's codec refused: `NewerSchema` naming `record`, or
/// `InvalidInput` on `what`.
pub(crate) fn decode_error(
    what: &'static str,
    record: String,
    e: tierstate_core::codec::DecodeError,
) -> AccountingError {
    match e {
        tierstate_core::codec::DecodeError::Newer { found, supported } => {
            AccountingError::NewerSchema {
                record,
                found,
                supported,
            }
        }
        tierstate_core::codec::DecodeError::Malformed(m) => {
            AccountingError::invalid(what, format!("{record} is malformed: {m}"))
        }
    }
}

fn encode(e: &LedgerEntry) -> Result<Map<String, Value>> {
    to_object("ledger entry", LEDGER_SCHEMA, e)
}

fn decode(value: Map<String, Value>) -> Result<LedgerEntry> {
    if let Some(Value::String(m)) = value.get("execution_mode") {
        m.parse::<ExecutionMode>()?;
    }
    let e: LedgerEntry = from_object("ledger entry", LEDGER_SCHEMA, value)?;
    e.validate()?;
    Ok(e)
}

fn encode_stats(s: &LedgerStats) -> Result<Map<String, Value>> {
    to_object("ledger totals", LEDGER_SCHEMA, s)
}

fn decode_stats(value: Map<String, Value>) -> Result<LedgerStats> {
    from_object("ledger totals", LEDGER_SCHEMA, value)
}
