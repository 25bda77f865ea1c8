//! Portfolio snapshots, the NAV series with its running high-water mark and drawdown, and the
//! baseline metrics, for one deployment on any [`StateStore`].
//!
//! Layout:
//! - `portfolio.snapshots/<µs since epoch, 19 digits>`: one document per snapshot time, so key
//!   order is time order and every time query is one index seek;
//! - `portfolio/nav`: the header: the NAV fold of every snapshot ever saved (kept up to date
//!   in the same batch as each save, so its figures are one read), the write counter, the
//!   series epoch and the retention cut;
//! - `portfolio/metrics`: the baseline metrics.
//!
//! Every snapshot write also writes the header with compare-and-swap, so concurrent writers
//! are serialized by it and the fold always matches the stored series.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate_core::{
    BatchOp, DeploymentId, DocAddr, DocWrite, Document, Error, KeyRange, Name, PutMode, StateStore,
    Target, WriteBatch,
};

use crate::amount::Amount;
use crate::error::{AccountingError, Result};
use crate::metrics::{PortfolioMetrics, pnl_between};
use crate::nav::{NavCursor, NavFold, NavPage, NavPoint};
use crate::retry::Retry;
use crate::snapshot::PortfolioSnapshot;
use crate::time::{key_of, key_of_us, time_of_key};

/// Collection of snapshots.
pub const SNAPSHOTS: &str = "portfolio.snapshots";
/// Collection of the header and metrics documents.
pub const PORTFOLIO: &str = "portfolio";
/// Schema of the snapshot, header and metrics documents; newer ones are refused. Schema 2:
/// snapshots hold position records; a schema-1 snapshot (any JSON as positions) is read
/// through its step (see [`PortfolioSnapshot::legacy_positions`]).
pub const PORTFOLIO_SCHEMA: u64 = 2;

/// Page size of full scans (re-folds, retention).
const PAGE: usize = 10_000;

/// The most snapshots [`Portfolio::window`] and [`Portfolio::nav_series`] return when no cap
/// is given (seed 000's `scan_cap` default).
pub const DEFAULT_SCAN_CAP: usize = 200_000;

/// What a snapshot save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// A new snapshot was stored with this write sequence number.
    Stored(u64),
    /// The same snapshot was already stored: nothing was written.
    Unchanged,
    /// `upsert` replaced a different snapshot at the same time; the new one has this number.
    Replaced(u64),
}

/// Snapshots of a window, oldest first.
#[derive(Debug, Clone, Default)]
pub struct SnapshotWindow {
    /// The snapshots.
    pub snapshots: Vec<PortfolioSnapshot>,
    /// More matched than the scan cap allowed.
    pub truncated: bool,
}

/// The header's figures: one read, however long the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavSummary {
    /// The fold of every snapshot ever saved, including those retention removed.
    pub fold: NavFold,
    /// Snapshots stored now.
    pub stored: u64,
    /// Changes whenever the stored series changes other than by a newer snapshot (a
    /// back-fill or a replacement): incremental folds from an older epoch must restart.
    pub epoch: u64,
    /// Snapshots before this time were removed by retention, and are refused.
    pub cut: Option<DateTime<Utc>>,
}

/// Metrics as loaded, with the version to save over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMetrics {
    /// The metrics.
    pub metrics: PortfolioMetrics,
    /// The document version.
    pub version: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    /// Fold of the removed prefix.
    base: NavFold,
    /// Fold of base + stored series.
    fold: NavFold,
    stored: u64,
    epoch: u64,
    next_seq: u64,
    latest_us: Option<i64>,
    cut_us: Option<i64>,
}

/// A planned snapshot save ([`Portfolio::plan_snapshot`]), to commit in the caller's batch.
#[derive(Debug, Clone)]
pub struct SnapshotChange {
    /// The snapshot's write sequence number once committed.
    pub seq: u64,
    /// The NAV fold once committed (high-water mark, drawdown).
    pub fold: NavFold,
    ops: Vec<BatchOp>,
}

impl tierstate_core::Plan for SnapshotChange {
    fn ops(&self) -> &[BatchOp] {
        &self.ops
    }
}

/// One deployment's snapshots, NAV series and metrics.
#[derive(Clone)]
pub struct Portfolio {
    store: Arc<dyn StateStore>,
    deployment: DeploymentId,
    snapshots: Name,
    header: DocAddr,
    metrics: DocAddr,
}

impl std::fmt::Debug for Portfolio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portfolio")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl Portfolio {
    /// The portfolio of `deployment` in `store`.
    ///
    /// # Panics
    /// Never: the collection names and keys are constants, valid by construction.
    pub fn new(store: Arc<dyn StateStore>, deployment: &DeploymentId) -> Self {
        let addr = |k: &str| DocAddr {
            deployment_id: deployment.clone(),
            collection: Name::collection(PORTFOLIO).expect("constant name"),
            key: Name::key(k).expect("constant key"),
        };
        Self {
            snapshots: Name::collection(SNAPSHOTS).expect("constant name"),
            header: addr("nav"),
            metrics: addr("metrics"),
            store,
            deployment: deployment.clone(),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    // ----- writes -----

    /// Saves a snapshot. The same snapshot again is `Unchanged`; a different one at the same
    /// time is refused (`SnapshotExists`): only [`Portfolio::upsert_snapshot`] replaces.
    ///
    /// # Errors
    /// `SnapshotExists`; `BeforeRetention`; `InvalidInput`/`InvalidTime` for a bad snapshot;
    /// `Contended`; `Store`.
    pub async fn save_snapshot(&self, snapshot: &PortfolioSnapshot) -> Result<Saved> {
        self.save(snapshot, false, None).await.map(|(s, _)| s)
    }

    /// Saves a snapshot, replacing a different one at the same time (`Replaced`).
    ///
    /// # Errors
    /// As [`Portfolio::save_snapshot`], without `SnapshotExists`.
    pub async fn upsert_snapshot(&self, snapshot: &PortfolioSnapshot) -> Result<Saved> {
        self.save(snapshot, true, None).await.map(|(s, _)| s)
    }

    /// Saves a snapshot (create-only, as [`Portfolio::save_snapshot`]) stamped with the
    /// metrics' flows to date, and the metrics over version `expected` (`None`: first save),
    /// in one transaction. Returns what the save did and the metrics' new version.
    ///
    /// # Errors
    /// As [`Portfolio::save_snapshot`]; `Store(Conflict)` naming the metrics document if
    /// another writer saved them first (nothing is written).
    pub async fn save_snapshot_and_metrics(
        &self,
        snapshot: &PortfolioSnapshot,
        metrics: &PortfolioMetrics,
        expected: Option<u64>,
    ) -> Result<(Saved, u64)> {
        let stamped = snapshot.clone().with_flows(metrics.flows());
        let (saved, version) = self
            .save(&stamped, false, Some((metrics, expected)))
            .await?;
        let version = version.ok_or_else(|| {
            AccountingError::invalid("metrics", "the batch committed without the metrics")
        })?;
        Ok((saved, version))
    }

    /// Saves many snapshots in one transaction (an import or a back-log): create-only, and
    /// every one newer than the newest stored, so the header folds them in order without
    /// reading the series. Returns their sequence numbers.
    ///
    /// # Errors
    /// `InvalidInput` for an empty list, two snapshots at one time, or one at or before the
    /// newest stored (save those one by one); as [`Portfolio::save_snapshot`].
    pub async fn save_snapshots(&self, snapshots: &[PortfolioSnapshot]) -> Result<Vec<u64>> {
        let mut sorted: Vec<&PortfolioSnapshot> = snapshots.iter().collect();
        sorted.sort_by_key(|s| s.time);
        if sorted.is_empty() {
            return Err(AccountingError::invalid("snapshots", "the list is empty"));
        }
        let mut keys = Vec::with_capacity(sorted.len());
        for (i, s) in sorted.iter().enumerate() {
            s.validate()?;
            if i > 0 && sorted[i - 1].time == s.time {
                return Err(AccountingError::invalid(
                    "snapshots",
                    format!("two snapshots at {}", s.time),
                ));
            }
            keys.push(Name::key(key_of("snapshot time", s.time)?)?);
        }
        let mut retry = Retry::new("the snapshot series");
        loop {
            let (mut header, header_version) = self.read_header().await?;
            if let Some(latest) = header
                .latest_us
                .filter(|l| sorted[0].time.timestamp_micros() <= *l)
            {
                return Err(AccountingError::invalid(
                    "snapshots",
                    format!(
                        "{} is not after the newest stored snapshot ({}); save it on its own",
                        sorted[0].time,
                        from_us(latest)?
                    ),
                ));
            }
            let mut batch = WriteBatch::new();
            let mut seqs = Vec::with_capacity(sorted.len());
            for (s, key) in sorted.iter().zip(&keys) {
                header.next_seq += 1;
                header.fold.push(s.total_value);
                seqs.push(header.next_seq);
                batch = batch.document(DocWrite::new(
                    self.snapshot_addr(key.clone()),
                    PutMode::Create,
                    encode_snapshot(s, header.next_seq)?,
                ));
            }
            header.stored += sorted.len() as u64;
            header.latest_us = sorted.last().map(|s| s.time.timestamp_micros());
            batch = batch.document(self.header_write(&header, header_version)?);
            match self.store.write(batch).await {
                Ok(_) => return Ok(seqs),
                Err(e) if self.lost_race(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Plans saving a snapshot newer than every stored one, for a caller that commits it in
    /// its own batch (one tick = one transaction): the snapshot and the header, the header by
    /// compare-and-swap, so a concurrent save fails the caller's batch instead of forking the
    /// series.
    ///
    /// # Errors
    /// `InvalidInput` for a snapshot not newer than the newest (save those with
    /// [`Portfolio::save_snapshot`]); `InvalidInput`/`InvalidTime` for a bad snapshot; `Store`.
    pub async fn plan_snapshot(&self, snapshot: &PortfolioSnapshot) -> Result<SnapshotChange> {
        snapshot.validate()?;
        let key = Name::key(key_of("snapshot time", snapshot.time)?)?;
        let (mut header, header_version) = self.read_header().await?;
        let us = snapshot.time.timestamp_micros();
        if let Some(latest) = header.latest_us.filter(|l| us <= *l) {
            return Err(AccountingError::invalid(
                "snapshot",
                format!(
                    "{} is not after the newest stored snapshot ({}); save it on its own",
                    snapshot.time,
                    from_us(latest)?
                ),
            ));
        }
        header.next_seq += 1;
        header.fold.push(snapshot.total_value);
        header.latest_us = Some(us);
        header.stored += 1;
        Ok(SnapshotChange {
            seq: header.next_seq,
            fold: header.fold,
            ops: vec![
                BatchOp::Document(DocWrite::new(
                    self.snapshot_addr(key),
                    PutMode::Create,
                    encode_snapshot(snapshot, header.next_seq)?,
                )),
                BatchOp::Document(self.header_write(&header, header_version)?),
            ],
        })
    }

    async fn save(
        &self,
        snapshot: &PortfolioSnapshot,
        upsert: bool,
        metrics: Option<(&PortfolioMetrics, Option<u64>)>,
    ) -> Result<(Saved, Option<u64>)> {
        snapshot.validate()?;
        let key = Name::key(key_of("snapshot time", snapshot.time)?)?;
        let metrics_write = metrics.map(|(m, e)| self.metrics_write(m, e)).transpose()?;
        let us = snapshot.time.timestamp_micros();
        let mut retry = Retry::new("the snapshot series");
        loop {
            let (mut header, header_version) = self.read_header().await?;
            if let Some(cut) = header.cut_us.filter(|c| us < *c) {
                return Err(AccountingError::BeforeRetention {
                    time: snapshot.time,
                    cut: from_us(cut)?,
                });
            }
            let address = self.snapshot_addr(key.clone());
            let newest = header.latest_us.is_none_or(|l| us > l);
            // A snapshot newer than the newest cannot exist yet: no read needed.
            let existing = if newest {
                None
            } else {
                self.store.get_document(&address).await?
            };
            let seq = header.next_seq + 1;
            let (mode, outcome) = match &existing {
                Some(doc) => {
                    let (stored, _) = decode_snapshot(doc)?;
                    if stored == *snapshot {
                        if let Some(w) = metrics_write.clone() {
                            let d = self.store.put_document(w).await?;
                            return Ok((Saved::Unchanged, Some(d.version)));
                        }
                        return Ok((Saved::Unchanged, None));
                    }
                    if !upsert {
                        return Err(AccountingError::SnapshotExists {
                            deployment: self.deployment.to_string(),
                            time: snapshot.time,
                        });
                    }
                    (
                        PutMode::Update {
                            expected: doc.version,
                        },
                        Saved::Replaced(seq),
                    )
                }
                None => (PutMode::Create, Saved::Stored(seq)),
            };
            header.next_seq = seq;
            if newest {
                header.fold.push(snapshot.total_value);
                header.latest_us = Some(us);
            } else {
                // A back-fill or a replacement: fold the whole stored series again.
                header.fold = self.refold(&header.base, snapshot).await?;
                header.epoch += 1;
            }
            if existing.is_none() {
                header.stored += 1;
            }
            let mut batch = WriteBatch::new()
                .document(DocWrite::new(
                    address,
                    mode,
                    encode_snapshot(snapshot, seq)?,
                ))
                .document(self.header_write(&header, header_version)?);
            if let Some(w) = metrics_write.clone() {
                batch = batch.document(w);
            }
            match self.store.write(batch).await {
                Ok(c) => {
                    let version = metrics_write
                        .as_ref()
                        .and_then(|_| c.documents.last().map(|d| d.version));
                    return Ok((outcome, version));
                }
                Err(e) if self.lost_race(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// True if `e` is another snapshot writer winning (retry), not the caller's own stale
    /// metrics version (report).
    fn lost_race(&self, e: &Error) -> bool {
        let target = match e {
            Error::Conflict { target, .. } | Error::AlreadyExists { target, .. } => target,
            _ => return false,
        };
        *target != Target::document(&self.metrics)
    }

    /// The fold of base + the stored series with `snapshot` put in its place.
    async fn refold(&self, base: &NavFold, snapshot: &PortfolioSnapshot) -> Result<NavFold> {
        let mut fold = *base;
        let mut placed = false;
        let mut after = None;
        loop {
            let page = self.scan(KeyRange::after(after.clone()), PAGE).await?;
            let full = page.len() == PAGE;
            for Row {
                snapshot: s, key, ..
            } in page
            {
                if !placed && s.time >= snapshot.time {
                    fold.push(snapshot.total_value);
                    placed = true;
                }
                if s.time != snapshot.time {
                    fold.push(s.total_value);
                }
                after = Some(key);
            }
            if !full {
                break;
            }
        }
        if !placed {
            fold.push(snapshot.total_value);
        }
        Ok(fold)
    }

    /// Removes every snapshot older than `before` in one transaction and returns how many.
    /// The header keeps their fold, so lifetime high-water mark and drawdown survive; later
    /// saves older than `before` are refused.
    ///
    /// # Errors
    /// `Contended`; `Store`.
    pub async fn delete_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let cut = before.timestamp_micros();
        if cut <= 0 {
            return Ok(0);
        }
        let mut retry = Retry::new("the snapshot series");
        loop {
            let (mut header, header_version) = self.read_header().await?;
            let mut doomed = Vec::new();
            let mut after = None;
            loop {
                let range = KeyRange {
                    after: after.clone(),
                    before: Some(Name::key(key_of_us(cut))?),
                    descending: false,
                };
                let page = self.scan(range, PAGE).await?;
                let full = page.len() == PAGE;
                for Row {
                    snapshot,
                    version,
                    key,
                    ..
                } in page
                {
                    after = Some(key.clone());
                    doomed.push((snapshot.total_value, version, key));
                }
                if !full {
                    break;
                }
            }
            if doomed.is_empty() {
                return Ok(0);
            }
            header.base = header.base.extended(doomed.iter().map(|(v, _, _)| *v));
            header.stored -= doomed.len() as u64;
            header.cut_us = Some(header.cut_us.map_or(cut, |c| c.max(cut)));
            let mut batch = WriteBatch::new().document(self.header_write(&header, header_version)?);
            for (_, version, key) in &doomed {
                batch = batch.delete_document(self.snapshot_addr(key.clone()), Some(*version));
            }
            match self.store.write(batch).await {
                Ok(_) => return Ok(doomed.len() as u64),
                Err(e) if self.lost_race(&e) => retry.wait().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    // ----- snapshot reads -----

    /// The newest snapshot.
    ///
    /// # Errors
    /// `Store(Integrity)` for damaged bytes; `InvalidInput` for a stored snapshot that does
    /// not decode; `Store` for I/O. (Every read below fails the same ways.)
    pub async fn latest(&self) -> Result<Option<PortfolioSnapshot>> {
        self.one(KeyRange::before_descending(None)).await
    }

    /// The oldest stored snapshot.
    ///
    /// # Errors
    /// As [`Portfolio::latest`].
    pub async fn first(&self) -> Result<Option<PortfolioSnapshot>> {
        self.one(KeyRange::all()).await
    }

    /// Up to `limit` snapshots at or after `since`, oldest first (a chart from an anchor).
    ///
    /// # Errors
    /// `InvalidInput` for a zero limit; as [`Portfolio::latest`].
    pub async fn since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PortfolioSnapshot>> {
        positive_limit("limit", limit)?;
        let range = KeyRange::after(at_or_after(since.timestamp_micros())?);
        self.snapshots_in(range, limit).await
    }

    /// The newest `n` snapshots, oldest first: the last element is always the newest.
    ///
    /// # Errors
    /// `InvalidInput` for a zero `n`; as [`Portfolio::latest`].
    pub async fn recent(&self, n: usize) -> Result<Vec<PortfolioSnapshot>> {
        positive_limit("n", n)?;
        let mut out = self
            .snapshots_in(KeyRange::before_descending(None), n)
            .await?;
        out.reverse();
        Ok(out)
    }

    /// Snapshots with `from <= time <= to`, oldest first, at most `scan_cap` of them
    /// (`truncated` says more matched). Either bound may be absent (open end), and the cap
    /// defaults to [`DEFAULT_SCAN_CAP`], as seed 000's `get_snapshots_in_window`.
    ///
    /// # Errors
    /// `InvalidInput` if `from > to` or `scan_cap` is 0; as [`Portfolio::latest`].
    pub async fn window(
        &self,
        from: impl Into<Option<DateTime<Utc>>>,
        to: impl Into<Option<DateTime<Utc>>>,
        scan_cap: impl Into<Option<usize>>,
    ) -> Result<SnapshotWindow> {
        let (from, to) = (from.into(), to.into());
        let scan_cap = scan_cap.into().unwrap_or(DEFAULT_SCAN_CAP);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(AccountingError::invalid(
                "window",
                format!("from {from} is after to {to}"),
            ));
        }
        positive_limit("scan cap", scan_cap)?;
        let Some(range) = window_range(from, to)? else {
            return Ok(SnapshotWindow::default());
        };
        let mut snapshots = self.snapshots_in(range, scan_cap.saturating_add(1)).await?;
        let truncated = snapshots.len() > scan_cap;
        snapshots.truncate(scan_cap);
        Ok(SnapshotWindow {
            snapshots,
            truncated,
        })
    }

    /// The newest snapshot at or before `t` (never one after it).
    ///
    /// # Errors
    /// As [`Portfolio::latest`].
    pub async fn at_or_before(&self, t: DateTime<Utc>) -> Result<Option<PortfolioSnapshot>> {
        let us = t.timestamp_micros();
        if us < 0 {
            return Ok(None);
        }
        let before = (us < i64::MAX)
            .then(|| Name::key(key_of_us(us + 1)))
            .transpose()?;
        self.one(KeyRange::before_descending(before)).await
    }

    /// The snapshot nearest to `t` on either side; of two equally near, the earlier.
    ///
    /// # Errors
    /// As [`Portfolio::latest`].
    pub async fn nearest(&self, t: DateTime<Utc>) -> Result<Option<PortfolioSnapshot>> {
        let before = self.at_or_before(t).await?;
        if before.as_ref().is_some_and(|s| s.time == t) {
            return Ok(before);
        }
        let after = self
            .one(KeyRange::after(at_or_after(t.timestamp_micros())?))
            .await?;
        Ok(match (before, after) {
            (Some(b), Some(a)) => Some(if a.time - t < t - b.time { a } else { b }),
            (b, a) => b.or(a),
        })
    }

    // ----- NAV -----

    /// The header figures: lifetime high-water mark and drawdown in one read.
    ///
    /// # Errors
    /// As [`Portfolio::latest`].
    pub async fn nav_summary(&self) -> Result<NavSummary> {
        let (h, _) = self.read_header().await?;
        Ok(NavSummary {
            fold: h.fold,
            stored: h.stored,
            epoch: h.epoch,
            cut: h.cut_us.map(from_us).transpose()?,
        })
    }

    /// The NAV series oldest first, each point with the snapshot's components: from the
    /// start (`None`) or after a cursor, at most `scan_cap` points ([`DEFAULT_SCAN_CAP`] if
    /// `None`). Fold a full read from the summary's base with
    /// [`NavFold::extended`], or continue a fold with the points after a cursor.
    ///
    /// # Errors
    /// `SeriesRewritten` if the cursor predates a back-fill or replacement: read from the
    /// start again; `InvalidInput` for a zero cap; as [`Portfolio::latest`].
    pub async fn nav_series(
        &self,
        since: Option<NavCursor>,
        scan_cap: impl Into<Option<usize>>,
    ) -> Result<NavPage> {
        let scan_cap = scan_cap.into().unwrap_or(DEFAULT_SCAN_CAP);
        positive_limit("scan cap", scan_cap)?;
        let (h, _) = self.read_header().await?;
        if let Some(c) = since.filter(|c| c.epoch != h.epoch) {
            return Err(AccountingError::SeriesRewritten {
                cursor: c.epoch,
                current: h.epoch,
            });
        }
        let after = since
            .map(|c| key_of("cursor time", c.time).and_then(|k| Ok(Name::key(k)?)))
            .transpose()?;
        let mut rows = self
            .scan(KeyRange::after(after), scan_cap.saturating_add(1))
            .await?;
        let truncated = rows.len() > scan_cap;
        rows.truncate(scan_cap);
        let mut points = Vec::with_capacity(rows.len());
        for r in rows {
            points.push(NavPoint {
                time: r.snapshot.time,
                seq: r.seq,
                value: r.snapshot.total_value,
                available_cash: r.snapshot.available_cash,
                value_confidence: r.snapshot.value_confidence,
                flows: r.snapshot.flows,
            });
        }
        let cursor = points
            .last()
            .map(|p| NavCursor {
                time: p.time,
                seq: p.seq,
                epoch: h.epoch,
            })
            .or(since);
        Ok(NavPage {
            points,
            truncated,
            cursor,
        })
    }

    /// The fold the stored series gives when continued from the removed prefix: equals
    /// [`NavSummary::fold`] (this is the full recomputation, reading every snapshot).
    ///
    /// # Errors
    /// As [`Portfolio::nav_series`].
    pub async fn recompute_nav(&self) -> Result<NavFold> {
        let (h, _) = self.read_header().await?;
        let mut fold = h.base;
        let mut after = None;
        loop {
            let page = self.scan(KeyRange::after(after.clone()), PAGE).await?;
            let full = page.len() == PAGE;
            for r in page {
                fold.push(r.snapshot.total_value);
                after = Some(r.key);
            }
            if !full {
                return Ok(fold);
            }
        }
    }

    // ----- metrics -----

    /// The stored metrics, or `None`.
    ///
    /// # Errors
    /// As [`Portfolio::latest`].
    pub async fn load_metrics(&self) -> Result<Option<StoredMetrics>> {
        let Some(d) = self.store.get_document(&self.metrics).await? else {
            return Ok(None);
        };
        let version = d.version;
        let metrics: PortfolioMetrics = decode_versioned(d.value, &d.address, "portfolio metrics")?;
        metrics.validate()?;
        Ok(Some(StoredMetrics { metrics, version }))
    }

    /// Saves the metrics over version `expected` (`None`: the first save); returns the new
    /// version.
    ///
    /// # Errors
    /// `Store(Conflict)` with expected and actual versions if another writer saved first;
    /// `Store(AlreadyExists)` for a first save over existing metrics.
    pub async fn save_metrics(
        &self,
        metrics: &PortfolioMetrics,
        expected: Option<u64>,
    ) -> Result<u64> {
        let w = self.metrics_write(metrics, expected)?;
        Ok(self.store.put_document(w).await?.version)
    }

    /// The metrics document write, for a caller's own [`WriteBatch`].
    ///
    /// # Errors
    /// `InvalidInput` for bad metrics.
    pub fn metrics_write(
        &self,
        metrics: &PortfolioMetrics,
        expected: Option<u64>,
    ) -> Result<DocWrite> {
        metrics.validate()?;
        let mode = expected.map_or(PutMode::Create, |e| PutMode::Update { expected: e });
        Ok(DocWrite::new(
            self.metrics.clone(),
            mode,
            with_schema(metrics)?,
        ))
    }

    /// PnL between the snapshots at or before `from` and at or before `to`, net of the
    /// deposits and withdrawals between them; unmeasured if either snapshot is missing or
    /// lacks its flows.
    ///
    /// # Errors
    /// `InvalidInput` if `from > to`; as [`Portfolio::latest`].
    pub async fn pnl_over(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Amount> {
        if from > to {
            return Err(AccountingError::invalid(
                "window",
                format!("from {from} is after to {to}"),
            ));
        }
        match (self.at_or_before(from).await?, self.at_or_before(to).await?) {
            (Some(a), Some(b)) => pnl_between(&a, &b),
            _ => Ok(Amount::Unmeasured),
        }
    }

    // ----- plumbing -----

    fn snapshot_addr(&self, key: Name) -> DocAddr {
        DocAddr {
            deployment_id: self.deployment.clone(),
            collection: self.snapshots.clone(),
            key,
        }
    }

    async fn read_header(&self) -> Result<(Header, Option<u64>)> {
        match self.store.get_document(&self.header).await? {
            None => Ok((Header::default(), None)),
            Some(d) => {
                let v = d.version;
                Ok((
                    decode_versioned(d.value, &d.address, "the NAV header")?,
                    Some(v),
                ))
            }
        }
    }

    fn header_write(&self, h: &Header, version: Option<u64>) -> Result<DocWrite> {
        let mode = version.map_or(PutMode::Create, |e| PutMode::Update { expected: e });
        Ok(DocWrite::new(self.header.clone(), mode, with_schema(h)?))
    }

    async fn one(&self, range: KeyRange) -> Result<Option<PortfolioSnapshot>> {
        Ok(self.snapshots_in(range, 1).await?.pop())
    }

    async fn snapshots_in(&self, range: KeyRange, limit: usize) -> Result<Vec<PortfolioSnapshot>> {
        Ok(self
            .scan(range, limit)
            .await?
            .into_iter()
            .map(|r| r.snapshot)
            .collect())
    }

    /// Decoded snapshots of a key range.
    async fn scan(&self, range: KeyRange, limit: usize) -> Result<Vec<Row>> {
        let docs = self
            .store
            .scan_documents(&self.deployment, &self.snapshots, &range, limit)
            .await?;
        docs.into_iter()
            .map(|d| {
                let d = d?;
                let (snapshot, seq) = decode_snapshot(&d)?;
                Ok(Row {
                    snapshot,
                    seq,
                    version: d.version,
                    key: d.address.key,
                })
            })
            .collect()
    }
}

/// A stored snapshot with its write sequence number, document version and key.
struct Row {
    snapshot: PortfolioSnapshot,
    seq: u64,
    version: u64,
    key: Name,
}

fn positive_limit(field: &'static str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(AccountingError::invalid(field, "must be at least 1"));
    }
    Ok(())
}

/// The exclusive lower bound that admits `us` and everything after it.
fn at_or_after(us: i64) -> Result<Option<Name>> {
    Ok(if us <= 0 {
        None
    } else {
        Some(Name::key(key_of_us(us - 1))?)
    })
}

/// The key range of `[from, to]` (an absent bound is open); `None` if it lies wholly before
/// 1970.
fn window_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Option<KeyRange>> {
    let t = to.map(|t| t.timestamp_micros());
    if t.is_some_and(|t| t < 0) {
        return Ok(None);
    }
    Ok(Some(KeyRange {
        after: match from {
            Some(f) => at_or_after(f.timestamp_micros())?,
            None => None,
        },
        before: match t {
            Some(t) if t < i64::MAX => Some(Name::key(key_of_us(t + 1))?),
            _ => None,
        },
        descending: false,
    }))
}

fn from_us(us: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| AccountingError::invalid("time", format!("{us} µs is out of range")))
}

fn with_schema<T: Serialize>(v: &T) -> Result<Map<String, Value>> {
    tierstate_core::codec::encode_doc(PORTFOLIO_SCHEMA, v)
        .map_err(|e| AccountingError::invalid("record", e))
}

/// Decodes a document value written with [`with_schema`], refusing a newer schema (core's
/// one codec).
fn decode_versioned<T: for<'de> Deserialize<'de> + Serialize>(
    value: Map<String, Value>,
    address: &DocAddr,
    what: &str,
) -> Result<T> {
    tierstate_core::codec::decode_doc(PORTFOLIO_SCHEMA, value).map_err(|e| {
        crate::ledger::decode_error("stored record", format!("{what} at {address}"), e)
    })
}

fn encode_snapshot(s: &PortfolioSnapshot, seq: u64) -> Result<Map<String, Value>> {
    let mut m = with_schema(s)?;
    m.insert("seq".into(), Value::from(seq));
    Ok(m)
}

/// A stored snapshot and its write sequence number; its time must be its key's.
fn decode_snapshot(d: &Document) -> Result<(PortfolioSnapshot, u64)> {
    let mut value = d.value.clone();
    let seq = value
        .remove("seq")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| {
            AccountingError::invalid("stored snapshot", format!("{} has no seq", d.address))
        })?;
    if tierstate_core::codec::schema_of(&value) <= 1 {
        crate::snapshot::step_from_v1(&mut value);
    }
    let s: PortfolioSnapshot = decode_versioned(value, &d.address, "snapshot")?;
    s.validate()?;
    if time_of_key(d.address.key.as_str())? != s.time {
        return Err(AccountingError::invalid(
            "stored snapshot",
            format!("{} holds time {}, not its key's", d.address, s.time),
        ));
    }
    Ok((s, seq))
}
