//! `migrate [--dry-run]`: upgrades a database's own schema in place (also what `cargo xtask migrate`
//! runs). With `--dry-run` it prints the recorded version and the steps, and changes nothing;
//! without, it first writes a verified backup (unless `--no-backup`), then opens the database
//! the way the library does, which applies the missing steps in one transaction (a newer
//! database is refused).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::error::{CliError, Result};
use crate::open::require_file;
use crate::out::Report;

/// Shows and (unless `dry_run`) applies the pending steps.
///
/// # Errors
/// `Missing` for an embedded file that is not there; `Store` if the database cannot be read
/// or is newer than this build.
pub async fn run(
    url: &tierstate::StoreUrl,
    dry_run: bool,
    backup: Option<Option<PathBuf>>,
) -> Result<Report> {
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
    let mut saved = None;
    // A database with no schema yet holds nothing to back up.
    if apply && let (Some(dest), Some(found)) = (backup, status.found) {
        let (dest, bytes) = before_migrating(url, found, dest)?;
        text.push_str(&format!(
            "backup: {} ({bytes} bytes, verified)\n",
            dest.display()
        ));
        saved = Some(dest.display().to_string());
    }
    if apply {
        let after = schema.apply().await.map_err(|e| match &saved {
            Some(dest) => CliError::Other(format!("{e} (the backup taken before is {dest})")),
            None => e.into(),
        })?;
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
            "backup": saved,
        }),
    })
}

/// A verified copy of the database as it is before its schema changes: SQLite through the
/// online backup (then `PRAGMA integrity_check` on the copy), redb as the file's bytes (then
/// compared with the file again), PostgreSQL by `pg_dump` of its schema. Returns where and
/// how many bytes.
///
/// # Errors
/// `Other` naming what failed and the remedy (`--no-backup` after a backup of your own).
fn before_migrating(
    url: &tierstate::StoreUrl,
    found: u64,
    dest: Option<PathBuf>,
) -> Result<(PathBuf, u64)> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let beside = |p: &Path| {
        let name = p
            .file_name()
            .map_or_else(|| "db".into(), |n| n.to_string_lossy().into_owned());
        p.with_file_name(format!("{name}.before-migrate-v{found}-{stamp}"))
    };
    let failed = |why: String| {
        CliError::Other(format!(
            "backup before migrating failed: {why}; nothing was migrated (take a backup \
             yourself and pass --no-backup to go on without one)"
        ))
    };
    let dest = match (url, dest) {
        (_, Some(d)) => d,
        (tierstate::StoreUrl::Sqlite(p) | tierstate::StoreUrl::Redb(p), None) => beside(p),
        (tierstate::StoreUrl::Postgres { schema, .. }, None) => PathBuf::from(format!(
            "{}-before-migrate-v{found}-{stamp}.sql",
            schema.as_deref().unwrap_or("public")
        )),
        (_, None) => {
            return Err(failed("an in-process store has nothing to back up".into()));
        }
    };
    match url {
        tierstate::StoreUrl::Sqlite(p) => {
            tierstate::backup::write_new("sqlite", &dest, |tmp| {
                let src = rusqlite::Connection::open_with_flags(
                    p,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .map_err(|e| tierstate::Error::invalid("backup", e.to_string()))?;
                let mut dst = rusqlite::Connection::open(tmp)
                    .map_err(|e| tierstate::Error::invalid("backup", e.to_string()))?;
                rusqlite::backup::Backup::new(&src, &mut dst)
                    .and_then(|b| b.run_to_completion(i32::MAX, std::time::Duration::ZERO, None))
                    .map_err(|e| tierstate::Error::invalid("backup", e.to_string()))?;
                let check: String = dst
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .map_err(|e| tierstate::Error::invalid("backup", e.to_string()))?;
                if check != "ok" {
                    return Err(tierstate::Error::invalid(
                        "backup",
                        format!("the copy fails its integrity check: {check}"),
                    ));
                }
                Ok(())
            })
            .map_err(|e| failed(e.to_string()))?;
        }
        tierstate::StoreUrl::Redb(p) => {
            tierstate::backup::write_new("redb", &dest, |tmp| {
                let io = |e: std::io::Error| tierstate::Error::invalid("backup", e.to_string());
                std::fs::copy(p, tmp).map_err(io)?;
                if std::fs::read(p).map_err(io)? != std::fs::read(tmp).map_err(io)? {
                    return Err(tierstate::Error::invalid(
                        "backup",
                        "the file changed while it was copied: stop the process using it",
                    ));
                }
                Ok(())
            })
            .map_err(|e| failed(e.to_string()))?;
        }
        tierstate::StoreUrl::Postgres { url: conn, schema } => {
            pg_dump(conn, schema.as_deref().unwrap_or("public"), &dest).map_err(failed)?;
        }
        _ => return Err(failed("an in-process store has nothing to back up".into())),
    }
    let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    Ok((dest, bytes))
}

/// `pg_dump` of one schema into a new file, checked to have finished.
fn pg_dump(conn: &str, schema: &str, dest: &Path) -> std::result::Result<(), String> {
    if dest.exists() {
        return Err(format!("{} exists: name a new file", dest.display()));
    }
    let bin = pg_dump_binary()
        .ok_or("no pg_dump on PATH or in /usr/lib/postgresql/*/bin (install postgresql-client)")?;
    let out = Command::new(&bin)
        .args(["--schema", schema, "--file"])
        .arg(dest)
        .arg(conn)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(dest);
        return Err(format!(
            "pg_dump failed: {}",
            tierstate::redact(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    let text = std::fs::read_to_string(dest).map_err(|e| e.to_string())?;
    if !text.contains("\n-- PostgreSQL database dump complete\n") {
        let _ = std::fs::remove_file(dest);
        return Err("pg_dump's output is incomplete".into());
    }
    Ok(())
}

fn pg_dump_binary() -> Option<PathBuf> {
    if Command::new("pg_dump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(PathBuf::from("pg_dump"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin/pg_dump")))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop()
}
