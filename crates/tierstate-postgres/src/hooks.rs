//! The fault seam's work on PostgreSQL (feature `test-hooks`): damage to stored states,
//! documents and journal entries the way a bad disk would, and commits that fail inside their
//! own transaction (a check constraint the journal's rows must pass).

use async_trait::async_trait;
use tierstate_core::journal::flip;
use tierstate_core::{Error, Fault, FaultSeam, Result, StreamAddr};

use crate::PostgresStore;
use crate::error::map;

#[async_trait]
impl FaultSeam for PostgresStore {
    async fn inject(&self, fault: Fault) -> Result<bool> {
        let pool = self.pool();
        match fault {
            Fault::StateBytes {
                id,
                version,
                offset,
                mask,
            } => {
                let row: Option<(i64, Vec<u8>, String)> = sqlx::query_as(
                    "SELECT v.version, v.body, v.checksum FROM ts_version v WHERE v.deployment_id = $1 \
                     AND v.version = coalesce($2, (SELECT version FROM ts_head WHERE deployment_id = $1))",
                )
                .bind(id.as_str())
                .bind(version.map(|v| v as i64))
                .fetch_optional(pool)
                .await
                .map_err(map)?;
                let Some((version, mut body, checksum)) = row else {
                    return Ok(false);
                };
                let mut sum = checksum.into_bytes();
                let span = body.len() + sum.len();
                if span == 0 || mask == 0 {
                    return Ok(false);
                }
                let at = offset % span;
                if at < body.len() {
                    body[at] ^= mask;
                } else {
                    sum[at - body.len()] ^= mask;
                }
                sqlx::query(
                    "UPDATE ts_version SET body = $3, checksum = $4 WHERE deployment_id = $1 AND version = $2",
                )
                .bind(id.as_str())
                .bind(version)
                .bind(body)
                .bind(text(&sum))
                .execute(pool)
                .await
                .map_err(map)?;
                Ok(true)
            }
            Fault::DocumentBody(a) => {
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
                .map_err(map)?;
                let Some((v, mut body)) = row else {
                    return Ok(false);
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
                .map_err(map)?;
                Ok(true)
            }
            Fault::DocumentRowGone(a) => {
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
                .map_err(map)?;
                Ok(gone.rows_affected() == 1)
            }
            Fault::Entry {
                stream,
                seq,
                damage,
            } => {
                let row: Option<(Vec<u8>, String, String)> = sqlx::query_as(
                    "SELECT body, checksum, hash FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND seq = $3",
                )
                .bind(stream.deployment_id.as_str())
                .bind(stream.stream.as_str())
                .bind(seq as i64)
                .fetch_optional(pool)
                .await
                .map_err(map)?;
                let Some((mut body, sum, hash)) = row else {
                    return Ok(false);
                };
                let (mut sum, mut hash) = (sum.into_bytes(), hash.into_bytes());
                let sql = if damage.apply(&mut body, &mut sum, &mut hash) {
                    "UPDATE ts_journal SET body = $4, checksum = $5, hash = $6 WHERE deployment_id = $1 AND stream = $2 AND seq = $3"
                } else {
                    "DELETE FROM ts_journal WHERE deployment_id = $1 AND stream = $2 AND seq = $3 AND $4::bytea IS NOT NULL AND $5::text IS NOT NULL AND $6::text IS NOT NULL"
                };
                sqlx::query(sql)
                    .bind(stream.deployment_id.as_str())
                    .bind(stream.stream.as_str())
                    .bind(seq as i64)
                    .bind(body)
                    .bind(text(&sum))
                    .bind(text(&hash))
                    .execute(pool)
                    .await
                    .map_err(map)?;
                Ok(true)
            }
            Fault::FailAppends { stream, on } => {
                sqlx::query(sqlx::AssertSqlSafe(fail_appends_sql(&stream, on)))
                    .execute(pool)
                    .await
                    .map_err(map)?;
                Ok(true)
            }
            other => Err(Error::invalid(
                "fault",
                format!("{other:?} is not injected into PostgreSQL"),
            )),
        }
    }
}

/// A check constraint every new journal row must pass (`NOT VALID`: existing rows are not
/// checked), refusing the rows of `stream`: the statement inserting one fails, and with it the
/// commit's transaction.
fn fail_appends_sql(stream: &StreamAddr, on: bool) -> String {
    let name = format!(
        "ts_fault_{}",
        &tierstate_core::Checksum::of(stream.to_string().as_bytes()).to_hex()[..16]
    );
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    if on {
        format!(
            "ALTER TABLE ts_journal ADD CONSTRAINT {name} CHECK (NOT (deployment_id = {} AND stream = {})) NOT VALID",
            lit(stream.deployment_id.as_str()),
            lit(stream.stream.as_str())
        )
    } else {
        format!("ALTER TABLE ts_journal DROP CONSTRAINT IF EXISTS {name}")
    }
}

/// Damaged hex as PostgreSQL text can hold it: invalid UTF-8 and NUL become U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}")
}
