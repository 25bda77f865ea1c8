//! `retry_on_conflict`: re-run an optimistic operation while it loses compare-and-swaps, on
//! core's one retry helper (bounded attempts, jittered backoff), ending in a typed error that
//! carries the attempts.

use std::future::Future;

pub use tierstate_core::RetryPolicy;

use crate::error::{OrdersError, Result};

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
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    tierstate_core::retry_if(policy, |e: &OrdersError| e.is_conflict() && retry(e), op)
        .await
        .map_err(|r| {
            if r.exhausted {
                OrdersError::Contended {
                    what,
                    attempts: r.attempts,
                    last: r.error.to_string(),
                }
            } else {
                r.error
            }
        })
}
