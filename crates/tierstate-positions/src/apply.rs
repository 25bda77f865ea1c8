//! Running reconciliation against a store: dry run, or apply with the venue as the truth —
//! the corrected book and the report committed in one batch, under CAS.

use chrono::Utc;
use tierstate_core::{Append, StreamAddr, WriteBatch};

use crate::error::{PositionError, Result};
use crate::reconcile::{ReconciliationReport, StalePolicy, Tolerances, VenuePositions, reconcile};
use crate::store::PositionStore;

/// The journal each applied reconciliation's report is appended to, beside the book.
pub const RECONCILIATION_STREAM: &str = "positions.reconciliations";

/// Whether a run changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Report only; nothing is written.
    DryRun,
    /// Commit the corrected book and the report together.
    Apply,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The report (of the last attempt).
    pub report: ReconciliationReport,
    /// The book's version after the run; unchanged when nothing was written.
    pub version: u64,
    /// The report's journal entry, when one was committed.
    pub entry_seq: Option<u64>,
    /// Attempts made: more than 1 when another writer changed the book meanwhile.
    pub attempts: u32,
}

impl RunOutcome {
    /// Whether the run wrote a new book.
    pub fn applied(&self) -> bool {
        self.entry_seq.is_some()
    }
}

/// Reconciles a deployment's book against a venue.
#[derive(Debug, Clone)]
pub struct BookReconciler {
    store: PositionStore,
    stream: StreamAddr,
    tolerances: Tolerances,
    stale: StalePolicy,
    max_attempts: u32,
}

impl BookReconciler {
    /// A reconciler of the book in `store`.
    ///
    /// # Errors
    /// `InvalidInput` if the deployment cannot address a journal.
    pub fn new(store: PositionStore, tolerances: Tolerances, stale: StalePolicy) -> Result<Self> {
        let stream = StreamAddr::new(
            store.address().deployment_id.as_str(),
            RECONCILIATION_STREAM,
        )?;
        Ok(Self {
            store,
            stream,
            tolerances,
            stale,
            max_attempts: 8,
        })
    }

    /// Where applied reports are journaled.
    pub fn stream(&self) -> &StreamAddr {
        &self.stream
    }

    /// How many times a run re-reads the book after losing a race before it gives up.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Asks `venue` for `chains` and reconciles the stored book against it. In
    /// [`Mode::Apply`] the corrected book and the report (a journal entry) are committed in
    /// one batch over the version read; if another writer saved the book meanwhile, the run
    /// re-reads it and reconciles again against the same venue report. Nothing is written
    /// when the book already agrees with the venue.
    ///
    /// # Errors
    /// `InvalidInput` if no book is stored or the venue's report does not cover exactly
    /// `chains`; `ChainNotFound`; the venue's error (nothing written); `Contended` after
    /// `max_attempts` lost races; `Store` for the store's own failures.
    pub async fn run(
        &self,
        venue: &dyn VenuePositions,
        chains: &[String],
        mode: Mode,
    ) -> Result<RunOutcome> {
        let mut saved = self.load().await?;
        for c in chains {
            saved.book.check_chain(c)?;
        }
        let report = venue.positions(chains).await?;
        let mut asked: Vec<&String> = chains.iter().collect();
        let mut got: Vec<&String> = report.chains.iter().collect();
        asked.sort();
        asked.dedup();
        got.sort();
        got.dedup();
        if asked != got {
            return Err(PositionError::invalid(
                "venue report",
                format!("covers {got:?}; asked for {asked:?}"),
            ));
        }
        // Lost races back off on core's retry helper.
        let mut backoff = tierstate_core::Backoff::new(tierstate_core::RetryPolicy {
            attempts: self.max_attempts,
            ..tierstate_core::RetryPolicy::default()
        });
        loop {
            let attempt = backoff.attempts();
            let now = Utc::now();
            let rec = reconcile(&saved.book, &report, &self.tolerances, &self.stale, now)?;
            if mode == Mode::DryRun || rec.target == saved.book {
                return Ok(RunOutcome {
                    report: rec.report,
                    version: saved.version,
                    entry_seq: None,
                    attempts: attempt,
                });
            }
            let entry = Append::typed(self.stream.clone(), report.as_of, &rec.report)?;
            let batch = WriteBatch::new()
                .with(&self.store.plan_save(&rec.target, Some(saved.version))?)
                .append(entry);
            match self.store.store().write(batch).await {
                Ok(done) => {
                    return Ok(RunOutcome {
                        report: rec.report,
                        version: done.documents[0].version,
                        entry_seq: done.entries.first().map(|e| e.entry.seq),
                        attempts: attempt,
                    });
                }
                Err(e) if e.is_conflict() => {
                    if !backoff.wait().await {
                        return Err(PositionError::Contended {
                            attempts: self.max_attempts,
                        });
                    }
                    saved = self.load().await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn load(&self) -> Result<crate::store::SavedBook> {
        self.store.load().await?.ok_or_else(|| {
            PositionError::invalid(
                "book",
                format!(
                    "no position book is stored at {}: save one with its chains first",
                    self.store.address()
                ),
            )
        })
    }
}
