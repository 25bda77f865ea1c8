//! `tail ID STREAM [--follow] [--from-seq N]`: a journal's newest entries (or every entry from
//! #N), then (following) each entry as it commits — woken by the store's journal signal and PostgreSQL's change feed; an embedded
//! file written by another process is looked at again every half second.

use std::io::Write;
use std::sync::Arc;

use serde_json::json;
use tierstate::{JournalEntry, JournalQuery, JournalTail, Name, StateStore, StreamAddr};

use crate::error::{CliError, Result};
use crate::out::time;
use crate::records::deployment;

/// An entry as one JSON object: what `--json` prints and what `serve`'s live tail sends.
pub fn entry_json(e: &JournalEntry) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "event_time": e.event_time,
        "commit_time": e.commit_time,
        "key": e.key.as_ref().map(Name::as_str),
        "value": e.value,
    })
}

fn print(e: &JournalEntry, json_out: bool) -> Result<()> {
    let line = if json_out {
        entry_json(e).to_string()
    } else {
        format!(
            "#{} {} {}{}",
            e.seq,
            time(e.event_time),
            e.key.as_ref().map_or(String::new(), |k| format!("[{k}] ")),
            serde_json::to_string(&e.value).unwrap_or_default()
        )
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the tail quietly.
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("stdout", e))
}

/// Where a tail starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// With the newest `n` entries.
    Newest(usize),
    /// With every entry from this sequence number on (1 is the first ever written).
    Seq(u64),
}

/// Prints the entries `start` names, then follows if asked.
///
/// # Errors
/// `Other` for a journal that does not exist, or a `--from-seq` before what truncation kept
/// (the entries in between are gone: resuming there would leave a gap); `Store` if a read
/// fails or finds damage.
pub async fn run(
    store: &Arc<dyn StateStore>,
    id: &str,
    stream: &str,
    start: Start,
    follow: bool,
    json_out: bool,
) -> Result<()> {
    let addr = StreamAddr {
        deployment_id: deployment(id)?,
        stream: Name::stream(stream)?,
    };
    let info = store.journal_info(&addr).await?;
    if info.is_none() && !follow {
        return Err(CliError::Other(format!("no journal {addr}")));
    }
    let last = info.map_or(0, |i| i.last_seq);
    let next = match start {
        Start::Newest(lines) => {
            let from = (last + 1)
                .saturating_sub(lines as u64)
                .max(info.map_or(1, |i| i.first_seq));
            if lines > 0 && last >= from && last > 0 {
                let page = store
                    .read_journal(&addr, JournalQuery::from_seq(from, lines))
                    .await?;
                for e in &page.entries {
                    print(e, json_out)?;
                }
            }
            last + 1
        }
        Start::Seq(seq) => {
            let seq = seq.max(1);
            if let Some(i) = info.filter(|i| seq < i.first_seq && i.count > 0) {
                return Err(CliError::Other(format!(
                    "{addr} keeps #{} on (earlier entries were truncated): --from-seq {seq} would skip #{seq}..#{}",
                    i.first_seq,
                    i.first_seq - 1
                )));
            }
            let mut q = (seq <= last).then(|| JournalQuery::from_seq(seq, 5_000));
            while let Some(query) = q {
                let page = store.read_journal(&addr, query).await?;
                for e in &page.entries {
                    print(e, json_out)?;
                }
                q = page.next;
            }
            (last + 1).max(seq)
        }
    };
    if !follow {
        return Ok(());
    }
    // An embedded file written by another process sends no signal here: without a change
    // feed, look again every half second as well.
    let recheck = if store.changes().is_some() {
        std::time::Duration::from_secs(3600)
    } else {
        std::time::Duration::from_millis(500)
    };
    let mut tail = JournalTail::new(store.clone(), addr, next);
    loop {
        tokio::select! {
            batch = tail.next_batch(256) => {
                for e in &batch? {
                    print(e, json_out)?;
                }
            }
            () = tokio::time::sleep(recheck) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
