//! Planning again after losing a compare-and-swap, on core's one retry helper: a bounded
//! number of attempts with jittered exponential backoff, so writers contending for one record
//! (the ledger totals, a registry claim) spread out instead of colliding again in lockstep.

use tierstate_core::{Backoff, RetryPolicy};

use crate::error::{AccountingError, Result};

/// The retries of one call.
pub(crate) struct Retry {
    backoff: Backoff,
    what: &'static str,
}

impl Retry {
    /// Retries for a call contending for `what`.
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            backoff: Backoff::new(RetryPolicy::default()),
            what,
        }
    }

    /// After a lost race: waits before the next attempt, or gives up.
    ///
    /// # Errors
    /// `Contended` once the attempts are spent.
    pub(crate) async fn wait(&mut self) -> Result<()> {
        if self.backoff.wait().await {
            Ok(())
        } else {
            Err(AccountingError::Contended {
                what: self.what,
                attempts: self.backoff.attempts(),
            })
        }
    }
}
