//! `migrate [--dry-run]`: upgrades a database's own schema in place (also what `cargo xtask migrate`
//! runs). With `--dry-run` it prints the recorded version and the steps, and changes nothing;
//! without, it opens the database the way the library does, which applies the missing steps
//! in one transaction (a newer database is refused).

use serde_json::json;
use tierstate::{PostgresConfig, PostgresStore, RedbConfig, RedbStore, SqliteConfig, SqliteStore};

use crate::error::{CliError, Result};
use crate::open::Url;
use crate::out::Report;

/// Shows and (unless `dry_run`) applies the pending steps.
///
/// # Errors
/// `Missing` for an embedded file that is not there; `Store` if the database cannot be read
/// or is newer than this build.
pub async fn run(url: &Url, dry_run: bool) -> Result<Report> {
    if let Some(p) = url.file()
        && !p.exists()
    {
        return Err(CliError::Missing(p.to_owned()));
    }
    // (shown URL, schema found (`None`: no tierstate tables yet), latest, steps)
    let (name, found, latest, steps): (String, Option<u64>, u64, Vec<String>) = match url {
        Url::Sqlite(path) => {
            let (found, steps) = tierstate_sqlite::pending_steps(path)?;
            let steps = steps
                .iter()
                .map(|(v, sql)| format!("step {v}: {}", sql.lines().next().unwrap_or("")))
                .collect();
            (
                url.shown(),
                Some(u64::from(found)),
                u64::from(tierstate_sqlite::SCHEMA_VERSION),
                steps,
            )
        }
        Url::Redb(path) => {
            let (found, steps) = tierstate_redb::pending_steps(path)?;
            let mut steps: Vec<String> = steps
                .iter()
                .map(|(v, what)| format!("step {v}: {what}"))
                .collect();
            if found.is_none() && steps.is_empty() {
                steps.push("create the tierstate tables".into());
            }
            (
                url.shown(),
                found.map(u64::from),
                u64::from(tierstate_redb::FORMAT_VERSION),
                steps,
            )
        }
        Url::Postgres { url: u, schema } => {
            let mut cfg = PostgresConfig::new(u.clone()).listen(false);
            if let Some(s) = schema {
                cfg = cfg.schema(s)?;
            }
            let pending = PostgresStore::pending_migrations(&cfg).await?;
            let latest = PostgresStore::schema_version();
            let found = latest.saturating_sub(pending.len() as i64);
            let steps = pending
                .iter()
                .map(|(v, d)| format!("migration {v}: {d}"))
                .collect();
            (
                url.shown(),
                Some(u64::try_from(found).unwrap_or(0)),
                u64::try_from(latest).unwrap_or(0),
                steps,
            )
        }
    };
    let shown_found = found.map_or_else(|| "none".to_owned(), |v| v.to_string());
    let mut text = format!("{name}: schema {shown_found}, latest {latest}\n");
    for s in &steps {
        text.push_str(&format!("  {s}\n"));
    }
    let apply = !dry_run && !steps.is_empty();
    if apply {
        match url {
            Url::Sqlite(p) => SqliteStore::open(SqliteConfig::new(p)).await?.close().await,
            Url::Redb(p) => drop(RedbStore::open(RedbConfig::new(p)).await?),
            Url::Postgres { url: u, schema } => {
                let mut cfg = PostgresConfig::new(u.clone()).listen(false);
                if let Some(s) = schema {
                    cfg = cfg.schema(s)?;
                }
                PostgresStore::connect(cfg).await?.close().await;
            }
        }
        text.push_str(&format!("upgraded to {latest}\n"));
    } else if steps.is_empty() {
        text.push_str("up to date\n");
    } else {
        text.push_str("dry run: nothing changed\n");
    }
    Ok(Report {
        text,
        json: json!({"database": name, "found": found, "latest": latest, "steps": steps, "applied": apply}),
    })
}
