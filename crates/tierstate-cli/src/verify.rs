//! `verify`: walks every retained state version, document version and journal entry,
//! checking each checksum and every hash-chain link; prints a summary and fails on damage.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tierstate::{DeploymentId, Error, JournalQuery, StateStore, StreamAddr};

use crate::error::{CliError, Result};
use crate::out::Report;
use crate::records::{collections, deployment, deployments, streams};

/// Retained versions read per record (retention keeps far fewer).
const ALL: usize = 1_000_000;
/// Journal entries per read.
const PAGE: usize = 1_000;

#[derive(Default)]
struct Tally {
    states: u64,
    documents: u64,
    entries: u64,
    journals: u64,
    damage: Vec<String>,
}

impl Tally {
    /// Counts damage and carries on; any other failure stops the walk.
    fn check<T>(&mut self, r: tierstate::Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e @ Error::Integrity { .. }) => {
                self.damage.push(e.to_string());
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs the walk over one deployment or all of them.
///
/// # Errors
/// `Damaged` after printing the findings; `Store` if the walk itself fails.
pub async fn run(
    store: &Arc<dyn StateStore>,
    only: Option<&str>,
    json_out: bool,
) -> Result<Report> {
    let ids = match only {
        Some(id) => vec![deployment(id)?],
        None => deployments(store).await?,
    };
    let bar = ProgressBar::new(ids.len() as u64);
    if json_out {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("verify {bar:30} {pos}/{len} deployments {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut t = Tally::default();
    for id in &ids {
        walk(store, id, &mut t, &bar).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut text = format!(
        "verified {} deployment(s): {} state version(s), {} document version(s), {} journal entr(ies) in {} journal(s)\n",
        ids.len(),
        t.states,
        t.documents,
        t.entries,
        t.journals
    );
    for d in &t.damage {
        text.push_str(&format!("DAMAGED {d}\n"));
    }
    text.push_str(if t.damage.is_empty() {
        "no damage found\n"
    } else {
        "damage found\n"
    });
    let report = Report {
        text,
        json: json!({
            "deployments": ids.len(),
            "state_versions": t.states,
            "document_versions": t.documents,
            "journal_entries": t.entries,
            "journals": t.journals,
            "damage": t.damage,
        }),
    };
    if t.damage.is_empty() {
        Ok(report)
    } else {
        report.print(json_out);
        Err(CliError::Damaged(t.damage.len() as u64))
    }
}

async fn walk(
    store: &Arc<dyn StateStore>,
    id: &DeploymentId,
    t: &mut Tally,
    bar: &ProgressBar,
) -> Result<()> {
    if let Some(versions) = t.check(store.history(id, ALL).await)? {
        t.states += versions.len() as u64;
    }
    for c in collections(store, id).await? {
        let mut after = None;
        loop {
            let before = after.clone();
            let page = store.list_documents(id, &c, after.as_ref(), PAGE).await?;
            let n = page.len();
            for doc in page {
                let Some(doc) = t.check(doc)? else { continue };
                if let Some(h) = t.check(store.document_history(&doc.address, ALL).await)? {
                    t.documents += h.len() as u64;
                }
                after = Some(doc.address.key);
            }
            bar.set_message(format!("{} records", t.states + t.documents + t.entries));
            if n < PAGE || after == before {
                break;
            }
        }
    }
    for s in streams(store, id).await? {
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s,
        };
        t.journals += 1;
        let Some(info) = t.check(store.journal_info(&addr).await)? else {
            continue;
        };
        let Some(info) = info else { continue };
        let mut q = Some(JournalQuery::from_seq(info.first_seq.max(1), PAGE));
        while let Some(query) = q {
            let Some(page) = t.check(store.read_journal(&addr, query).await)? else {
                break;
            };
            t.entries += page.entries.len() as u64;
            q = page.next;
        }
        bar.set_message(format!("{} records", t.states + t.documents + t.entries));
    }
    Ok(())
}
