//! The change feed: what other processes committed, so a HOT tier can evict what went stale.

use crate::DeploymentId;

/// One event of a store's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `deployment_id` was committed at `version` (0: deleted) by some process.
    Committed {
        /// The deployment.
        deployment_id: DeploymentId,
        /// The committed version; 0 for a delete.
        version: u64,
    },
    /// The feed lost its connection and may have missed changes: treat every cached entry as
    /// possibly stale until [`Change::Resumed`].
    Gap,
    /// The feed is live again (changes from here on are delivered).
    Resumed,
}

/// A subscription to a store's change feed.
///
/// `live` is the feed's state *after* `events` subscribed, so no transition is lost: a `Gap` or
/// `Resumed` that happens later arrives in `events`.
#[derive(Debug)]
pub struct ChangeFeed {
    /// Events from the moment of subscription on.
    pub events: tokio::sync::broadcast::Receiver<Change>,
    /// Whether the feed was delivering changes when the subscription was taken.
    pub live: bool,
}
