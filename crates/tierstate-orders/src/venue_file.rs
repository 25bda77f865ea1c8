//! How a durable simulated venue keeps its state: a snapshot file (written to a temporary
//! name, synced, renamed) and beside it an append-only log (`<file>.log`) of what each change
//! did, one synced JSON line per change. A change costs one small append, whatever the
//! venue's history; once the log holds [`COMPACT_EVERY`] changes and as many as the venue
//! holds orders, the snapshot is rewritten and the log emptied (so a rewrite, which grows with
//! history, is paid once per that many changes). Opening reads the snapshot, then replays the log; a last line cut short by a
//! crash was never answered and is dropped.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::order::{Order, OrderSpec};

/// An order on the venue: its state, its time priority, and whether a market maker's.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Resting {
    pub(crate) order: Order,
    pub(crate) seq: u64,
    pub(crate) maker: bool,
}

/// The fewest changes logged between two snapshots.
pub(crate) const COMPACT_EVERY: u64 = 1000;

/// The venue's whole state, as the snapshot file holds it.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Saved {
    pub(crate) orders: Vec<(String, Resting)>,
    pub(crate) accepted: HashMap<String, u32>,
    pub(crate) in_flight: Vec<(String, OrderSpec, u32)>,
    pub(crate) seq: u64,
    pub(crate) fills: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
}

/// What one change did: every order it touched as it now stands (`None`: gone), every client
/// id whose accept count it changed, and the venue's counters after it. Applying it twice is
/// applying it once, so a log replayed over a snapshot that already holds it is harmless.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Delta {
    pub(crate) orders: Vec<(String, Option<Resting>)>,
    pub(crate) accepted: Vec<(String, u32)>,
    pub(crate) in_flight: Vec<(String, OrderSpec, u32)>,
    pub(crate) seq: u64,
    pub(crate) fills: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) owner: Option<String>,
}

/// The log beside `file`.
pub(crate) fn log_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".log");
    PathBuf::from(p)
}

fn invalid(file: &Path, why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is not a saved venue: {why}", file.display()),
    )
}

/// Reads the snapshot and replays the log over it; cuts a torn last line off the log.
/// Returns the state and how many changes the log holds.
pub(crate) fn load(file: &Path) -> std::io::Result<(Saved, u64)> {
    let mut saved = if file.exists() {
        serde_json::from_slice::<Saved>(&std::fs::read(file)?).map_err(|e| invalid(file, e))?
    } else {
        Saved::default()
    };
    let log = log_path(file);
    if !log.exists() {
        return Ok((saved, 0));
    }
    let bytes = std::fs::read(&log)?;
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut orders: HashMap<String, Resting> =
        std::mem::take(&mut saved.orders).into_iter().collect();
    let mut n = 0;
    for line in bytes[..whole]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
    {
        let d: Delta = serde_json::from_slice(line).map_err(|e| invalid(&log, e))?;
        for (id, r) in d.orders {
            match r {
                Some(r) => orders.insert(id, r),
                None => orders.remove(&id),
            };
        }
        saved.accepted.extend(d.accepted);
        saved.in_flight = d.in_flight;
        saved.seq = d.seq;
        saved.fills = d.fills;
        saved.owner = d.owner;
        n += 1;
    }
    if whole < bytes.len() {
        // Cut short by a crash before it was synced: that change was never answered.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)?
            .set_len(whole as u64)?;
    }
    saved.orders = orders.into_iter().collect();
    Ok((saved, n))
}

/// Writes the snapshot (temporary name, sync, rename), then empties the log it replaces.
/// `Ok` once the snapshot is in place: a log that could not be emptied is replayed over it
/// harmlessly.
pub(crate) fn write_snapshot(file: &Path, saved: &Saved) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(saved).map_err(std::io::Error::other)?)?;
    f.sync_data()?;
    std::fs::rename(&tmp, file)?;
    if let Ok(log) = std::fs::OpenOptions::new().write(true).open(log_path(file)) {
        let _ = log.set_len(0).and_then(|()| log.sync_data());
    }
    Ok(())
}

/// Appends one change to the log and syncs it. On failure the log is cut back to where it
/// was; `Err(Some(..))` if even that failed (the log may end in a partial line).
pub(crate) fn append(file: &Path, delta: &Delta) -> Result<(), (std::io::Error, Option<String>)> {
    let mut line = serde_json::to_vec(delta).map_err(|e| (std::io::Error::other(e), None))?;
    line.push(b'\n');
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path(file))
        .map_err(|e| (e, None))?;
    let before = log.metadata().map_err(|e| (e, None))?.len();
    match log.write_all(&line).and_then(|()| log.sync_data()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let cut = log.set_len(before).and_then(|()| log.sync_data());
            Err((e, cut.err().map(|c| c.to_string())))
        }
    }
}
