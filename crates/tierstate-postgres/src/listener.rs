//! The NOTIFY listener: turns commits announced by any process into [`Change`] events.
//!
//! If its connection drops it sends [`Change::Gap`] (changes may have been missed) and keeps
//! reconnecting with backoff; once listening again it sends [`Change::Resumed`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tierstate_core::{Change, DeploymentId};
use tokio::sync::broadcast;

use crate::store::NOTIFY_CHANNEL;

/// Parses `"<version> <deployment id>"`.
fn parse(payload: &str) -> Option<Change> {
    let (version, id) = payload.split_once(' ')?;
    Some(Change::Committed {
        deployment_id: DeploymentId::from_stored(id).ok()?,
        version: version.parse().ok()?,
    })
}

/// Runs the listener until every receiver is gone.
pub(crate) fn spawn(pool: PgPool, tx: broadcast::Sender<Change>, live: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %crate::config::redact(&e.to_string()), "tierstate listener cannot connect");
                    if {
                        live.store(false, Ordering::Release);
                        tx.send(Change::Gap).is_err()
                    } && tx.receiver_count() == 0
                        && pool.is_closed()
                    {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            if listener.listen(NOTIFY_CHANNEL).await.is_err() {
                live.store(false, Ordering::Release);
                let _ = tx.send(Change::Gap);
                tokio::time::sleep(backoff).await;
                continue;
            }
            backoff = Duration::from_millis(50);
            live.store(true, Ordering::Release);
            let _ = tx.send(Change::Resumed);
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Some(change) = parse(n.payload()) {
                            let _ = tx.send(change);
                        }
                    }
                    // The connection was lost: notifications may have been missed.
                    Ok(None) | Err(_) => {
                        live.store(false, Ordering::Release);
                        let _ = tx.send(Change::Gap);
                        break;
                    }
                }
            }
            if pool.is_closed() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(
            parse("12 btc perp"),
            Some(Change::Committed {
                deployment_id: DeploymentId::new("btc perp").unwrap(),
                version: 12
            })
        );
        assert_eq!(parse("x y"), None);
        assert_eq!(parse("nospace"), None);
    }
}
