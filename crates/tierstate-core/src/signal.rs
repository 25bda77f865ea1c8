//! A counter that wakes journal tails when something may have been appended.

use tokio::sync::watch;

/// Bumped by a store after each commit that appends or truncates, and on every change-feed
/// event; tails subscribe and re-read from their own position, so a missed wake-up can delay
/// a tail but never make it skip.
#[derive(Debug)]
pub struct Signal(watch::Sender<u64>);

impl Default for Signal {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl Signal {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every subscriber.
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every later bump.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
