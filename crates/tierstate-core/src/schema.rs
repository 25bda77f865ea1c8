//! A backend's own schema (its tables and indexes, not the states' payloads): where a database
//! stands, the steps this build would apply, and applying them. One trait every backend
//! implements, so a tool upgrades any database without naming a backend.

use async_trait::async_trait;

use crate::Result;

/// One step of a backend's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStep {
    /// The schema version it produces.
    pub version: u64,
    /// What it does (its first SQL line, or a sentence).
    pub description: String,
}

/// Where a database's own schema stands against this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Which backend.
    pub backend: &'static str,
    /// The version recorded in the database; `None` when it holds no tierstate schema yet.
    pub found: Option<u64>,
    /// The newest version this build knows.
    pub latest: u64,
    /// The steps opening it would apply, oldest first (empty: up to date).
    pub pending: Vec<SchemaStep>,
}

/// A database's own schema migrations. `status` reads without changing anything; `apply`
/// brings the database to [`SchemaStatus::latest`], all or nothing where the backend can (a
/// database written by a newer build is refused by both).
#[async_trait]
pub trait SchemaMigrate: Send + Sync + std::fmt::Debug {
    /// The recorded version and the pending steps; changes nothing.
    ///
    /// # Errors
    /// `Backend` if the database cannot be read; `SchemaTooNew` for a newer one.
    async fn status(&self) -> Result<SchemaStatus>;

    /// Applies the pending steps and returns the status after.
    ///
    /// # Errors
    /// As [`SchemaMigrate::status`]; a failed step leaves the database as it was.
    async fn apply(&self) -> Result<SchemaStatus>;
}
