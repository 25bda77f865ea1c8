//! The PostgreSQL schema's own migrations ([`tierstate_core::SchemaMigrate`]): the embedded
//! sqlx migrations, read without applying anything, and applied under the setup lock.

use tierstate_core::{Result, SchemaMigrate, SchemaStatus, SchemaStep};

use crate::error::BACKEND;
use crate::{PostgresConfig, PostgresStore};

/// The migrations of one database (and schema).
#[derive(Debug, Clone)]
pub struct PostgresSchema {
    config: PostgresConfig,
}

impl PostgresSchema {
    /// The schema `config` connects to.
    pub fn new(config: PostgresConfig) -> Self {
        Self {
            config: config.listen(false),
        }
    }
}

#[async_trait::async_trait]
impl SchemaMigrate for PostgresSchema {
    async fn status(&self) -> Result<SchemaStatus> {
        let pending = PostgresStore::pending_migrations(&self.config).await?;
        let latest = PostgresStore::schema_version();
        let found = latest - pending.len() as i64;
        Ok(SchemaStatus {
            backend: BACKEND,
            found: (found > 0).then(|| u64::try_from(found).unwrap_or(0)),
            latest: u64::try_from(latest).unwrap_or(0),
            pending: pending
                .into_iter()
                .map(|(v, d)| SchemaStep {
                    version: u64::try_from(v).unwrap_or(0),
                    description: d,
                })
                .collect(),
        })
    }

    async fn apply(&self) -> Result<SchemaStatus> {
        // Connecting applies the embedded migrations under the setup lock.
        PostgresStore::connect(self.config.clone())
            .await?
            .close()
            .await;
        self.status().await
    }
}
