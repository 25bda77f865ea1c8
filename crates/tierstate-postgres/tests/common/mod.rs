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

/// Damages a document or journal entry directly in SQL (hex text stays ASCII when flipped).
pub async fn damage_record(store: &PostgresStore, what: tierstate_testkit::RecordDamage) -> bool {
    use tierstate_core::journal::flip;
    use tierstate_testkit::RecordDamage;
    let pool = store.pool();
    match what {
        RecordDamage::Document(a) => {
            let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT v.version, v.body FROM ts_doc_head h JOIN ts_doc_version v \
                 ON (v.deployment_id, v.collection, v.key, v.version) = (h.deployment_id, h.collection, h.key, h.version) \
                 WHERE h.deployment_id = $1 AND h.collection = $2 AND h.key = $3",
            )
            .bind(a.deployment_id.as_str())
            .bind(a.collection.as_str())
            .bind(a.key.as_str())
            .fetch_optional(pool)
            .await
            .unwrap();
            let Some((v, mut body)) = row else {
                return false;
            };
            flip(&mut body);
            sqlx::query(
                "UPDATE ts_doc_version SET body = $5 WHERE deployment_id = $1 AND collection = $2 \
                 AND key = $3 AND version = $4",
            )
            .bind(a.deployment_id.as_str())
            .bind(a.collection.as_str())
            .bind(a.key.as_str())
            .bind(v)
            .bind(body)
            .execute(pool)
            .await
            .unwrap();
            true
        }
        RecordDamage::DocumentRowGone(a) => {
            let gone = sqlx::query(
                "DELETE FROM ts_doc_version v USING ts_doc_head h WHERE \
                 (v.deployment_id, v.collection, v.key, v.version) = (h.deployment_id, h.collection, h.key, h.version) \
                 AND h.deployment_id = $1 AND h.collection = $2 AND h.key = $3",
            )
            .bind(a.deployment_id.as_str())
            .bind(a.collection.as_str())
            .bind(a.key.as_str())
            .execute(pool)
            .await
            .unwrap();
            gone.rows_affected() == 1
        }
        RecordDamage::Entry(s, seq, damage) => {
            let row: Option<(Vec<u8>, String, String)> = sqlx::query_as(
                "SELECT body, checksum, hash FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND seq = $3",
            )
            .bind(s.deployment_id.as_str())
            .bind(s.stream.as_str())
            .bind(seq as i64)
            .fetch_optional(pool)
            .await
            .unwrap();
            let Some((mut body, sum, hash)) = row else {
                return false;
            };
            let (mut sum, mut hash) = (sum.into_bytes(), hash.into_bytes());
            let sql = if damage.apply(&mut body, &mut sum, &mut hash) {
                "UPDATE ts_journal SET body = $4, checksum = $5, hash = $6 WHERE deployment_id = $1 AND stream = $2 AND seq = $3"
            } else {
                "DELETE FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND seq = $3 AND $4::bytea IS NOT NULL AND $5::text IS NOT NULL AND $6::text IS NOT NULL"
            };
            sqlx::query(sql)
                .bind(s.deployment_id.as_str())
                .bind(s.stream.as_str())
                .bind(seq as i64)
                .bind(body)
                .bind(text(&sum))
                .bind(text(&hash))
                .execute(pool)
                .await
                .unwrap();
            true
        }
    }
}

/// Damaged hex as PostgreSQL text can hold it: invalid UTF-8 and NUL become U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}")
}
