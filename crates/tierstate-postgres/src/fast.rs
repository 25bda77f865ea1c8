//! One connection kept beside the pool for writes that find it free: a pooled connection's
//! return is a task spawned on every drop (sqlx), a wake-up on another CPU per statement.
//! Writes that find it busy use the pool as before.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::{Connection, Error};
use tokio::sync::{Mutex, MutexGuard};

/// The kept connection and when it was last lent.
type Slot = Option<(PgConnection, Instant)>;

/// The kept connection, taken from (and counted beside) the pool on first use.
pub(crate) struct Fast {
    slot: Mutex<Slot>,
    pool: PgPool,
    ping_after: Duration,
}

/// A connection for one write: the kept one if it was free, else a pooled one.
pub(crate) enum Conn<'a> {
    Kept(MutexGuard<'a, Slot>),
    Pooled(PoolConnection<Postgres>),
}

impl Fast {
    pub(crate) fn new(pool: PgPool, ping_after: Duration) -> Self {
        Self {
            slot: Mutex::new(None),
            pool,
            ping_after,
        }
    }

    /// The kept connection if no other write holds it (opened, or pinged after
    /// `ping_after` idle, as the pool would), else one from the pool.
    pub(crate) async fn acquire(&self) -> Result<Conn<'_>, Error> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        let Ok(mut slot) = self.slot.try_lock() else {
            return self.pool.acquire().await.map(Conn::Pooled);
        };
        if let Some((c, used)) = slot.as_mut()
            && used.elapsed() >= self.ping_after
            && c.ping().await.is_err()
        {
            *slot = None;
        }
        match slot.as_mut() {
            Some((_, used)) => *used = Instant::now(),
            None => {
                let c = self.pool.acquire().await?.detach();
                *slot = Some((c, Instant::now()));
            }
        }
        Ok(Conn::Kept(slot))
    }

    /// Closes the kept connection once its write (if any) is done; the pool is closed by the
    /// caller, so none is taken again.
    pub(crate) async fn close(&self) {
        if let Some((c, _)) = self.slot.lock().await.take() {
            let _ = c.close().await;
        }
    }
}

impl Conn<'_> {
    /// Forgets the kept connection after `e` if it may have broken it (I/O, protocol); a
    /// database's own error (a constraint, the statement's guard) leaves it usable.
    pub(crate) fn after_error(self, e: &Error) {
        if let Conn::Kept(mut slot) = self
            && !matches!(e, Error::Database(_))
        {
            *slot = None;
        }
    }
}

impl Deref for Conn<'_> {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Kept(slot) => match slot.as_ref() {
                Some((c, _)) => c,
                None => unreachable!("a kept connection is present while it is lent"),
            },
            Conn::Pooled(c) => c,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Kept(slot) => match slot.as_mut() {
                Some((c, _)) => c,
                None => unreachable!("a kept connection is present while it is lent"),
            },
            Conn::Pooled(c) => c,
        }
    }
}
