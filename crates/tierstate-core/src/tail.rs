//! Following a journal as it grows, without polling.

use std::sync::Arc;

use tokio::sync::watch;

use crate::journal::{JournalEntry, JournalQuery};
use crate::{Error, Result, StateStore, StreamAddr};

/// A consumer of one journal from a sequence number on. It waits on the store's
/// [`StateStore::journal_signal`] (appends in this process, and on PostgreSQL other
/// processes' appends through the change feed) and always re-reads from its own position, so
/// a lost notification or a feed gap can delay it but never make it skip an entry.
#[derive(Debug)]
pub struct JournalTail {
    store: Arc<dyn StateStore>,
    stream: StreamAddr,
    next: u64,
    signal: watch::Receiver<u64>,
}

impl JournalTail {
    /// A tail whose first entry will be `from_seq` (1: the start of the stream).
    pub fn new(store: Arc<dyn StateStore>, stream: StreamAddr, from_seq: u64) -> Self {
        let signal = store.journal_signal();
        Self {
            store,
            stream,
            next: from_seq.max(1),
            signal,
        }
    }

    /// The sequence number the next entry will have.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Waits until at least one entry at or after the position exists, then returns up to
    /// `limit` of them in order and moves past them.
    ///
    /// # Errors
    /// `InvalidInput` if the entries at the position were truncated before the tail read
    /// them; as [`StateStore::read_journal`] otherwise.
    pub async fn next_batch(&mut self, limit: usize) -> Result<Vec<JournalEntry>> {
        loop {
            // Mark the signal seen *before* reading: an append after the read wakes us.
            self.signal.borrow_and_update();
            let page = self
                .store
                .read_journal(
                    &self.stream,
                    JournalQuery::from_seq(self.next, limit.max(1)),
                )
                .await?;
            if let Some(first) = page.entries.first() {
                if first.seq != self.next {
                    return Err(Error::invalid(
                        "from_seq",
                        format!(
                            "entries {}..{} of {} were truncated before this tail read them",
                            self.next, first.seq, self.stream
                        ),
                    ));
                }
                self.next = page.entries.last().map_or(self.next, |e| e.seq + 1);
                return Ok(page.entries);
            }
            if self.signal.changed().await.is_err() {
                return Err(crate::group::closed(self.store.backend()));
            }
        }
    }
}
