//! The one retry helper of every domain: after a lost compare-and-swap, wait a jittered,
//! growing delay (backon's exponential backoff) before planning again, a bounded number of
//! times, so writers contending for one record spread out instead of colliding in lockstep.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Retries waited for in this process, by every [`Backoff`] (what an operator's dashboard
/// shows as contention).
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Retries waited for in this process since it started.
pub fn retries_total() -> u64 {
    RETRIES.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a contended operation retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// First delay.
    pub min_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 25 attempts, delays from 200 µs growing to 50 ms, jittered.
    fn default() -> Self {
        Self {
            attempts: 25,
            min_delay: Duration::from_micros(200),
            max_delay: Duration::from_millis(50),
        }
    }
}

/// The delays of one contended call: [`Backoff::wait`] after each lost race.
#[derive(Debug)]
pub struct Backoff {
    delays: backon::ExponentialBackoff,
    attempts: u32,
}

impl Backoff {
    /// The delays `policy` allows, the first attempt counted.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            delays: ExponentialBuilder::default()
                .with_min_delay(policy.min_delay)
                .with_max_delay(policy.max_delay)
                .with_max_times(policy.attempts.saturating_sub(1) as usize)
                .with_jitter()
                .build(),
            attempts: 1,
        }
    }

    /// Waits before the next attempt; `false` (without waiting) once the attempts are spent.
    pub async fn wait(&mut self) -> bool {
        match self.delays.next() {
            Some(d) => {
                self.attempts += 1;
                RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// How a retried operation ended without succeeding.
#[derive(Debug)]
pub struct Retried<E> {
    /// The last error.
    pub error: E,
    /// Attempts made.
    pub attempts: u32,
    /// True if it still was retryable when the attempts ran out (contention); false if it
    /// failed in a way no retry cures.
    pub exhausted: bool,
}

/// Runs `op` until it succeeds, fails with an error `retry` does not pick, or has used the
/// policy's attempts; between attempts it waits (see [`Backoff`]). `op` must re-read what it
/// depends on.
///
/// # Errors
/// [`Retried`] with the last error and the attempts made.
pub async fn retry_if<T, E, F, Fut>(
    policy: RetryPolicy,
    retry: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, Retried<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retry(&e) => {
                if !backoff.wait().await {
                    return Err(Retried {
                        error: e,
                        attempts: backoff.attempts(),
                        exhausted: true,
                    });
                }
            }
            Err(e) => {
                return Err(Retried {
                    error: e,
                    attempts: backoff.attempts(),
                    exhausted: false,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_what_it_is_told_and_counts_attempts() {
        let policy = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let mut n = 0;
        let r: Result<(), _> = retry_if(
            policy,
            |e: &&str| *e == "conflict",
            || {
                n += 1;
                async { Err("conflict") }
            },
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!((e.attempts, e.exhausted, n), (3, true, 3));
        let mut m = 0;
        let r: Result<(), _> = retry_if(
            policy,
            |e: &&str| *e == "conflict",
            || {
                m += 1;
                async { Err("broken") }
            },
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!((e.attempts, e.exhausted, m), (1, false, 1));
        let mut k = 0;
        let r = retry_if(
            policy,
            |_: &&str| true,
            || {
                k += 1;
                let v = k;
                async move { if v < 2 { Err("conflict") } else { Ok(v) } }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 2);
    }
}
