//! `verify`: walks every deployment holding any record and every retained state version,
//! document version and journal entry, checking each checksum and every hash-chain link; it
//! goes on past damage and reports every damaged record with its address; checks that what a
//! header or an index counts is what is stored (the NAV series, the order journals); and runs
//! the storage engine's own check where the backend has one. Non-zero exit on any damage.

use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tierstate::accounting::Portfolio;
use tierstate::orders::OrderStore;
use tierstate::{DeploymentId, DocAddr, Error, JournalQuery, Name, StateStore, StreamAddr, Target};

use crate::error::{CliError, Result};
use crate::out::Report;
use crate::records::{collections, deployment, deployments, require_deployment, streams};

/// Journal entries per read.
const PAGE: usize = 1_000;

/// One damaged record.
struct Finding {
    address: String,
    what: String,
}

#[derive(Default)]
struct Tally {
    states: u64,
    documents: u64,
    entries: u64,
    journals: u64,
    damage: Vec<Finding>,
}

impl Tally {
    /// Records damage and carries on; any other failure stops the walk.
    fn check<T>(&mut self, r: tierstate::Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_damage() => {
                self.damage.push(Finding {
                    address: address_of(&e),
                    what: e.to_string(),
                });
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn found(&mut self, address: String, what: String) {
        self.damage.push(Finding { address, what });
    }
}

/// The address a damage error names: `dep`, `dep document c/k v3`, `dep journal s #7`.
pub(crate) fn address_of(e: &Error) -> String {
    match e {
        Error::Integrity {
            deployment_id,
            target,
            version,
            ..
        } => match target {
            Target::State => format!("{deployment_id} state v{version}"),
            Target::Document { collection, key } => {
                format!("{deployment_id} document {collection}/{key} v{version}")
            }
            Target::Journal { stream } => format!("{deployment_id} journal {stream} #{version}"),
            _ => format!("{deployment_id}{target} {version}"),
        },
        Error::Corrupt { location, .. } => location.clone(),
        other => other.to_string(),
    }
}

/// `backup DEST`: the store's consistent copy into the new file `dest`, then the same walk
/// as `verify` over the copy, opened read-only. A copy that does not verify is removed.
///
/// # Errors
/// `Store` if the backend cannot copy itself (naming what to use instead) or `dest` exists;
/// `Damaged` if the copy does not verify.
pub async fn backup(store: &Arc<dyn StateStore>, dest: &Path, json_out: bool) -> Result<Report> {
    let started = std::time::Instant::now();
    store.backup_to(dest).await?;
    let took = started.elapsed();
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    let url = tierstate::StoreUrl::parse(&format!("{}:{}", store.backend(), dest.display()))?;
    let copy = url.open(tierstate::Access::ReadOnly).await?;
    let checked = run(&copy, None, json_out).await;
    copy.close().await;
    let report = match checked {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
    };
    Ok(Report {
        text: format!(
            "backed up to {} ({bytes} bytes in {:.2} s)\n{}",
            dest.display(),
            took.as_secs_f64(),
            report.text
        ),
        json: json!({
            "backup": dest.display().to_string(),
            "bytes": bytes,
            "seconds": took.as_secs_f64(),
            "verify": report.json,
        }),
    })
}

/// Runs the walk over one deployment or all of them.
///
/// # Errors
/// `Damaged` after printing the findings; `Store` if the walk itself fails; `Other` for a
/// deployment that holds no record.
pub async fn run(
    store: &Arc<dyn StateStore>,
    only: Option<&str>,
    json_out: bool,
) -> Result<Report> {
    let ids = match only {
        Some(id) => {
            let id = deployment(id)?;
            require_deployment(store, &id).await?;
            vec![id]
        }
        None => deployments(store).await?,
    };
    let bar = ProgressBar::new(ids.len() as u64);
    if json_out || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
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
    // The engine's own check, over the whole database.
    let engine = match store.check_engine().await? {
        None => format!(
            "not available for {} (it checks its own pages as it reads them)",
            store.backend()
        ),
        Some(problems) if problems.is_empty() => "ok".to_owned(),
        Some(problems) => {
            let n = problems.len();
            for p in problems {
                t.found(format!("{} engine", store.backend()), p);
            }
            format!("{n} problem(s)")
        }
    };
    let mut text = format!(
        "verified {} deployment(s): {} state version(s), {} document version(s), {} journal entr(ies) in {} journal(s)\nengine check: {engine}\n",
        ids.len(),
        t.states,
        t.documents,
        t.entries,
        t.journals
    );
    for d in &t.damage {
        text.push_str(&format!("DAMAGED {}: {}\n", d.address, d.what));
    }
    text.push_str(&if t.damage.is_empty() {
        "no damage found\n".to_owned()
    } else {
        format!("{} damaged record(s)\n", t.damage.len())
    });
    let report = Report {
        text,
        json: json!({
            "deployments": ids.len(),
            "state_versions": t.states,
            "document_versions": t.documents,
            "journal_entries": t.entries,
            "journals": t.journals,
            "engine_check": engine,
            "damage": t.damage.iter().map(|d| json!({"address": d.address, "what": d.what})).collect::<Vec<_>>(),
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
    // Every retained state version, newest first, stepping over damaged ones.
    let head = match store.get(id).await {
        Ok(Some(s)) => {
            t.states += 1;
            Some(s.version)
        }
        Ok(None) => None,
        Err(e @ Error::Integrity { version, .. }) => {
            t.check::<()>(Err(e))?;
            Some(version)
        }
        Err(e) if e.is_damage() => {
            t.check::<()>(Err(e))?;
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(head) = head {
        for v in (1..head).rev() {
            match t.check(store.get_version(id, v).await)? {
                Some(Some(_)) => t.states += 1,
                Some(None) => break, // pruned: retention keeps the newest versions only
                None => {}
            }
        }
    }
    // Every document, every retained version of each.
    let mut snapshots = None;
    // Damage in the engine's own structures (a catalog, an index page) stops the walk of that
    // part only: it is reported and the rest is still walked.
    let colls = match collections(store, id).await {
        Err(CliError::Store(e)) if e.is_damage() => {
            t.check::<()>(Err(e))?;
            Vec::new()
        }
        other => other?,
    };
    for c in colls {
        let mut after: Option<Name> = None;
        let mut current = 0u64;
        loop {
            let page = match store.list_documents(id, &c, after.as_ref(), PAGE).await {
                Err(e) if e.is_damage() => {
                    t.check::<()>(Err(e))?;
                    break;
                }
                other => other?,
            };
            let n = page.len();
            for doc in page {
                let (address, top) = match doc {
                    Ok(d) => {
                        t.documents += 1;
                        (d.address, d.version)
                    }
                    Err(e @ Error::Integrity { .. }) => {
                        let Error::Integrity {
                            target: Target::Document { collection, key },
                            version,
                            ..
                        } = &e
                        else {
                            t.check::<()>(Err(e))?;
                            continue;
                        };
                        let address = DocAddr {
                            deployment_id: id.clone(),
                            collection: collection.clone(),
                            key: key.clone(),
                        };
                        let v = *version;
                        t.check::<()>(Err(e))?;
                        (address, v)
                    }
                    Err(e) => return Err(e.into()),
                };
                current += 1;
                after = Some(address.key.clone());
                for v in (1..top).rev() {
                    match t.check(store.document_version(&address, v).await)? {
                        Some(Some(_)) => t.documents += 1,
                        Some(None) => break,
                        None => {}
                    }
                }
            }
            bar.set_message(format!("{} records", t.states + t.documents + t.entries));
            if n < PAGE {
                break;
            }
        }
        if c.as_str() == tierstate::accounting::SNAPSHOTS {
            snapshots = Some(current);
        }
    }
    // Every journal entry, stepping over damaged and missing ones.
    let journals = match streams(store, id).await {
        Err(CliError::Store(e)) if e.is_damage() => {
            t.check::<()>(Err(e))?;
            Vec::new()
        }
        other => other?,
    };
    for s in journals {
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s,
        };
        t.journals += 1;
        let Some(info) = t.check(store.journal_info(&addr).await)? else {
            continue;
        };
        let Some(info) = info else { continue };
        let mut q = Some(JournalQuery::Audit {
            from: info.first_seq.max(1),
            limit: PAGE,
        });
        while let Some(query) = q {
            let page = match store.read_journal(&addr, query).await {
                Err(e) if e.is_damage() => {
                    t.check::<()>(Err(e))?;
                    break;
                }
                other => other?,
            };
            t.entries += page.entries.len() as u64;
            for d in page.damage {
                t.found(format!("{addr} #{}", d.seq), d.what);
            }
            q = page.next;
        }
        bar.set_message(format!("{} records", t.states + t.documents + t.entries));
    }
    consistency(store, id, snapshots, t).await
}

/// What a header or an index counts against what is stored: the NAV series' header against
/// its snapshots, each order's stored intent and actual order against the fold of its journal.
async fn consistency(
    store: &Arc<dyn StateStore>,
    id: &DeploymentId,
    snapshots: Option<u64>,
    t: &mut Tally,
) -> Result<()> {
    let portfolio = Portfolio::new(store.clone(), id);
    match portfolio.nav_summary().await {
        Ok(summary) => {
            let stored = snapshots.unwrap_or(0);
            if summary.stored != stored {
                t.found(
                    format!("{id} {}", tierstate::accounting::SNAPSHOTS),
                    format!(
                        "the NAV header counts {} snapshot(s), {stored} are stored",
                        summary.stored
                    ),
                );
            }
        }
        Err(tierstate::accounting::AccountingError::Store(e)) if e.is_damage() => {
            t.check::<()>(Err(e))?;
        }
        Err(e) => {
            t.found(format!("{id} portfolio"), e.to_string());
        }
    }
    let orders = OrderStore::new(store.clone(), id);
    let intents = match orders.intents(None, None).await {
        Ok(i) => i,
        Err(tierstate::orders::OrdersError::Store(e)) if e.is_damage() => {
            t.check::<()>(Err(e))?;
            Vec::new()
        }
        Err(e) => {
            t.found(format!("{id} orders"), e.to_string());
            Vec::new()
        }
    };
    for i in intents {
        let intent = i.intent.intent_id;
        if let Err(e) = orders.verify(&intent).await {
            // A damaged entry is already reported by the journal walk.
            if !matches!(&e, tierstate::orders::OrdersError::Store(s) if s.is_damage()) {
                t.found(format!("{id} order {intent}"), e.to_string());
            }
        }
    }
    Ok(())
}
