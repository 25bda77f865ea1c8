//! Payload schema migrations inside the manager: migrate on load, write back by CAS, stamp
//! writes, and enforce rollback safety when the manager opens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tierstate_core::{
    Checksum, DeploymentId, Error, Result, Retention, StateData, StateStore, StateWrite,
    canonical_json,
};
use tierstate_migrate::MigrationRegistry;

/// The reserved record that holds the newest payload schema written to a store and the oldest
/// binary schema that can read it. Ids starting with `__tierstate/` are tierstate's: callers
/// cannot build them, and `list`/`scan` leave them out.
pub const PAYLOAD_MARKER: &str = "__tierstate/payload-schema";

/// A manager's payload migration settings.
pub(crate) struct Payload {
    pub(crate) registry: Arc<MigrationRegistry>,
    pub(crate) write_back: bool,
    /// Set when a newer binary has written to this store: saves then check the stored schema.
    pub(crate) guard_newer: AtomicBool,
}

impl Payload {
    pub(crate) fn current(&self) -> u32 {
        self.registry.current_version()
    }

    /// Records this binary's schema in the marker, or refuses to open if a newer binary wrote
    /// data this one must not read.
    pub(crate) async fn check_marker(&self, warm: &Arc<dyn StateStore>) -> Result<()> {
        let id = DeploymentId::from_stored(PAYLOAD_MARKER)?;
        let info = self.registry.rollback_info();
        let mine = json!({"current": info.current, "oldest_reader": info.oldest_reader});
        let mine = mine.as_object().expect("object").clone();
        for _ in 0..8 {
            let write = match warm.get(&id).await? {
                None => StateWrite::create(id.clone(), mine.clone()),
                Some(m) => {
                    let field =
                        |k: &str| m.state.get(k).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
                    let (data_version, oldest_reader) = (field("current"), field("oldest_reader"));
                    if data_version > info.current {
                        if info.current < oldest_reader {
                            return Err(Error::RollbackUnsafe {
                                data_version,
                                oldest_reader,
                                binary_version: info.current,
                            });
                        }
                        self.guard_newer.store(true, Ordering::Release);
                        return Ok(());
                    }
                    if data_version == info.current {
                        return Ok(());
                    }
                    StateWrite::update(id.clone(), m.version, mine.clone())
                }
            };
            match warm
                .put(
                    write,
                    Retention::KeepLast(std::num::NonZeroU32::new(8).expect("8")),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() || matches!(e, Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::invalid(
            "payload marker",
            "kept changing while opening; try again",
        ))
    }

    /// Brings a state read from WARM to the current schema (writing it back by CAS if set up
    /// so). A concurrent writer is never clobbered: on a conflict the state is re-read.
    pub(crate) async fn upgrade(
        &self,
        warm: &Arc<dyn StateStore>,
        retention: Retention,
        mut data: StateData,
    ) -> Result<StateData> {
        let current = self.current();
        for _ in 0..8 {
            if data.schema_version == current {
                return Ok(data);
            }
            if data.schema_version > current {
                return Err(Error::PayloadTooNew {
                    deployment_id: data.deployment_id.clone(),
                    found: data.schema_version,
                    supported: current,
                });
            }
            let (state, version) = self
                .registry
                .migrate(data.state.clone(), data.schema_version)
                .map_err(|e| Error::MigrationFailed {
                    deployment_id: data.deployment_id.clone(),
                    from: data.schema_version,
                    reason: e.to_string(),
                })?;
            if !self.write_back {
                data.checksum = Checksum::of(&canonical_json(&state)?);
                data.state = state;
                data.schema_version = version;
                return Ok(data);
            }
            let write = StateWrite::update(data.deployment_id.clone(), data.version, state)
                .with_schema_version(version);
            match warm.put(write, retention).await {
                Ok(written) => return Ok(written),
                Err(e) if e.is_conflict() => {
                    // Someone wrote meanwhile: migrate what they wrote instead.
                    match warm.get(&data.deployment_id).await? {
                        Some(fresh) => data = fresh,
                        None => {
                            return Err(Error::NotFound {
                                deployment_id: data.deployment_id,
                            });
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::invalid(
            "migration write-back",
            "the state kept changing; try again",
        ))
    }
}
