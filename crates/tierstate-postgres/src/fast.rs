//! One connection kept beside the pool for writes that find it free: a pooled connection's
//! return is a task spawned on every drop (sqlx), a wake-up on another CPU per statement.
//! Writes that find it busy use the pool as before.
//!
//! A write on this path is one autocommit statement, so an error in its answer leaves the
//! outcome unknown. A connection the server had already ended (a restart) must therefore be
//! found out before the statement is sent: after the listener saw its own connection end,
//! the next write pings the connection it is given first, and a failed ping is "not applied".

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The listener's count of lost connections (0 forever without a listener).
    breaks: Arc<AtomicU64>,
    /// The count when a write last found its connection alive.
    checked: AtomicU64,
}

/// A connection for one write: the kept one if it was free, else a pooled one.
pub(crate) enum Conn<'a> {
    Kept(MutexGuard<'a, Slot>),
    Pooled(PoolConnection<Postgres>),
}

impl Fast {
    pub(crate) fn new(pool: PgPool, ping_after: Duration, breaks: Arc<AtomicU64>) -> Self {
        Self {
            slot: Mutex::new(None),
            pool,
            ping_after,
            breaks,
            checked: AtomicU64::new(0),
        }
    }

    /// The kept connection if no other write holds it (opened, or pinged after
    /// `ping_after` idle, as the pool would), else one from the pool. After the listener lost
    /// its connection, the first write pings whichever connection it gets; an error here means
    /// nothing was sent.
    pub(crate) async fn acquire(&self) -> Result<Conn<'_>, Error> {
        if self.pool.is_closed() {
            return Err(Error::PoolClosed);
        }
        let breaks = self.breaks.load(Ordering::Acquire);
        let suspect = breaks != self.checked.load(Ordering::Acquire);
        let Ok(mut slot) = self.slot.try_lock() else {
            return self.pooled().await;
        };
        if let Some((c, used)) = slot.as_mut()
            && (suspect || used.elapsed() >= self.ping_after)
            && c.ping().await.is_err()
        {
            *slot = None;
        }
        match slot.as_mut() {
            Some((_, used)) => *used = Instant::now(),
            None => {
                let mut c = self.pool.acquire().await?.detach();
                if suspect {
                    // The pool pings only long-idle connections: this one may be ended too.
                    c.ping().await?;
                }
                *slot = Some((c, Instant::now()));
            }
        }
        self.checked.fetch_max(breaks, Ordering::AcqRel);
        Ok(Conn::Kept(slot))
    }

    /// A connection from the pool, pinged first while the listener's last lost connection is
    /// not yet known to have spared this process's (an error here means nothing was sent).
    pub(crate) async fn pooled(&self) -> Result<Conn<'_>, Error> {
        let mut c = self.pool.acquire().await?;
        if self.breaks.load(Ordering::Acquire) != self.checked.load(Ordering::Acquire) {
            c.ping().await?;
        }
        Ok(Conn::Pooled(c))
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
    /// Forgets the kept connection after `e` if it may have broken it (I/O, protocol, or a
    /// FATAL from the server, which then closes the connection); a database's own error (a
    /// constraint, the statement's guard) leaves it usable.
    pub(crate) fn after_error(self, e: &Error) {
        if let Conn::Kept(mut slot) = self
            && !usable_after(e)
        {
            *slot = None;
        }
    }
}

/// True if the connection that returned `e` can take the next statement.
fn usable_after(e: &Error) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    let Error::Database(db) = e else {
        return false;
    };
    db.try_downcast_ref::<PgDatabaseError>()
        .is_none_or(|p| !matches!(p.severity(), PgSeverity::Fatal | PgSeverity::Panic))
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
