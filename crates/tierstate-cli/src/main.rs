//! `tierstate`: the operator CLI for tierstate databases; `tierstate demo` runs the paper
//! market maker (crate `tierstate-demo`).
//!
//! Every command works on any backend by URL (`sqlite:PATH`, `redb:PATH`, `postgres://…`);
//! read commands take `--json` for scripts; errors are one line on stderr with a non-zero exit.
//!
//! ```text
//! $ tierstate demo --ticks 200      # writes tierstate-demo.db, prints what to try next
//! $ tierstate verify --db sqlite:tierstate-demo.db   # checksums and chains; exit 1 on damage
//! $ tierstate --help                # every command
//! ```

mod chart;
mod copy;
mod domain;
mod error;
mod export;
mod import;
mod migrate;
mod open;
mod out;
mod records;
mod serve;
mod tail;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{CliError, Result};
use crate::out::Report;

#[derive(Parser)]
#[command(
    name = "tierstate",
    version,
    about = "Inspect, verify and chart tierstate databases; run the paper demo."
)]
struct Cli {
    /// The database: sqlite:PATH, redb:PATH or postgres://USER:PASSWORD@HOST/DB[?schema=S].
    #[arg(
        long,
        global = true,
        env = "TIERSTATE_DB",
        default_value = "sqlite:tierstate-demo.db"
    )]
    db: String,
    /// Print JSON instead of text (read commands).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every deployment with its state's version, schema, size and last update.
    List,
    /// A deployment's current state, version, checksum, schema, tier and records.
    Inspect {
        /// The deployment.
        id: String,
    },
    /// A deployment's retained state versions, newest first.
    History {
        /// The deployment.
        id: String,
        /// How many versions.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// What changed between two versions of a deployment's state (a JSON Patch).
    Diff {
        /// The deployment.
        id: String,
        /// The older version.
        v1: u64,
        /// The newer version.
        v2: u64,
    },
    /// Writes a consistent copy of the database into a new file while writers go on (SQLite),
    /// then verifies the copy; PostgreSQL and redb say which tool to use instead.
    Backup {
        /// The new file.
        dest: std::path::PathBuf,
    },
    /// Walks every state version, document and journal entry, checking checksums and hash
    /// chains; exits non-zero on damage.
    Verify {
        /// Only this deployment.
        id: Option<String>,
    },
    /// A deployment's orders: intent (desired) beside actual (on the venue).
    Orders {
        /// The deployment.
        id: String,
        /// Only orders still wanted or working.
        #[arg(long)]
        open: bool,
    },
    /// A deployment's transaction ledger, newest first.
    Ledger {
        /// The deployment.
        id: String,
        /// Only entries at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A deployment's latest positions snapshot and holdings.
    Positions {
        /// The deployment.
        id: String,
    },
    /// A journal's entries from a sequence number; `--follow` waits for new ones.
    Tail {
        /// The deployment.
        id: String,
        /// The journal, e.g. `strategy.trades` or `ledger`.
        stream: String,
        /// How many of the newest entries to start with.
        #[arg(long, default_value_t = 10)]
        lines: usize,
        /// Keep printing entries as they are committed (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        /// Start at this sequence number instead of the newest entries: a relay that stopped
        /// after #N restarts with `--from-seq N+1`, without a gap or a duplicate.
        #[arg(long, conflicts_with = "lines")]
        from_seq: Option<u64>,
    },
    /// The state and documents as they were at a time, and each journal's length then.
    At {
        /// The deployment.
        id: String,
        /// The time (RFC 3339, e.g. 2026-11-21T14:03:07Z).
        time: String,
        /// Documents shown per collection.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Draws the NAV series and its drawdown.
    Nav {
        /// The deployment.
        id: String,
        /// Write an SVG chart here (labels use a TrueType font: DejaVu Sans, or TIERSTATE_FONT).
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
        /// Write a PNG chart here.
        #[arg(long)]
        png: Option<std::path::PathBuf>,
    },
    /// Writes trades, positions, metrics, NAV and ledger as CSV files into a directory: all
    /// of them or none (each is written under a temporary name, then renamed).
    Export {
        /// `ID DIR`: one deployment into DIR; with `--all`, just `DIR`: every deployment
        /// holding any record into DIR (created if missing), with a `deployment` column.
        #[arg(value_name = "ID DIR", num_args = 1..=2, required = true)]
        args: Vec<String>,
        /// Every deployment, in the same files with a `deployment` column first.
        #[arg(long)]
        all: bool,
        /// The format: csv, or ndjson (one JSON object per row, numbers as exact text).
        #[arg(long, default_value = "csv")]
        format: String,
        /// Only rows at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Overwrite files an earlier export left there.
        #[arg(long)]
        force: bool,
    },
    /// Upgrades the database's own schema in place (`--dry-run` shows the steps), after a
    /// verified backup (SQLite and redb beside the file, PostgreSQL by pg_dump).
    Migrate {
        /// Show the steps, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Migrate without a backup first.
        #[arg(long, conflicts_with = "backup_to")]
        no_backup: bool,
        /// Where to write the backup (a new file).
        #[arg(long)]
        backup_to: Option<std::path::PathBuf>,
    },
    /// Copies every record (states with history, documents, journals with their chains) into
    /// an empty database of any backend, then verifies both sides: how a SQLite database moves
    /// to PostgreSQL, and a backup for redb and PostgreSQL.
    Copy {
        /// The source (default: --db); opened read-only.
        #[arg(long)]
        from: Option<String>,
        /// The destination, which must hold no records (a new file is created).
        #[arg(long)]
        to: String,
    },
    /// Imports a seed-000 (almanak `StateManager`) SQLite database: states (their checksums
    /// checked), portfolio snapshots and metrics, ledger and position registry. Idempotent: a
    /// second run writes nothing; a row that differs from what is stored is named, not merged.
    Import {
        /// The seed-000 SQLite file (opened read-only).
        source: std::path::PathBuf,
        /// The execution mode of rows written before the seed recorded one: live, paper or
        /// dry_run.
        #[arg(long, default_value = "live")]
        execution_mode: String,
    },
    /// Serves a read-only view over HTTP: /healthz, /readyz, /metrics (OpenMetrics) and
    /// pages per deployment (no JavaScript).
    Serve {
        /// Where to listen (HOST:PORT; localhost unless told otherwise; port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: String,
        /// Require `Authorization: Bearer TOKEN` on every request.
        #[arg(long, env = "TIERSTATE_SERVE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// /readyz fails when a deployment's last commit is older than this many seconds.
        #[arg(long)]
        stale_after: Option<u64>,
    },
    /// Runs the paper market maker on the simulated exchange: one transaction per tick;
    /// kill it at any moment and run it again to resume.
    Demo(tierstate_demo::DemoArgs),
}

/// The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Damage inside redb's own structures is reported as an error, not a panic message.
    tierstate::quiet_engine_panics();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(Some(report)) => {
            report.print(json);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(CliError::Interrupted) => ExitCode::from(INTERRUPTED),
        Err(CliError::DamagedReport(report, n)) => {
            report.print(json);
            eprintln!("error: {n} damaged record(s) found");
            ExitCode::FAILURE
        }
        Err(CliError::RefusedReport(report, n)) => {
            report.print(json);
            eprintln!("error: {n} row(s) not imported");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Option<Report>> {
    let url = open::parse(&cli.db)?;
    match cli.command {
        Command::Demo(args) => demo(&url, &args).await.map(|()| None),
        Command::Migrate {
            dry_run,
            no_backup,
            backup_to,
        } => {
            let backup = (!no_backup).then_some(backup_to);
            migrate::run(&url, dry_run, backup).await.map(Some)
        }
        Command::Serve {
            listen,
            token,
            stale_after,
        } => {
            // Every read goes through a handle (metered: the store's figures in /metrics), with
            // no HOT tier: another process writes the database.
            let raw = open::open_read(&url).await?;
            let handle = tierstate::Tierstate::builder()
                .warm(raw)
                .without_hot()
                .warm_up(false)
                .open()
                .await?;
            let store = handle.records("serve");
            let opts = serve::Options {
                listen,
                token,
                stale_after: stale_after.map(std::time::Duration::from_secs),
                shown_url: url.shown(),
                handle,
            };
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || serve::run(rt, store, opts))
                .await
                .map_err(|e| CliError::Other(format!("the server stopped: {e}")))?
                .map(|()| None)
        }
        Command::Copy { from, to } => {
            let from = match from {
                Some(f) => open::parse(&f)?,
                None => url,
            };
            copy::run(&from, &open::parse(&to)?, cli.json)
                .await
                .map(Some)
        }
        Command::Import {
            source,
            execution_mode,
        } => {
            let mode =
                execution_mode
                    .parse()
                    .map_err(|e: tierstate::accounting::AccountingError| {
                        CliError::Usage(e.to_string())
                    })?;
            let ts = tierstate::Tierstate::open(&cli.db).await?;
            let r = import::run(&ts, &source, mode).await;
            ts.close().await;
            r.map(Some)
        }
        read => {
            // Bad arguments are refused before anything is opened.
            check_arguments(&read)?;
            let store = open::open_read(&url).await?;
            // Ctrl-C stops a read (an export leaves no file behind) with exit 130.
            tokio::select! {
                r = query(read, &store, cli.json) => r,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("stopped by Ctrl-C");
                    Err(CliError::Interrupted)
                }
            }
        }
    }
}

/// `tierstate demo`: runs the paper market maker (crate `tierstate-demo`), then draws its NAV
/// chart and prints the commands that look at what it left.
async fn demo(url: &tierstate::StoreUrl, args: &tierstate_demo::DemoArgs) -> Result<()> {
    let finished = tierstate_demo::run(url, args).await?;
    if let Some(chart) = &finished.chart {
        // Read-only, as the `nav` command reads it.
        let records = open::open_read(url).await?;
        let png = chart
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        let (svg, png) = if png {
            (None, Some(chart.clone()))
        } else {
            (Some(chart.clone()), None)
        };
        match chart::nav(&records, &args.deployment, svg, png).await {
            Ok(_) => println!("chart: {}", chart.display()),
            Err(e) => println!("chart: not written ({e})"),
        }
        println!("next:");
        for cmd in tierstate_demo::next_commands(url, &args.deployment) {
            println!("  {cmd}");
        }
    }
    if let Some(d) = finished.disagreement {
        return Err(CliError::Other(format!("the audit disagrees: {d}")));
    }
    if finished.interrupted {
        return Err(CliError::Interrupted);
    }
    Ok(())
}

/// Refuses arguments that cannot work, before the database is opened.
fn check_arguments(command: &Command) -> Result<()> {
    match command {
        Command::Export {
            args,
            all,
            format,
            since,
            ..
        } => {
            export::Format::parse(format)?;
            since.as_deref().map(records::parse_time).transpose()?;
            if args.len() != if *all { 1 } else { 2 } {
                return Err(CliError::Usage("export takes ID DIR, or --all DIR".into()));
            }
            Ok(())
        }
        Command::Nav { svg, png, .. } => {
            if svg.is_none() && png.is_none() {
                return Err(CliError::Usage(
                    "name a file: --svg FILE or --png FILE".into(),
                ));
            }
            if let Some(p) = svg {
                chart::check_chart_path(p, "svg")?;
            }
            if let Some(p) = png {
                chart::check_chart_path(p, "png")?;
            }
            Ok(())
        }
        Command::History { limit: 0, .. }
        | Command::Ledger { limit: 0, .. }
        | Command::At { limit: 0, .. } => Err(CliError::Usage("--limit must be at least 1".into())),
        _ => Ok(()),
    }
}

/// The commands that read a database (none of them writes).
async fn query(
    command: Command,
    store: &std::sync::Arc<dyn tierstate::StateStore>,
    json: bool,
) -> Result<Option<Report>> {
    let report = match command {
        Command::List => records::list(store).await?,
        Command::Inspect { id } => records::inspect(store, &id).await?,
        Command::History { id, limit } => records::history(store, &id, limit).await?,
        Command::Diff { id, v1, v2 } => records::diff(store, &id, v1, v2).await?,
        Command::At { id, time, limit } => records::at(store, &id, &time, limit).await?,
        Command::Verify { id } => verify::run(store, id.as_deref(), json).await?,
        Command::Backup { dest } => verify::backup(store, &dest, json).await?,
        Command::Orders { id, open } => domain::orders(store, &id, open).await?,
        Command::Ledger { id, since, limit } => {
            domain::ledger(store, &id, since.as_deref(), limit).await?
        }
        Command::Positions { id } => domain::positions(store, &id).await?,
        Command::Tail {
            id,
            stream,
            lines,
            follow,
            from_seq,
        } => {
            let start = match from_seq {
                Some(seq) => tail::Start::Seq(seq),
                None => tail::Start::Newest(lines),
            };
            tail::run(store, &id, &stream, start, follow, json).await?;
            return Ok(None);
        }
        Command::Nav { id, svg, png } => chart::nav(store, &id, svg, png).await?,
        Command::Export {
            args,
            all,
            format,
            since,
            force,
        } => {
            let opts = export::Options {
                format: export::Format::parse(&format)?,
                since: since.as_deref().map(records::parse_time).transpose()?,
                force,
            };
            match (all, args.as_slice()) {
                (true, [dir]) => export::all(store, std::path::Path::new(dir), opts).await?,
                (false, [id, dir]) => {
                    export::one(store, id, std::path::Path::new(dir), opts).await?
                }
                _ => return Err(CliError::Usage("export takes ID DIR, or --all DIR".into())),
            }
        }
        Command::Demo(_)
        | Command::Migrate { .. }
        | Command::Import { .. }
        | Command::Copy { .. }
        | Command::Serve { .. } => {
            return Err(CliError::Other("not a read command".into()));
        }
    };
    Ok(Some(report))
}
