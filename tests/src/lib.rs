//! Shared pieces of the cross-crate tests: opening a backend by name and reading a counter
//! state, so the crash writer and the harness agree on what they write and check.
#![deny(missing_docs)]
// Test helpers panic on impossible input: that is how a test reports it.
#![allow(clippy::missing_panics_doc)]

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tierstate_core::{DeploymentId, Result, Retention, StateData, StateStore};

/// Retention used by the crash writer; the harness checks history contiguity within it.
pub const CRASH_RETENTION: Retention = Retention::KeepLast(NonZeroU32::new(64).unwrap());

/// A backend the harness can drive. New backends join here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `tierstate-sqlite`, durable defaults.
    Sqlite,
}

impl Backend {
    /// Parses a backend name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
        }
    }

    /// Opens the store at `path` with durable defaults.
    ///
    /// # Errors
    /// Whatever the backend's open returns.
    pub async fn open(self, path: &Path) -> Result<Arc<dyn StateStore>> {
        match self {
            Self::Sqlite => Ok(Arc::new(
                tierstate_sqlite::SqliteStore::open(tierstate_sqlite::SqliteConfig::new(path))
                    .await?,
            )),
        }
    }
}

/// The counter state at `count`.
pub fn counter(count: u64) -> Map<String, Value> {
    json!({"count": count, "pad": "p".repeat(200)})
        .as_object()
        .expect("object")
        .clone()
}

/// The counter in a state written by [`counter`].
pub fn count_of(d: &StateData) -> u64 {
    d.state["count"]
        .as_u64()
        .expect("counter state has a count")
}

/// Deployment `name`.
pub fn dep(name: &str) -> DeploymentId {
    DeploymentId::new(name).expect("valid id")
}
