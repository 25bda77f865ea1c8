//! One writer per deployment: a lease document that a strategy process takes before it trades
//! and that each of its ticks renews or checks in the tick's own transaction, so a second
//! process on the same deployment (on any backend, on any machine) is refused at start and a
//! process that lost its lease cannot commit another tick.
//!
//! The lease names its holder (process id, host, boot). It expires `ttl` after its last renewal;
//! a holder on this machine whose process is gone (killed) is taken over at once, so a
//! restarted strategy resumes without waiting. Layout: document `strategy.lease/writer`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tierstate_core::{
    BatchOp, DeploymentId, DocAddr, DocWrite, Error, Name, PutMode, Result, StateStore, Target,
    WriteBatch,
};

/// Collection of the writer lease.
pub const LEASE: &str = "strategy.lease";
const KEY: &str = "writer";

/// The lease as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseDoc {
    holder: String,
    host: String,
    boot: String,
    pid: u32,
    until_us: i64,
}

/// Who this process is.
struct Me {
    host: String,
    boot: String,
    pid: u32,
}

impl Me {
    fn now() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let host = read("/proc/sys/kernel/hostname");
        Self {
            host: if host.is_empty() {
                "an unknown host".into()
            } else {
                host
            },
            boot: read("/proc/sys/kernel/random/boot_id"),
            pid: std::process::id(),
        }
    }

    fn holder(&self) -> String {
        format!("process {} on {}", self.pid, self.host)
    }

    fn is(&self, d: &LeaseDoc) -> bool {
        d.pid == self.pid && d.host == self.host && d.boot == self.boot
    }

    /// True if `d` names a process of this machine (same boot) that no longer runs.
    fn outlived(&self, d: &LeaseDoc) -> bool {
        !self.boot.is_empty()
            && d.boot == self.boot
            && d.host == self.host
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", d.pid)).exists()
    }
}

/// A held writer lease: add it to every commit of the deployment with [`Lease::guard`].
#[derive(Debug, Clone)]
pub struct Lease {
    address: DocAddr,
    version: u64,
    until: DateTime<Utc>,
    ttl: Duration,
    doc: LeaseDocView,
}

#[derive(Debug, Clone)]
struct LeaseDocView {
    holder: String,
    host: String,
    boot: String,
    pid: u32,
}

fn address(deployment: &DeploymentId) -> Result<DocAddr> {
    Ok(DocAddr {
        deployment_id: deployment.clone(),
        collection: Name::collection(LEASE)?,
        key: Name::key(KEY)?,
    })
}

fn decode(d: &tierstate_core::Document) -> Result<LeaseDoc> {
    d.to_typed::<LeaseDoc>()
}

fn held(deployment: &DeploymentId, d: &LeaseDoc) -> Error {
    Error::Held {
        deployment_id: deployment.clone(),
        holder: d.holder.clone(),
        until: DateTime::from_timestamp_micros(d.until_us).unwrap_or_default(),
    }
}

impl Lease {
    /// Takes the writer lease of `deployment` for `ttl` (renewed by the commits that carry
    /// it): free, expired, already this process's, or held by a process of this machine that
    /// is gone.
    ///
    /// # Errors
    /// `Held` naming the holder and its expiry if another live process holds it; `InvalidInput`
    /// for a `ttl` under a second; store errors.
    pub async fn take(
        store: &dyn StateStore,
        deployment: &DeploymentId,
        ttl: Duration,
    ) -> Result<Self> {
        if ttl < Duration::from_secs(1) {
            return Err(Error::invalid("lease ttl", "at least one second"));
        }
        let at = address(deployment)?;
        let me = Me::now();
        let now = Utc::now();
        let mode = match store.get_document(&at).await? {
            None => PutMode::Create,
            Some(d) => {
                let cur = decode(&d)?;
                let expired = cur.until_us < now.timestamp_micros();
                if !(expired || me.is(&cur) || me.outlived(&cur)) {
                    return Err(held(deployment, &cur));
                }
                PutMode::Update {
                    expected: d.version,
                }
            }
        };
        let mut lease = Self {
            address: at,
            version: 0,
            until: now,
            ttl,
            doc: LeaseDocView {
                holder: me.holder(),
                host: me.host,
                boot: me.boot,
                pid: me.pid,
            },
        };
        let (write, until) = lease.write(mode, now)?;
        match store.write(WriteBatch::new().document(write)).await {
            Ok(c) => {
                lease.version = c.documents.first().map_or(1, |d| d.version);
                lease.until = until;
                Ok(lease)
            }
            // Another process took it between the read and the write.
            Err(Error::Conflict { .. } | Error::AlreadyExists { .. }) => {
                match store.get_document(&lease.address).await? {
                    Some(d) => Err(held(deployment, &decode(&d)?)),
                    None => Err(Error::Conflict {
                        deployment_id: deployment.clone(),
                        target: Target::document(&lease.address),
                        expected: 0,
                        actual: None,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn write(&self, mode: PutMode, now: DateTime<Utc>) -> Result<(DocWrite, DateTime<Utc>)> {
        let until = now
            + chrono::Duration::from_std(self.ttl)
                .map_err(|_| Error::invalid("lease ttl", "too long"))?;
        let doc = LeaseDoc {
            holder: self.doc.holder.clone(),
            host: self.doc.host.clone(),
            boot: self.doc.boot.clone(),
            pid: self.doc.pid,
            until_us: until.timestamp_micros(),
        };
        let value = match serde_json::to_value(&doc) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(Error::invalid("lease", "does not encode")),
        };
        Ok((DocWrite::new(self.address.clone(), mode, value), until))
    }

    /// The batch member that makes a commit depend on this lease: a renewal when half of its
    /// time is spent (a write of the lease document), otherwise a check that it is unchanged.
    /// Call [`Lease::committed`] with the returned `Renewal` once the commit succeeded.
    ///
    /// # Errors
    /// `InvalidInput` if the lease cannot be encoded.
    pub fn guard(&self) -> Result<(BatchOp, Renewal)> {
        let now = Utc::now();
        let half = chrono::Duration::from_std(self.ttl / 2).unwrap_or_default();
        if self.until - now > half {
            return Ok((
                BatchOp::Expect {
                    address: self.address.clone(),
                    version: Some(self.version),
                },
                Renewal(None),
            ));
        }
        let (write, until) = self.write(
            PutMode::Update {
                expected: self.version,
            },
            now,
        )?;
        Ok((BatchOp::Document(write), Renewal(Some(until))))
    }

    /// Records a commit that carried [`Lease::guard`]'s member.
    pub fn committed(&mut self, renewal: Renewal) {
        if let Some(until) = renewal.0 {
            self.version += 1;
            self.until = until;
        }
    }

    /// Whether `e` (from a commit that carried the guard) means this lease was lost.
    pub fn lost(&self, e: &Error) -> bool {
        matches!(
            e,
            Error::Conflict { target, deployment_id, .. }
                if *target == Target::document(&self.address)
                    && *deployment_id == self.address.deployment_id
        )
    }

    /// The `Held` error naming whoever holds the lease now.
    ///
    /// # Errors
    /// Store errors reading it.
    pub async fn holder_error(&self, store: &dyn StateStore) -> Result<Error> {
        Ok(match store.get_document(&self.address).await? {
            Some(d) => held(&self.address.deployment_id, &decode(&d)?),
            None => Error::invalid("lease", "it was released by someone else"),
        })
    }

    /// Gives the lease up (a clean stop), so the next process need not wait for it to expire.
    ///
    /// # Errors
    /// Store errors; a `Conflict` if it was already lost.
    pub async fn release(self, store: &dyn StateStore) -> Result<()> {
        store
            .write(WriteBatch::new().delete_document(self.address.clone(), Some(self.version)))
            .await?;
        Ok(())
    }

    /// When the lease expires unless renewed.
    pub fn until(&self) -> DateTime<Utc> {
        self.until
    }
}

/// What a guarded commit renews (see [`Lease::guard`]).
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Renewal(Option<DateTime<Utc>>);
