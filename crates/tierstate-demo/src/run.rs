//! The run: options checked before anything is created, the database and venue opened, ticks
//! until the total or Ctrl-C, then the audit.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rust_decimal::Decimal;
use tierstate::orders::{FaultPlan, SimExchange};

use crate::error::{DemoError, Result};
use crate::maker::{MarketMaker, TickOutcome};
use tierstate::StoreUrl as Url;

/// How a run ended (its status line and audit are printed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finished {
    /// The ticks committed in all.
    pub ticks: u64,
    /// Where its NAV chart belongs (`--chart`, or beside the database); `None` before the
    /// first tick.
    pub chart: Option<PathBuf>,
    /// Stopped by Ctrl-C (every committed tick is kept).
    pub interrupted: bool,
    /// What the audit found that disagrees (the venue's fills against the books), if anything.
    pub disagreement: Option<String>,
}

/// The demo's options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Run until the strategy has done this many ticks in all (a resumed run continues).
    #[arg(long, default_value_t = 1_000)]
    pub ticks: u64,
    /// Seed of the market (fixed for a database once it has started).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The deployment id.
    #[arg(long, default_value = "mm-demo")]
    pub deployment: String,
    /// Where the simulated venue keeps its book (default: beside the database).
    #[arg(long)]
    pub venue: Option<PathBuf>,
    /// Where the NAV chart is written at the end (default: beside the database).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Probability of each venue fault per call (timeouts after accept, rejects, late
    /// deliveries, lost cancel answers, outages).
    #[arg(long, default_value_t = 0.0)]
    pub faults: f64,
    /// Milliseconds to wait between ticks (0: as fast as the disk allows).
    #[arg(long, default_value_t = 0)]
    pub tick_ms: u64,
}

impl DemoArgs {
    /// Where the NAV chart goes for a database at `url`.
    pub fn chart_path(&self, url: &Url) -> PathBuf {
        self.chart
            .clone()
            .unwrap_or_else(|| beside(url, "-nav.svg"))
    }
}

/// A file beside the database (or in the working directory for PostgreSQL).
fn beside(url: &Url, suffix: &str) -> PathBuf {
    match url.file() {
        Some(f) => {
            let stem = f
                .file_stem()
                .map_or_else(|| "tierstate".into(), |s| s.to_string_lossy().into_owned());
            f.with_file_name(format!("{stem}{suffix}"))
        }
        None => PathBuf::from(format!("tierstate-demo{suffix}")),
    }
}

/// Runs (or resumes) the demo until `--ticks` or Ctrl-C.
///
/// # Errors
/// `Store` if the database fails or is damaged; `Usage` for bad options; `Io` for the venue
/// file.
pub async fn run(url: &Url, args: &DemoArgs) -> Result<Finished> {
    // Every argument is checked before anything is opened or created.
    if !(0.0..=0.5).contains(&args.faults) {
        return Err(DemoError::Usage("--faults must be within 0..=0.5".into()));
    }
    let id = tierstate::DeploymentId::new(&args.deployment)
        .map_err(|e| DemoError::Usage(format!("--deployment: {e}")))?;
    let venue_file = args
        .venue
        .clone()
        .unwrap_or_else(|| beside(url, ".venue.json"));
    let chart = args.chart_path(url);
    match chart.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") || e.eq_ignore_ascii_case("svg") => {}
        _ => {
            return Err(DemoError::Usage(format!(
                "--chart {}: name the file .svg or .png (the format follows the name)",
                chart.display()
            )));
        }
    }
    // The database is this process's alone while it runs (a second demo is refused), and so
    // is the venue's file.
    // The front door: every write of the strategy, its orders, ledger and portfolio goes
    // through the handle's one commit path.
    let ts = tierstate::Tierstate::builder()
        .store_url(url)?
        .open()
        .await?;
    let lease = ts.lease(&id, LEASE_TTL).await?;
    let plan = if args.faults > 0.0 {
        FaultPlan::uniform(args.seed, args.faults)
    } else {
        FaultPlan::none()
    };
    let existed = venue_file.exists();
    let venue = Arc::new(
        SimExchange::durable(&venue_file, plan, Duration::ZERO).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                DemoError::Other(format!("{e}: is another demo running on it?"))
            } else {
                DemoError::io(&venue_file, e)
            }
        })?,
    );
    let mut mm = MarketMaker::open(&ts, args, venue.clone(), lease).await?;
    mm.check_venue(&venue_file, existed).await?;
    let resumed = mm.tick_no();
    eprintln!(
        "demo: {} on {} (venue {}), {}",
        args.deployment,
        url.shown(),
        venue_file.display(),
        if resumed == 0 {
            "starting".to_owned()
        } else {
            format!("resuming after tick {resumed}")
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let bar = ProgressBar::new(args.ticks);
    let live = std::io::stderr().is_terminal();
    if !live {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{bar:24} tick {pos}/{len}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(resumed);
    let started = Instant::now();
    let mut done = 0u64;
    while mm.tick_no() < args.ticks && !stop.load(Ordering::SeqCst) {
        let last: TickOutcome = mm.tick().await?;
        done += 1;
        bar.set_position(mm.tick_no());
        let line = last.status();
        bar.set_message(line.clone());
        if !live && mm.tick_no() % (args.ticks / 10).max(1) == 0 {
            eprintln!("tick {}/{}  {line}", mm.tick_no(), args.ticks);
        }
        if args.tick_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.tick_ms)).await;
        }
    }
    bar.finish_and_clear();
    let interrupted = stop.load(Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64();
    if interrupted {
        eprintln!(
            "demo: stopped by Ctrl-C after tick {} (every committed tick is kept; run again to resume)",
            mm.tick_no()
        );
    }
    if done == 0 && resumed > args.ticks {
        println!(
            "{}: already at tick {}, past --ticks {} (the total to reach; pass a larger one to go on)",
            args.deployment,
            mm.tick_no(),
            args.ticks
        );
    } else if done == 0 && resumed == args.ticks {
        println!(
            "{}: tick {}/{} (reached before this run; --ticks is the total to reach)",
            args.deployment,
            mm.tick_no(),
            args.ticks
        );
    } else {
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        println!(
            "{}: tick {}/{} ({} this run in {:.1} s, {:.0} ticks/s)",
            args.deployment,
            mm.tick_no(),
            args.ticks,
            done,
            secs,
            rate
        );
    }
    if mm.tick_no() == 0 {
        mm.release().await;
        return Ok(Finished {
            ticks: 0,
            chart: None,
            interrupted,
            disagreement: None,
        });
    }
    let audit = mm.summary().await;
    mm.release().await;
    let (summary, disagreement) = audit?;
    print!("{summary}");
    Ok(Finished {
        ticks: mm.tick_no(),
        chart: Some(chart),
        interrupted,
        disagreement,
    })
}

/// How long the demo's writer lease lasts unless a tick renews it (a demo killed on another
/// machine blocks the deployment this long; on this one, a restart takes over at once).
const LEASE_TTL: Duration = Duration::from_secs(10);

/// The CLI commands to look at what a run left, each runnable as printed.
pub fn next_commands(url: &Url, id: &str) -> Vec<String> {
    let db = match url {
        _ if url.shown() == "sqlite:tierstate-demo.db" => String::new(),
        Url::Sqlite(_) | Url::Redb(_) => format!(" --db {}", url.shown()),
        Url::Postgres { .. } if std::env::var_os("TIERSTATE_DB").is_some() => String::new(),
        // The URL is shown with its password masked: put it back, or export TIERSTATE_DB.
        Url::Postgres { .. } => format!(" --db '{}'", url.shown()),
        _ => format!(" --db {}", url.shown()),
    };
    [
        format!("inspect {id}"),
        "verify".to_owned(),
        format!("orders {id} --open"),
        format!("ledger {id}"),
        format!("positions {id}"),
        format!("nav {id} --svg nav.svg"),
    ]
    .into_iter()
    .map(|c| format!("tierstate{db} {c}"))
    .collect()
}

/// Decimal with thousands kept plain, rounded for people.
pub fn money(d: Decimal) -> String {
    d.round_dp(2).to_string()
}
