//! The fault seam's work on redb: damage to stored states, documents and journal entries the
//! way a bad disk would.

use redb::ReadableTable;
use tierstate_core::journal::{EntryDamage, flip};
use tierstate_core::{DeploymentId, DocAddr, StreamAddr};

use crate::records::{Tables, stop};
use crate::writer::Stop;

pub(crate) fn damage_document(t: &mut Tables<'_>, a: &DocAddr) -> Result<bool, Stop> {
    let k = (
        a.deployment_id.as_str(),
        a.collection.as_str(),
        a.key.as_str(),
    );
    let Some((v, _, _)) = t.doc_head()?.get(k).map_err(stop)?.map(|g| g.value()) else {
        return Ok(false);
    };
    let Some((updated, sum, mut body)) = t
        .doc_versions()?
        .get((k.0, k.1, k.2, v))
        .map_err(stop)?
        .map(|g| {
            let (u, s, b) = g.value();
            (u, s.to_vec(), b.to_vec())
        })
    else {
        return Ok(false);
    };
    flip(&mut body);
    t.doc_versions()?
        .insert(
            (k.0, k.1, k.2, v),
            (updated, sum.as_slice(), body.as_slice()),
        )
        .map_err(stop)?;
    Ok(true)
}

pub(crate) fn lose_document_row(t: &mut Tables<'_>, a: &DocAddr) -> Result<bool, Stop> {
    let k = (
        a.deployment_id.as_str(),
        a.collection.as_str(),
        a.key.as_str(),
    );
    let Some((v, _, _)) = t.doc_head()?.get(k).map_err(stop)?.map(|g| g.value()) else {
        return Ok(false);
    };
    Ok(t.doc_versions()?
        .remove((k.0, k.1, k.2, v))
        .map_err(stop)?
        .is_some())
}

pub(crate) fn damage_entry(
    t: &mut Tables<'_>,
    s: &StreamAddr,
    seq: u64,
    damage: EntryDamage,
) -> Result<bool, Stop> {
    let k = (s.deployment_id.as_str(), s.stream.as_str(), seq);
    let Some(v) = t.journal()?.get(k).map_err(stop)?.map(|g| {
        let (e, c, key, sum, prev, hash, body) = g.value();
        (
            e,
            c,
            key.to_vec(),
            sum.to_vec(),
            prev.to_vec(),
            hash.to_vec(),
            body.to_vec(),
        )
    }) else {
        return Ok(false);
    };
    let (e, c, key, mut sum, prev, mut hash, mut body) = v;
    if !damage.apply(&mut body, &mut sum, &mut hash) {
        t.journal()?.remove(k).map_err(stop)?;
        return Ok(true);
    }
    t.journal()?
        .insert(
            k,
            (
                e,
                c,
                key.as_slice(),
                sum.as_slice(),
                prev.as_slice(),
                hash.as_slice(),
                body.as_slice(),
            ),
        )
        .map_err(stop)?;
    Ok(true)
}

/// Flips bits (`mask`) of one byte of a stored version's body followed by its checksum.
pub(crate) fn damage_state(
    t: &mut Tables<'_>,
    id: &DeploymentId,
    version: Option<u64>,
    offset: usize,
    mask: u8,
) -> Result<bool, Stop> {
    let id = id.as_str();
    let Some((current, _, _, _)) = t.head()?.get(id).map_err(stop)?.map(|g| g.value()) else {
        return Ok(false);
    };
    let v = version.unwrap_or(current);
    let Some(row) = t.versions()?.get((id, v)).map_err(stop)?.map(|g| {
        let (s, u, c, b) = g.value();
        (s, u, c.to_vec(), b.to_vec())
    }) else {
        return Ok(false);
    };
    let (schema, updated, mut checksum, mut body) = row;
    let span = body.len() + checksum.len();
    if span == 0 || mask == 0 {
        return Ok(false);
    }
    let at = offset % span;
    if at < body.len() {
        body[at] ^= mask;
    } else {
        checksum[at - body.len()] ^= mask;
    }
    t.versions()?
        .insert(
            (id, v),
            (schema, updated, checksum.as_slice(), body.as_slice()),
        )
        .map_err(stop)?;
    Ok(true)
}
