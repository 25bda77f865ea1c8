//! `retry_on_conflict`: re-run an optimistic operation while it loses compare-and-swaps, with
//! bounded attempts and jittered exponential backoff (backon), ending in a typed error that
//! carries the attempts.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::error::{OrdersError, Result};

/// How a [`retry_on_conflict`] retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// First delay.
    pub min_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 25,
            min_delay: Duration::from_micros(200),
            max_delay: Duration::from_millis(50),
        }
    }
}

/// Runs `op` until it succeeds or fails with something other than a conflict; between
/// conflicts it waits a jittered, growing delay. `op` must re-read what it depends on.
///
/// # Errors
/// The first error that is not a conflict; `Contended { what, attempts, last }` once the
/// attempts are spent.
pub async fn retry_on_conflict<T, F, Fut>(
    what: &'static str,
    policy: RetryPolicy,
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retry_if(what, policy, OrdersError::is_conflict, op).await
}

/// As [`retry_on_conflict`], retrying only the conflicts `retry` picks (the others are
/// returned): e.g. a lost race on an internal index, not on the caller's own record.
pub(crate) async fn retry_if<T, F, Fut>(
    what: &'static str,
    policy: RetryPolicy,
    retry: impl Fn(&OrdersError) -> bool,
    mut op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.attempts.saturating_sub(1) as usize)
        .with_jitter()
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match op().await {
            Err(e) if e.is_conflict() && retry(&e) => match delays.next() {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    return Err(OrdersError::Contended {
                        what,
                        attempts,
                        last: e.to_string(),
                    });
                }
            },
            other => return other,
        }
    }
}
