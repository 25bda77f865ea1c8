//! `migrate [--dry-run]`: upgrades a database's own schema in place (also what `cargo xtask migrate`
//! runs). With `--dry-run` it prints the recorded version and the steps, and changes nothing;
//! without, it opens the database the way the library does, which applies the missing steps
//! in one transaction (a newer database is refused).

use serde_json::json;

use crate::error::Result;
use crate::open::require_file;
use crate::out::Report;

/// Shows and (unless `dry_run`) applies the pending steps.
///
/// # Errors
/// `Missing` for an embedded file that is not there; `Store` if the database cannot be read
/// or is newer than this build.
pub async fn run(url: &tierstate::StoreUrl, dry_run: bool) -> Result<Report> {
    require_file(url)?;
    let schema = url.schema()?;
    let status = schema.status().await?;
    let name = url.shown();
    let shown_found = status
        .found
        .map_or_else(|| "none".to_owned(), |v| v.to_string());
    let mut text = format!("{name}: schema {shown_found}, latest {}\n", status.latest);
    let steps: Vec<String> = status
        .pending
        .iter()
        .map(|s| format!("step {}: {}", s.version, s.description))
        .collect();
    for s in &steps {
        text.push_str(&format!("  {s}\n"));
    }
    let apply = !dry_run && !steps.is_empty();
    if apply {
        let after = schema.apply().await?;
        text.push_str(&format!(
            "upgraded to {}\n",
            after.found.unwrap_or(after.latest)
        ));
    } else if steps.is_empty() {
        text.push_str("up to date\n");
    } else {
        text.push_str("dry run: nothing changed\n");
    }
    Ok(Report {
        text,
        json: json!({
            "database": name,
            "backend": status.backend,
            "found": status.found,
            "latest": status.latest,
            "steps": steps,
            "applied": apply,
        }),
    })
}
