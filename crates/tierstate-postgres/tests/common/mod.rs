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

/// Flips `mask` bits of byte `offset` of the newest stored record's body followed by its
/// checksum text (wrapping over both), directly in SQL.
pub async fn damage(store: &PostgresStore, id: &str, offset: usize, mask: u8) -> bool {
    let row: Option<(i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT v.version, v.body, v.checksum FROM ts_head h JOIN ts_version v \
         ON v.deployment_id = h.deployment_id AND v.version = h.version WHERE h.deployment_id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .unwrap();
    let Some((version, mut body, checksum)) = row else {
        return false;
    };
    let mut sum = checksum.into_bytes();
    let at = offset % (body.len() + sum.len());
    if at < body.len() {
        body[at] ^= mask;
    } else {
        sum[at - body.len()] ^= mask;
    }
    // A TEXT column must stay valid UTF-8 in PostgreSQL: keep the damaged checksum printable.
    let sum = String::from_utf8_lossy(&sum).into_owned();
    sqlx::query(
        "UPDATE ts_version SET body = $3, checksum = $4 WHERE deployment_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .bind(body)
    .bind(sum)
    .execute(store.pool())
    .await
    .unwrap();
    true
}
