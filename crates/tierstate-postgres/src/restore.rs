//! A copy's rows, stored as given: versions with their commit times and checksums, journal
//! entries with their chain hashes, and each journal's head with its truncation anchor. One
//! transaction of array-bound inserts per plan; heads only ever move forward.

use sqlx::PgConnection;
use tierstate_core::plan::Plan;

/// Stores every row of `plan` in the open transaction `c`.
pub(crate) async fn store(c: &mut PgConnection, plan: &Plan) -> Result<(), sqlx::Error> {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    if !plan.states.is_empty() {
        let s = &plan.states;
        sqlx::query(
            "INSERT INTO ts_version (deployment_id, version, schema_version, checksum, \
             updated_at, body) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::int[], \
             $4::text[], $5::bigint[], $6::bytea[])",
        )
        .bind(s.iter().map(|w| w.address.as_str()).collect::<Vec<_>>())
        .bind(s.iter().map(|w| i(w.version)).collect::<Vec<_>>())
        .bind(
            s.iter()
                .map(|w| i32::try_from(w.schema_version).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(s.iter().map(|w| w.checksum.as_str()).collect::<Vec<_>>())
        .bind(s.iter().map(|w| w.updated_us).collect::<Vec<_>>())
        .bind(s.iter().map(|w| w.body.as_slice()).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO ts_head AS h (deployment_id, version, created_at) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) \
             ON CONFLICT (deployment_id) DO UPDATE SET version = excluded.version \
             WHERE h.version < excluded.version",
        )
        .bind(s.iter().map(|w| w.address.as_str()).collect::<Vec<_>>())
        .bind(s.iter().map(|w| i(w.version)).collect::<Vec<_>>())
        .bind(s.iter().map(|w| w.created_us).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?;
    }
    if !plan.documents.is_empty() {
        let d = &plan.documents;
        let (ids, colls, keys) = (
            d.iter()
                .map(|w| w.address.deployment_id.as_str())
                .collect::<Vec<_>>(),
            d.iter()
                .map(|w| w.address.collection.as_str())
                .collect::<Vec<_>>(),
            d.iter().map(|w| w.address.key.as_str()).collect::<Vec<_>>(),
        );
        sqlx::query(
            "INSERT INTO ts_doc_version (deployment_id, collection, key, version, checksum, \
             updated_at, body) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], \
             $4::bigint[], $5::text[], $6::bigint[], $7::bytea[])",
        )
        .bind(&ids)
        .bind(&colls)
        .bind(&keys)
        .bind(d.iter().map(|w| i(w.version)).collect::<Vec<_>>())
        .bind(d.iter().map(|w| w.checksum.as_str()).collect::<Vec<_>>())
        .bind(d.iter().map(|w| w.updated_us).collect::<Vec<_>>())
        .bind(d.iter().map(|w| w.body.as_slice()).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO ts_doc_head AS h (deployment_id, collection, key, version, created_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], \
             $5::bigint[]) ON CONFLICT (deployment_id, collection, key) DO UPDATE \
             SET version = excluded.version WHERE h.version < excluded.version",
        )
        .bind(&ids)
        .bind(&colls)
        .bind(&keys)
        .bind(d.iter().map(|w| i(w.version)).collect::<Vec<_>>())
        .bind(d.iter().map(|w| w.created_us).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?;
    }
    if !plan.entries.is_empty() {
        let e = &plan.entries;
        sqlx::query(
            "INSERT INTO ts_journal (deployment_id, stream, seq, event_at, commit_at, idem_key, \
             checksum, prev_hash, hash, body) SELECT * FROM UNNEST($1::text[], $2::text[], \
             $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], \
             $9::text[], $10::bytea[])",
        )
        .bind(
            e.iter()
                .map(|x| x.stream.deployment_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            e.iter()
                .map(|x| x.stream.stream.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(e.iter().map(|x| i(x.seq)).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.event_us).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.commit_us).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.key.as_deref()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.checksum.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.prev_hash.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.hash.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|x| x.body.as_slice()).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?;
    }
    if !plan.heads.is_empty() {
        let h = &plan.heads;
        sqlx::query(
            "INSERT INTO ts_journal_head AS t (deployment_id, stream, last_seq, last_hash, \
             last_commit_at, base_seq, base_hash) SELECT * FROM UNNEST($1::text[], $2::text[], \
             $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[]) \
             ON CONFLICT (deployment_id, stream) DO UPDATE SET last_seq = excluded.last_seq, \
             last_hash = excluded.last_hash, last_commit_at = excluded.last_commit_at \
             WHERE t.last_seq < excluded.last_seq",
        )
        .bind(
            h.iter()
                .map(|(s, _, _)| s.deployment_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            h.iter()
                .map(|(s, _, _)| s.stream.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(h.iter().map(|(_, j, _)| i(j.last_seq)).collect::<Vec<_>>())
        .bind(
            h.iter()
                .map(|(_, j, _)| j.last_hash.to_hex())
                .collect::<Vec<_>>(),
        )
        .bind(
            h.iter()
                .map(|(_, j, _)| j.last_commit_us)
                .collect::<Vec<_>>(),
        )
        .bind(h.iter().map(|(_, j, _)| i(j.base_seq)).collect::<Vec<_>>())
        .bind(
            h.iter()
                .map(|(_, j, _)| j.base_hash.to_hex())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}
