//! The fault seam's work on SQLite: damage to stored states, documents and journal entries the
//! way a bad disk would, and commits that fail inside their own transaction.

use rusqlite::{Connection, OptionalExtension, params};
use tierstate_core::journal::{EntryDamage, flip};
use tierstate_core::{DeploymentId, DocAddr, Result, StreamAddr};

use crate::error::map;

pub(crate) fn damage_document(conn: &Connection, a: &DocAddr) -> Result<bool> {
    let p = params![
        a.deployment_id.as_str(),
        a.collection.as_str(),
        a.key.as_str()
    ];
    let found: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT v.rowid, v.body FROM ts_doc_version v JOIN ts_doc_head h \
             ON v.deployment_id = h.deployment_id AND v.collection = h.collection \
             AND v.key = h.key AND v.version = h.version \
             WHERE h.deployment_id = ?1 AND h.collection = ?2 AND h.key = ?3",
            p,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(map)?;
    let Some((rowid, mut body)) = found else {
        return Ok(false);
    };
    flip(&mut body);
    conn.execute(
        "UPDATE ts_doc_version SET body = ?2 WHERE rowid = ?1",
        params![rowid, body],
    )
    .map_err(map)?;
    Ok(true)
}

pub(crate) fn lose_document_row(conn: &Connection, a: &DocAddr) -> Result<bool> {
    let n = conn
        .execute(
            "DELETE FROM ts_doc_version WHERE rowid = (SELECT v.rowid FROM ts_doc_version v \
             JOIN ts_doc_head h ON v.deployment_id = h.deployment_id \
             AND v.collection = h.collection AND v.key = h.key AND v.version = h.version \
             WHERE h.deployment_id = ?1 AND h.collection = ?2 AND h.key = ?3)",
            params![
                a.deployment_id.as_str(),
                a.collection.as_str(),
                a.key.as_str()
            ],
        )
        .map_err(map)?;
    Ok(n == 1)
}

pub(crate) fn damage_entry(
    conn: &Connection,
    s: &StreamAddr,
    seq: u64,
    damage: EntryDamage,
) -> Result<bool> {
    let key = params![s.deployment_id.as_str(), s.stream.as_str(), seq as i64];
    // (rowid, body, checksum, hash)
    type Found = (i64, Vec<u8>, Vec<u8>, Vec<u8>);
    let found: Option<Found> = conn
        .query_row(
            "SELECT rowid, body, CAST(checksum AS BLOB), CAST(hash AS BLOB) FROM ts_journal \
             WHERE deployment_id = ?1 AND stream = ?2 AND seq = ?3",
            key,
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(map)?;
    let Some((rowid, mut body, mut sum, mut hash)) = found else {
        return Ok(false);
    };
    if !damage.apply(&mut body, &mut sum, &mut hash) {
        conn.execute("DELETE FROM ts_journal WHERE rowid = ?1", [rowid])
            .map_err(map)?;
        return Ok(true);
    }
    conn.execute(
        "UPDATE ts_journal SET body = ?2, checksum = CAST(?3 AS TEXT), hash = CAST(?4 AS TEXT) \
         WHERE rowid = ?1",
        params![rowid, body, sum, hash],
    )
    .map_err(map)?;
    Ok(true)
}

/// Flips bits (`mask`) of one byte of a stored version's body followed by its checksum.
pub(crate) fn damage_state(
    conn: &Connection,
    id: &DeploymentId,
    version: Option<u64>,
    offset: usize,
    mask: u8,
) -> Result<bool> {
    let found: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT rowid, body, CAST(checksum AS BLOB) FROM ts_version WHERE deployment_id = ?1 \
             AND version = coalesce(?2, (SELECT version FROM ts_head WHERE deployment_id = ?1))",
            params![id.as_str(), version.map(|v| v as i64)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(map)?;
    let Some((rowid, mut body, mut checksum)) = found else {
        return Ok(false);
    };
    let span = body.len() + checksum.len();
    if span == 0 || mask == 0 {
        return Ok(false);
    }
    let at = offset % span;
    if at < body.len() {
        body[at] ^= mask;
        conn.execute(
            "UPDATE ts_version SET body = ?2 WHERE rowid = ?1",
            params![rowid, body],
        )
    } else {
        checksum[at - body.len()] ^= mask;
        // Stored back as TEXT bytes, valid UTF-8 or not, as a damaged disk page would be.
        conn.execute(
            "UPDATE ts_version SET checksum = CAST(?2 AS TEXT) WHERE rowid = ?1",
            params![rowid, checksum],
        )
    }
    .map_err(map)?;
    Ok(true)
}

/// Makes every insert into `stream` abort its statement (and so its commit) while `on`: a
/// temporary trigger on the writer's own connection, gone with it.
pub(crate) fn fail_appends(conn: &Connection, stream: &StreamAddr, on: bool) -> Result<bool> {
    let name = format!(
        "ts_fault_{}",
        &tierstate_core::Checksum::of(stream.to_string().as_bytes()).to_hex()[..16]
    );
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let sql = if on {
        format!(
            "CREATE TEMP TRIGGER IF NOT EXISTS {name} BEFORE INSERT ON main.ts_journal \
             WHEN NEW.deployment_id = {} AND NEW.stream = {} \
             BEGIN SELECT RAISE(ABORT, {}); END",
            lit(stream.deployment_id.as_str()),
            lit(stream.stream.as_str()),
            lit(&tierstate_core::fault::injected(stream).to_string()),
        )
    } else {
        format!("DROP TRIGGER IF EXISTS temp.{name}")
    };
    conn.execute_batch(&sql).map_err(map)?;
    Ok(true)
}
