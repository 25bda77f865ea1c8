//! Planning again after losing a compare-and-swap: a bounded number of attempts with jittered
//! exponential backoff, so writers contending for one record (the ledger totals, a registry
//! claim) spread out instead of colliding again in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::error::{AccountingError, Result};

/// Attempts after the first before giving up with `Contended`.
const RETRIES: usize = 24;

/// The retries of one call.
pub(crate) struct Retry {
    delays: backon::ExponentialBackoff,
    what: &'static str,
    attempts: u32,
}

impl Retry {
    /// Retries for a call contending for `what`.
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            delays: ExponentialBuilder::default()
                .with_min_delay(Duration::from_micros(200))
                .with_max_delay(Duration::from_millis(50))
                .with_max_times(RETRIES)
                .with_jitter()
                .build(),
            what,
            attempts: 1,
        }
    }

    /// After a lost race: waits before the next attempt, or gives up.
    ///
    /// # Errors
    /// `Contended` once the attempts are spent.
    pub(crate) async fn wait(&mut self) -> Result<()> {
        match self.delays.next() {
            Some(d) => {
                self.attempts += 1;
                tokio::time::sleep(d).await;
                Ok(())
            }
            None => Err(AccountingError::Contended {
                what: self.what,
                attempts: self.attempts,
            }),
        }
    }
}
