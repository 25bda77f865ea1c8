//! Upgrades a tierstate database's own schema in place (what `cargo xtask migrate` runs).
//!
//! `db_migrate --backend sqlite|redb|postgres --url PATH_OR_URL [--schema NAME] [--dry-run]`
//! With `--dry-run` it prints the recorded version and the steps it would apply, and changes
//! nothing. Without, it opens the database the way the library does, which applies the missing
//! steps in one transaction (a newer database is refused).

use clap::{Parser, ValueEnum};
use tierstate::{PostgresConfig, PostgresStore, RedbConfig, RedbStore, SqliteConfig, SqliteStore};

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    Sqlite,
    Redb,
    Postgres,
}

#[derive(Parser)]
struct Args {
    /// Which backend the database belongs to.
    #[arg(long, value_enum)]
    backend: Backend,
    /// File path (sqlite, redb) or connection URL (postgres).
    #[arg(long)]
    url: String,
    /// PostgreSQL schema holding tierstate's tables.
    #[arg(long)]
    schema: Option<String>,
    /// Show the steps without applying them.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause (Display, never a Debug dump; URLs come redacted).
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What a redb file's recorded format reads as.
fn format_name(found: Option<u32>) -> String {
    found.map_or_else(
        || "none (no tierstate tables yet)".to_owned(),
        |v| v.to_string(),
    )
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    match args.backend {
        Backend::Sqlite => {
            let path = std::path::Path::new(&args.url);
            let (found, steps) = tierstate_sqlite::pending_steps(path)?;
            println!(
                "sqlite {}: schema version {found}, latest {}",
                path.display(),
                tierstate_sqlite::SCHEMA_VERSION
            );
            for (v, sql) in &steps {
                println!("  step {v}: {}", sql.lines().next().unwrap_or(""));
            }
            if !args.dry_run && !steps.is_empty() {
                SqliteStore::open(SqliteConfig::new(path))
                    .await?
                    .close()
                    .await;
                println!("upgraded to {}", tierstate_sqlite::pending_steps(path)?.0);
            }
        }
        Backend::Redb => {
            let path = std::path::Path::new(&args.url);
            let (found, steps) = tierstate_redb::pending_steps(path)?;
            println!(
                "redb {}: format {}, latest {}",
                path.display(),
                format_name(found),
                tierstate_redb::FORMAT_VERSION
            );
            for (v, what) in &steps {
                println!("  step {v}: {what}");
            }
            if !args.dry_run && (found.is_none() || !steps.is_empty()) {
                drop(RedbStore::open(RedbConfig::new(path)).await?);
                println!(
                    "upgraded to {}",
                    format_name(tierstate_redb::pending_steps(path)?.0)
                );
            }
        }
        Backend::Postgres => {
            let mut cfg = PostgresConfig::new(&args.url).listen(false);
            if let Some(s) = &args.schema {
                cfg = cfg.schema(s)?;
            }
            let pending = PostgresStore::pending_migrations(&cfg).await?;
            println!(
                "postgres {}: {} migration(s) pending, latest {}",
                cfg.redacted_url(),
                pending.len(),
                PostgresStore::schema_version()
            );
            for (v, d) in &pending {
                println!("  migration {v}: {d}");
            }
            if !args.dry_run && !pending.is_empty() {
                PostgresStore::connect(cfg.clone()).await?.close().await;
                println!(
                    "applied; pending now {}",
                    PostgresStore::pending_migrations(&cfg).await?.len()
                );
            }
        }
    }
    Ok(())
}
