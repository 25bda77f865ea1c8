//! Where the PostgreSQL tests find their server, and a fresh schema per test.
// Shared by several test binaries; each uses only some of these helpers.
#![allow(dead_code)]

use tierstate_postgres::{PostgresConfig, PostgresStore};

pub use tierstate_testkit::{fresh_schema, pg_url as url};

/// A store on a fresh schema.
pub async fn fresh_store(url: &str) -> PostgresStore {
    let cfg = PostgresConfig::new(url).schema(&fresh_schema("t")).unwrap();
    PostgresStore::connect(cfg).await.unwrap()
}
