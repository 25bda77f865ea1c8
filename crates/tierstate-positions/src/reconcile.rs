//! Reconciliation against what a venue reports: a deterministic report, and the corrected
//! book it implies. Pure logic; [`crate::BookReconciler`] commits it.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::book::{Missing, PositionBook};
use crate::error::{PositionError, Result};
use crate::kind::PositionType;
use crate::record::{PositionRecord, check_holding};
use crate::totals::Totals;

/// One position as the venue reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VenuePosition {
    /// Position id (matches [`PositionRecord::id`]).
    pub id: String,
    /// Chain.
    pub chain: String,
    /// Kind.
    #[serde(rename = "type")]
    pub kind: PositionType,
    /// Token or asset.
    pub token: String,
    /// Amount.
    pub amount: Decimal,
    /// Value in USD.
    pub value_usd: Decimal,
}

impl VenuePosition {
    /// A reported position, checked like a record.
    ///
    /// # Errors
    /// As [`PositionRecord::new`].
    pub fn new(
        id: impl Into<String>,
        chain: impl Into<String>,
        kind: PositionType,
        token: impl Into<String>,
        amount: Decimal,
        value_usd: Decimal,
    ) -> Result<Self> {
        let p = Self {
            id: id.into(),
            chain: chain.into(),
            kind,
            token: token.into(),
            amount,
            value_usd,
        };
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<()> {
        check_holding(
            &self.id,
            &self.chain,
            self.kind,
            &self.token,
            self.amount,
            self.value_usd,
        )
    }

    fn as_record(&self, now: DateTime<Utc>) -> Result<PositionRecord> {
        PositionRecord::new(
            self.id.clone(),
            self.chain.clone(),
            self.kind,
            self.token.clone(),
            self.amount,
            self.value_usd,
        )?
        .with_times(now, now)
    }
}

/// Everything a venue holds for the chains it was asked about, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VenueReport {
    /// Who reported it.
    pub venue: String,
    /// The chains it covers: a position of the book on one of them that is not in
    /// `positions` is missing on the venue.
    pub chains: Vec<String>,
    /// The positions.
    pub positions: Vec<VenuePosition>,
    /// When the venue took it.
    pub as_of: DateTime<Utc>,
}

/// What an exchange, chain indexer or prime broker reports right now.
#[async_trait]
pub trait VenuePositions: Send + Sync {
    /// The positions on `chains`.
    ///
    /// # Errors
    /// [`PositionError::Venue`] when the venue cannot answer.
    async fn positions(&self, chains: &[String]) -> Result<VenueReport>;
}

/// How far a book may be from the venue before it counts as drift: a difference within
/// either the absolute bound or `relative` × |venue figure| is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tolerance {
    /// Absolute bound on amounts.
    pub amount_abs: Decimal,
    /// Absolute bound on USD values.
    pub value_abs: Decimal,
    /// Relative bound (0.001 = 0.1 %), on both.
    pub relative: Decimal,
}

impl Tolerance {
    /// No drift accepted at all.
    pub const EXACT: Tolerance = Tolerance {
        amount_abs: Decimal::ZERO,
        value_abs: Decimal::ZERO,
        relative: Decimal::ZERO,
    };

    /// A tolerance.
    ///
    /// # Errors
    /// `InvalidInput` if a bound is negative.
    pub fn new(amount_abs: Decimal, value_abs: Decimal, relative: Decimal) -> Result<Self> {
        for (field, v) in [
            ("amount_abs", amount_abs),
            ("value_abs", value_abs),
            ("relative", relative),
        ] {
            if v.is_sign_negative() && !v.is_zero() {
                return Err(PositionError::invalid(field, format!("{v} is negative")));
            }
        }
        Ok(Self {
            amount_abs,
            value_abs,
            relative,
        })
    }

    fn within(abs: Decimal, relative: Decimal, local: Decimal, venue: Decimal) -> bool {
        // Records are bounded (`MAX_MAGNITUDE`), so the difference fits; a relative bound too
        // large to compute accepts everything.
        let Some(diff) = local.checked_sub(venue).map(|d| d.abs()) else {
            return false;
        };
        diff <= abs
            || relative
                .checked_mul(venue.abs())
                .is_none_or(|bound| diff <= bound)
    }

    /// Whether `local` is close enough to the venue's `venue` amount.
    pub fn amount_ok(&self, local: Decimal, venue: Decimal) -> bool {
        Self::within(self.amount_abs, self.relative, local, venue)
    }

    /// Whether `local` is close enough to the venue's `venue` value.
    pub fn value_ok(&self, local: Decimal, venue: Decimal) -> bool {
        Self::within(self.value_abs, self.relative, local, venue)
    }
}

/// A default tolerance and overrides per token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerances {
    default: Tolerance,
    per_token: BTreeMap<String, Tolerance>,
}

impl Tolerances {
    /// `default` for every token.
    pub fn new(default: Tolerance) -> Self {
        Self {
            default,
            per_token: BTreeMap::new(),
        }
    }

    /// `tolerance` for `token`.
    pub fn with_token(mut self, token: impl Into<String>, tolerance: Tolerance) -> Self {
        self.per_token.insert(token.into(), tolerance);
        self
    }

    /// The tolerance that applies to `token`.
    pub fn for_token(&self, token: &str) -> &Tolerance {
        self.per_token.get(token).unwrap_or(&self.default)
    }
}

/// When a position the venue no longer reports is removed: after `after_runs` consecutive
/// runs without it, or once it has been missing for `after` (whichever comes first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StalePolicy {
    /// Runs without the position before it is removed (at least 1).
    pub after_runs: u32,
    /// Time without the position before it is removed.
    pub after: Option<chrono::Duration>,
}

impl Default for StalePolicy {
    /// Removed on the third run in a row that does not see it.
    fn default() -> Self {
        Self {
            after_runs: 3,
            after: None,
        }
    }
}

impl StalePolicy {
    /// A policy.
    ///
    /// # Errors
    /// `InvalidInput` for 0 runs or a negative duration.
    pub fn new(after_runs: u32, after: Option<chrono::Duration>) -> Result<Self> {
        if after_runs == 0 {
            return Err(PositionError::invalid("after_runs", "must be at least 1"));
        }
        if after.is_some_and(|d| d < chrono::Duration::zero()) {
            return Err(PositionError::invalid("after", "is negative"));
        }
        Ok(Self { after_runs, after })
    }
}

/// One difference between the book and the venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// The venue holds a position the book does not: it is added.
    MissingLocally {
        /// What the venue reports.
        venue: VenuePosition,
    },
    /// The book holds a position the venue does not report.
    MissingOnVenue {
        /// Chain.
        chain: String,
        /// Position id.
        id: String,
        /// Consecutive runs without it, this one included.
        runs: u32,
        /// Since when.
        since: DateTime<Utc>,
        /// Whether it is now stale and removed from the book.
        removed: bool,
    },
    /// The venue reports another kind or token under the same id: the venue's is taken.
    Replaced {
        /// The book's position.
        local: Box<PositionRecord>,
        /// What the venue reports.
        venue: VenuePosition,
    },
    /// The amounts differ beyond tolerance: the venue's is taken.
    AmountDrift {
        /// Chain.
        chain: String,
        /// Position id.
        id: String,
        /// Token.
        token: String,
        /// The book's amount.
        local: Decimal,
        /// The venue's amount.
        venue: Decimal,
    },
    /// The USD values differ beyond tolerance: the venue's is taken.
    ValueDrift {
        /// Chain.
        chain: String,
        /// Position id.
        id: String,
        /// Token.
        token: String,
        /// The book's value.
        local: Decimal,
        /// The venue's value.
        venue: Decimal,
    },
}

impl Finding {
    /// (chain, id, kind order): the report's stable order.
    fn sort_key(&self) -> (&str, &str, u8) {
        match self {
            Self::MissingLocally { venue } => (&venue.chain, &venue.id, 0),
            Self::MissingOnVenue { chain, id, .. } => (chain, id, 1),
            Self::Replaced { venue, .. } => (&venue.chain, &venue.id, 2),
            Self::AmountDrift { chain, id, .. } => (chain, id, 3),
            Self::ValueDrift { chain, id, .. } => (chain, id, 4),
        }
    }
}

/// What a reconciliation found, in (chain, id, kind) order, and the totals of the book it
/// leads to. The same inputs always give the same report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconciliationReport {
    /// Who reported.
    pub venue: String,
    /// The chains reconciled.
    pub chains: Vec<String>,
    /// When the venue took its report.
    pub as_of: DateTime<Utc>,
    /// The differences.
    pub findings: Vec<Finding>,
    /// Totals of the corrected book.
    pub target: Totals,
}

impl ReconciliationReport {
    /// Whether the book and the venue agree.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A report and the book that applying it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The report.
    pub report: ReconciliationReport,
    /// The corrected book (the venue taken as the truth; other chains untouched).
    pub target: PositionBook,
}

/// Compares `book` with `venue` on the chains the venue covers and returns the report and
/// the corrected book, as of `now`. Positions on other chains are not looked at.
///
/// # Errors
/// `ChainNotFound` if the venue covers a chain the book does not have; `InvalidInput` for a
/// venue position outside the chains it covers or reported twice.
pub fn reconcile(
    book: &PositionBook,
    venue: &VenueReport,
    tolerances: &Tolerances,
    stale: &StalePolicy,
    now: DateTime<Utc>,
) -> Result<Reconciled> {
    let chains: BTreeSet<&str> = venue.chains.iter().map(String::as_str).collect();
    for c in &chains {
        book.check_chain(c)?;
    }
    let mut reported: BTreeMap<(&str, &str), &VenuePosition> = BTreeMap::new();
    // Every reported position is checked before anything is compared (its fields are public,
    // so a report may be built without `VenuePosition::new`).
    for p in &venue.positions {
        p.validate()?;
        if !chains.contains(p.chain.as_str()) {
            return Err(PositionError::invalid(
                "venue report",
                format!(
                    "position {} is on {}, which the report does not cover",
                    p.id, p.chain
                ),
            ));
        }
        if reported.insert((&p.chain, &p.id), p).is_some() {
            return Err(PositionError::invalid(
                "venue report",
                format!("position {} on {} is reported twice", p.id, p.chain),
            ));
        }
    }
    let mut target = book.clone();
    let mut findings = Vec::new();
    for chain in &chains {
        for local in book.on_chain(chain)? {
            let Some(v) = reported.get(&(chain, local.id.as_str())) else {
                let prev = book.missing(&local.id, chain);
                let runs = prev.map_or(1, |m| m.runs.saturating_add(1));
                let since = prev.map_or(now, |m| m.since);
                let removed = runs >= stale.after_runs
                    || stale.after.is_some_and(|after| now - since >= after);
                if removed {
                    target.take(chain, &local.id);
                } else {
                    target.set_missing(chain, &local.id, Some(Missing { runs, since }));
                }
                findings.push(Finding::MissingOnVenue {
                    chain: (*chain).to_owned(),
                    id: local.id.clone(),
                    runs,
                    since,
                    removed,
                });
                continue;
            };
            target.set_missing(chain, &local.id, None);
            if v.kind != local.kind || v.token != local.token {
                findings.push(Finding::Replaced {
                    local: Box::new(local.clone()),
                    venue: (*v).clone(),
                });
                let mut r = v.as_record(now)?;
                r.created_at = local.created_at;
                r.protocol = local.protocol.clone();
                r.metadata = local.metadata.clone();
                target.upsert(r)?;
                continue;
            }
            let tol = tolerances.for_token(&local.token);
            let amount_ok = tol.amount_ok(local.amount, v.amount);
            let value_ok = tol.value_ok(local.value_usd, v.value_usd);
            if !amount_ok {
                findings.push(Finding::AmountDrift {
                    chain: (*chain).to_owned(),
                    id: local.id.clone(),
                    token: local.token.clone(),
                    local: local.amount,
                    venue: v.amount,
                });
            }
            if !value_ok {
                findings.push(Finding::ValueDrift {
                    chain: (*chain).to_owned(),
                    id: local.id.clone(),
                    token: local.token.clone(),
                    local: local.value_usd,
                    venue: v.value_usd,
                });
            }
            if !(amount_ok && value_ok) {
                let mut r = local.clone();
                r.amount = v.amount;
                r.value_usd = v.value_usd;
                r.updated_at = now.max(r.created_at);
                target.upsert(r)?;
            }
        }
        let lo = (*chain, "");
        for (&(_, id), v) in reported.range(lo..).take_while(|((c, _), _)| c == chain) {
            if book.get(id, chain)?.is_none() {
                findings.push(Finding::MissingLocally {
                    venue: (*v).clone(),
                });
                target.upsert(v.as_record(now)?)?;
            }
        }
    }
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let report = ReconciliationReport {
        venue: venue.venue.clone(),
        chains: chains.iter().map(|c| (*c).to_owned()).collect(),
        as_of: venue.as_of,
        findings,
        target: target.totals(),
    };
    Ok(Reconciled { report, target })
}
