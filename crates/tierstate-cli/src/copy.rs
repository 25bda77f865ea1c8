//! `copy --from URL --to URL`: a logical copy of every record between any two backends
//! (`tierstate_core::copy`), then the `verify` walk over both sides, whose counts must agree.
//! How a SQLite user moves to PostgreSQL, and a backup for redb and PostgreSQL.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tierstate::{StateStore, StoreUrl};

use crate::error::{CliError, Result};
use crate::out::Report;

/// Copies everything in `from` into `to` (which must hold nothing), then verifies both.
///
/// # Errors
/// `Usage` if both name the same database; `Store` if the destination holds records, or if the
/// source is damaged (naming the record; a destination file this run created is removed);
/// `Damaged` or `Other` if the verification of either side fails or their counts differ.
pub async fn run(from: &StoreUrl, to: &StoreUrl, json_out: bool) -> Result<Report> {
    if from.shown() == to.shown() {
        return Err(CliError::Usage(
            "--from and --to name the same database".into(),
        ));
    }
    let source = crate::open::open_read(from).await?;
    let created = to.file().filter(|p| !p.exists()).map(ToOwned::to_owned);
    let ts = tierstate::Tierstate::builder()
        .store_url(to)?
        .warm_up(false)
        .open()
        .await?;
    let dest = ts.records("copy");
    let started = std::time::Instant::now();
    let copied = copy(&*source, &*dest, json_out).await;
    let took = started.elapsed();
    let copied = match copied {
        Ok(c) => c,
        Err(e) => {
            ts.close().await;
            if let Some(path) = &created {
                remove_database(path);
            }
            return Err(e);
        }
    };
    let theirs = crate::verify::run(&source, None, true).await?;
    let ours = crate::verify::run(&dest, None, true).await?;
    ts.close().await;
    let keys = [
        "deployments",
        "state_versions",
        "document_versions",
        "journal_entries",
        "journals",
    ];
    let differ: Vec<String> = keys
        .iter()
        .filter(|k| theirs.json[**k] != ours.json[**k])
        .map(|k| {
            format!(
                "{k}: {} in the source, {} in the copy",
                theirs.json[*k], ours.json[*k]
            )
        })
        .collect();
    if !differ.is_empty() {
        return Err(CliError::Other(format!(
            "the copy does not match its source: {}",
            differ.join("; ")
        )));
    }
    Ok(Report {
        text: format!(
            "copied {} deployment(s) from {} to {} in {:.2} s: {} state version(s), {} document \
             version(s), {} journal entr(ies) in {} journal(s)\nverified both sides: no damage, \
             the same counts\n",
            copied.deployments,
            from.shown(),
            to.shown(),
            took.as_secs_f64(),
            copied.states,
            copied.documents,
            copied.entries,
            copied.journals
        ),
        json: json!({
            "from": from.shown(),
            "to": to.shown(),
            "seconds": took.as_secs_f64(),
            "deployments": copied.deployments,
            "state_versions": copied.states,
            "document_versions": copied.documents,
            "journal_entries": copied.entries,
            "journals": copied.journals,
            "verify": { "source": theirs.json, "copy": ours.json },
        }),
    })
}

async fn copy(
    source: &dyn StateStore,
    dest: &dyn StateStore,
    json_out: bool,
) -> Result<tierstate::copy::Copied> {
    let bar = ProgressBar::new_spinner();
    if json_out || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("copy {spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let r = tierstate::copy::copy_all(source, dest, |c| {
        bar.set_message(format!(
            "{} deployment(s), {} records",
            c.deployments,
            c.states + c.documents + c.entries
        ));
    })
    .await;
    bar.finish_and_clear();
    r.map_err(|e| match e {
        e if e.is_damage() => CliError::Other(format!(
            "the source is damaged; the copy stopped at {}: {e}",
            crate::verify::address_of(&e)
        )),
        e => CliError::Store(e),
    })
}

/// Removes a database file this run created, with SQLite's companions.
fn remove_database(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-lock", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(p));
    }
}
