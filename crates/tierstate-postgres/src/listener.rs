//! The NOTIFY listener: turns commits announced by any process into [`Change`] events.
//!
//! If its connection drops it sends [`Change::Gap`] (changes may have been missed) and keeps
//! reconnecting with backoff; once listening again it sends [`Change::Resumed`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tierstate_core::{Change, ChangeFeed, DeploymentId, Signal};
use tokio::sync::{broadcast, oneshot};

/// The feed's sender and its liveness. Changing liveness (and announcing it) and subscribing
/// (and reading it) each happen under one lock, so a subscriber sees either the old state and
/// then the event, or the new state and not the event — never the new state *and* the event
/// (a `Resumed` that would then clear a freshly warmed HOT), nor neither.
#[derive(Debug)]
pub(crate) struct Feed {
    tx: broadcast::Sender<Change>,
    live: Mutex<bool>,
    /// Journal tails' wake-up: bumped on every notification of this schema and every gap or
    /// resumption (a tail then re-reads from its own position).
    signal: Arc<Signal>,
    /// Bumped each time the listener loses its connection: the server may have ended every
    /// other connection too (a restart, a failover), so the writers' kept ones are suspect.
    breaks: Arc<AtomicU64>,
}

impl Feed {
    pub(crate) fn new(signal: Arc<Signal>, breaks: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            tx: broadcast::channel(4096).0,
            live: Mutex::new(false),
            signal,
            breaks,
        })
    }

    /// A subscription with the liveness that holds from its first event on.
    pub(crate) fn subscribe(&self) -> ChangeFeed {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        ChangeFeed {
            events: self.tx.subscribe(),
            live: *live,
        }
    }

    /// Sets the liveness and announces it (`Resumed` or `Gap`) atomically.
    fn set_live(&self, now: bool) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if *live && !now {
            self.breaks.fetch_add(1, Ordering::AcqRel);
        }
        *live = now;
        self.signal.bump();
        let _ = self
            .tx
            .send(if now { Change::Resumed } else { Change::Gap });
    }

    fn send(&self, change: Change) {
        let _ = self.tx.send(change);
    }
}

use crate::notify::NOTIFY_CHANNEL;

/// Parses `"<schema> <version> <deployment id>"`; `None` for another schema's commits.
fn parse(payload: &str, schema: &str) -> Option<Change> {
    let (from, rest) = payload.split_once(' ')?;
    if from != schema {
        return None;
    }
    let (version, id) = rest.split_once(' ')?;
    Some(Change::Committed {
        deployment_id: DeploymentId::from_stored(id).ok()?,
        version: version.parse().ok()?,
    })
}

/// Held by every clone of a store: when the last one is dropped the listener stops, so a
/// store dropped without `close` does not leave a listening connection behind (one that every
/// NOTIFY in the database would wake) nor keep its pool alive.
#[derive(Debug)]
pub(crate) struct Stop {
    _dropped_with_the_store: oneshot::Sender<()>,
}

/// Runs the listener until the pool is closed or the returned [`Stop`] is dropped.
pub(crate) fn spawn(pool: PgPool, feed: Arc<Feed>, schema: String) -> Stop {
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            // Sender dropped (the store is gone) or, never, sent.
            _ = &mut stopped => {}
            () = listen(&pool, &feed, &schema) => {}
        }
    });
    Stop {
        _dropped_with_the_store: stop,
    }
}

/// Listens, reconnecting with backoff, until the pool is closed.
async fn listen(pool: &PgPool, feed: &Feed, schema: &str) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %crate::config::redact(&e.to_string()), "tierstate listener cannot connect");
                feed.set_live(false);
                if feed.tx.receiver_count() == 0 && pool.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if listener.listen(NOTIFY_CHANNEL).await.is_err() {
            feed.set_live(false);
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(50);
        feed.set_live(true);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if n.payload()
                        .split_once(' ')
                        .is_some_and(|(s, _)| s == schema)
                    {
                        feed.signal.bump();
                    }
                    if let Some(change) = parse(n.payload(), schema) {
                        feed.send(change);
                    }
                }
                // The connection was lost: notifications may have been missed.
                Ok(None) | Err(_) => {
                    feed.set_live(false);
                    break;
                }
            }
        }
        if pool.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(
            parse("prod 12 btc perp", "prod"),
            Some(Change::Committed {
                deployment_id: DeploymentId::new("btc perp").unwrap(),
                version: 12
            })
        );
        assert_eq!(parse("staging 12 btc perp", "prod"), None, "another schema");
        assert_eq!(parse("prod x y", "prod"), None);
        assert_eq!(parse("prod nospace", "prod"), None);
    }
}
