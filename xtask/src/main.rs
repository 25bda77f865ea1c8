//! Project automation. `cargo xtask test` runs the whole suite; `cargo xtask bench` prints the
//! benchmark table; `cargo xtask crash` runs the kill -9 harness for as many cycles as asked.

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod pg;
mod python;

#[derive(Parser)]
#[command(about = "tierstate project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Runs the whole test suite (unit, conformance, manager, crash and contention tests).
    Test {
        /// Kill -9 cycles per backend for the crash harness.
        #[arg(long, default_value_t = 50)]
        crash_cycles: u32,
        /// Fail instead of skipping the PostgreSQL tests when no server can be started.
        #[arg(long)]
        require_postgres: bool,
        /// Fail instead of skipping the Python package's tests when Python or its tools
        /// cannot be set up.
        #[arg(long)]
        require_python: bool,
    },
    /// The Python drop-in beside almanak 2.29.2's state manager, in one run (a Python 3.12
    /// venv under target/ with both installed; skipped with the reason if that cannot be made).
    BenchPython {
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
    },
    /// Runs the benchmarks and prints one table (ops/s, p50, p99 beside their baselines).
    Bench {
        /// Also write the table as JSON to this file.
        #[arg(long)]
        json: Option<String>,
        /// Fewer iterations (for a quick look; figures are noisier).
        #[arg(long)]
        quick: bool,
        /// Only the rows whose function name contains this (repeatable).
        #[arg(long)]
        only: Vec<String>,
        /// Only these backends: sqlite, redb, postgres (repeatable).
        #[arg(long)]
        backend: Vec<String>,
    },
    /// Upgrades a database's own schema in place (`--dry-run` shows the steps).
    Migrate {
        /// sqlite, redb or postgres.
        #[arg(long)]
        backend: String,
        /// File path or connection URL.
        #[arg(long)]
        url: String,
        /// PostgreSQL schema.
        #[arg(long)]
        schema: Option<String>,
        /// Show the steps, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rewrites every state to the latest payload schema of the demo registry (see the
    /// migrate_states example; a real deployment calls `tierstate::migrate_states` with its own
    /// registry).
    MigrateStates {
        /// How many states to seed in a new file.
        #[arg(long, default_value_t = 100_000)]
        states: u64,
        /// The SQLite file.
        #[arg(long, default_value = "migrate-demo.db")]
        path: String,
    },
    /// Runs the kill -9 crash harness for N cycles per backend (PostgreSQL on a throwaway
    /// cluster, as `test` does) and prints each backend's kill count.
    Crash {
        /// Cycles per backend.
        #[arg(long, default_value_t = 200)]
        cycles: u32,
        /// Seed for the kill timing (random if absent; always printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Fail instead of skipping PostgreSQL when no server can be started.
        #[arg(long)]
        require_postgres: bool,
    },
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The command line without its environment, and with URL passwords masked.
fn shown(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&redact(&a.to_string_lossy()));
    }
    s
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact(arg: &str) -> String {
    let Some(start) = arg.find("://") else {
        return arg.to_owned();
    };
    let rest = &arg[start + 3..];
    match (rest.find(':'), rest.find('@')) {
        (Some(colon), Some(at)) if colon < at => {
            format!("{}{}:***{}", &arg[..start + 3], &rest[..colon], &rest[at..])
        }
        _ => arg.to_owned(),
    }
}

/// The CLI's database URL for `--backend B --url U [--schema S]`.
fn migrate_url(backend: &str, url: &str, schema: Option<&str>) -> Result<String, String> {
    match (backend, schema) {
        ("sqlite" | "redb", None) => Ok(format!("{backend}:{url}")),
        ("sqlite" | "redb", Some(_)) => Err("--schema is for postgres only".into()),
        ("postgres", None) => Ok(url.to_owned()),
        ("postgres", Some(s)) => Ok(format!(
            "{url}{}schema={s}",
            if url.contains('?') { '&' } else { '?' }
        )),
        (other, _) => Err(format!(
            "unknown backend {other:?}: sqlite, redb or postgres"
        )),
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {}", shown(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", shown(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {status}", shown(cmd)))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Test {
            crash_cycles,
            require_postgres,
            require_python,
        } => test(crash_cycles, require_postgres, require_python),
        Task::Bench {
            json,
            quick,
            only,
            backend,
        } => bench(json, quick, &only, &backend),
        Task::BenchPython { quick } => python::bench(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("..").as_path(),
            quick,
        ),
        Task::Crash {
            cycles,
            seed,
            require_postgres,
        } => crash(cycles, seed, require_postgres),
        Task::Migrate {
            backend,
            url,
            schema,
            dry_run,
        } => migrate_url(&backend, &url, schema.as_deref()).and_then(|db| {
            // The operator CLI's `migrate`: one implementation for both entry points.
            let mut cmd = cargo();
            cmd.args([
                "run",
                "--quiet",
                "-p",
                "tierstate-cli",
                "--",
                "--db",
                &db,
                "migrate",
            ]);
            if dry_run {
                cmd.arg("--dry-run");
            }
            run(&mut cmd)
        }),
        Task::MigrateStates { states, path } => run(cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "tierstate",
                "--example",
                "migrate_states",
                "--",
            ])
            .args([states.to_string(), path])),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test(crash_cycles: u32, require_postgres: bool, require_python: bool) -> Result<(), String> {
    // The facade must build with only the features a consumer names; `redb` alone compiles no
    // SQLite at all.
    for features in ["sqlite", "redb", "hot,redb"] {
        let args = [
            "check",
            "-p",
            "tierstate",
            "--no-default-features",
            "--features",
            features,
        ];
        run(cargo().args(args))?;
    }
    let tree = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "tree",
            "-p",
            "tierstate",
            "--no-default-features",
            "--features",
            "redb",
        ])
        .args(["-e", "normal", "--prefix", "none"])
        .output()
        .map_err(|e| format!("cargo tree: {e}"))?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    if tree.lines().any(|l| l.contains("sqlite")) {
        return Err("the redb-only facade build pulls in SQLite".into());
    }
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--features", "tierstate-cli/parquet"])
        .env("TIERSTATE_CRASH_CYCLES", crash_cycles.to_string());
    let _cluster = postgres_for(&mut cmd, require_postgres)?;
    let totals = run_counting(&mut cmd)?;
    // The Python package, against the same server.
    let env: Vec<(String, String)> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = python::test(&root, &env, require_python)?;
    // One closing line with the totals of every test binary, so the last line of the run is
    // the whole suite's result rather than the last (possibly empty) doc-test block.
    let py = py.unwrap_or_default();
    println!(
        "xtask: {} passed, {} failed, {} skipped (Rust {} passed; Python {} passed, {} skipped)",
        totals.0 + py.passed,
        totals.1 + py.failed,
        totals.2 + py.skipped,
        totals.0,
        py.passed,
        py.skipped
    );
    if totals.0 == 0 {
        return Err("no test ran".into());
    }
    Ok(())
}

/// Points `cmd` at a PostgreSQL server for its tests: `TEST_DATABASE_URL` if set, else a
/// throwaway cluster from the installed binaries (kept alive by the returned handle). Without
/// one it fails under `require_postgres`, and otherwise says loudly that those tests skip.
fn postgres_for(cmd: &mut Command, require_postgres: bool) -> Result<Option<pg::Cluster>, String> {
    if require_postgres {
        cmd.env("TIERSTATE_REQUIRE_POSTGRES", "1");
    }
    if std::env::var_os("TEST_DATABASE_URL").is_some() {
        eprintln!("xtask: PostgreSQL tests use TEST_DATABASE_URL");
        return Ok(None);
    }
    match pg::Cluster::start()? {
        Some(c) => {
            eprintln!(
                "xtask: started a throwaway PostgreSQL on 127.0.0.1:{}",
                c.port
            );
            cmd.env("TEST_DATABASE_URL", &c.url)
                .env("TIERSTATE_PG_BIN", c.bin())
                .env("TIERSTATE_PG_DATA", c.data_dir())
                .env("TIERSTATE_PG_OPTIONS", c.server_options())
                .env(
                    "TIERSTATE_PG_AS_POSTGRES",
                    if c.as_postgres() { "1" } else { "0" },
                );
            Ok(Some(c))
        }
        None if require_postgres => Err("--require-postgres: no PostgreSQL server binaries found \
                    (/usr/lib/postgresql/*/bin); install the `postgresql` package"
            .into()),
        None => {
            eprintln!("xtask: ************************************************************");
            eprintln!("xtask: NO POSTGRESQL SERVER BINARIES FOUND: the PostgreSQL tests");
            eprintln!("xtask: will be SKIPPED. Install `postgresql` or set TEST_DATABASE_URL.");
            eprintln!("xtask: ************************************************************");
            Ok(None)
        }
    }
}

/// Runs `cmd`, echoing its stdout, and adds up the `test result:` lines of libtest.
fn run_counting(cmd: &mut Command) -> Result<(u64, u64, u64), String> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: running {}", shown(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", shown(cmd)))?;
    let mut totals = (0, 0, 0);
    let mut failed = Vec::new();
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading test output: {e}"))?;
        println!("{line}");
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            failed.push(name.to_owned());
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(['.', ';'])
                    .map(str::trim)
                    .find_map(|part| part.strip_suffix(word).and_then(|n| n.trim().parse().ok()))
                    .unwrap_or(0)
            };
            totals.0 += count("passed");
            totals.1 += count("failed");
            totals.2 += count("ignored");
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {}: {e}", shown(cmd)))?;
    if !status.success() {
        println!(
            "xtask: {} passed, {} failed, {} skipped",
            totals.0,
            totals.1.max(1),
            totals.2
        );
        // Named again at the end: a long run's log may be cut, and its last lines are read first.
        if !failed.is_empty() {
            println!("xtask: failed: {}", failed.join(", "));
        }
        return Err(format!("{} failed: {status}", shown(cmd)));
    }
    Ok(totals)
}

fn bench(
    json: Option<String>,
    quick: bool,
    only: &[String],
    backend: &[String],
) -> Result<(), String> {
    // PostgreSQL rows run on loopback against a durable throwaway cluster (fsync on), unless
    // TEST_DATABASE_URL names a server.
    let cluster = if std::env::var_os("TEST_DATABASE_URL").is_some() {
        None
    } else {
        pg::Cluster::start()?
    };
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-p",
        "tierstate-benches",
        "--bin",
        "bench-table",
        "--",
    ]);
    if let Some(path) = json {
        cmd.args(["--json", &path]);
    }
    if quick {
        cmd.arg("--quick");
    }
    for o in only {
        cmd.args(["--only", o]);
    }
    for b in backend {
        cmd.args(["--backend", b]);
    }
    if let Some(c) = &cluster {
        cmd.env("TEST_DATABASE_URL", &c.url);
    }
    run(&mut cmd)
}

fn crash(cycles: u32, seed: Option<u64>, require_postgres: bool) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "tierstate-tests",
        "--test",
        "crash",
        "--",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("TIERSTATE_CRASH_CYCLES", cycles.to_string());
    if let Some(seed) = seed {
        cmd.env("TIERSTATE_CRASH_SEED", seed.to_string());
    }
    let _cluster = postgres_for(&mut cmd, require_postgres)?;
    eprintln!("xtask: running {}", shown(&cmd));
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", shown(&cmd)))?;
    // The harness reports on stderr: "crash harness (NAME): N kills survived; …" per backend,
    // "SKIPPED: …" for a backend it could not run.
    let mut kills: Vec<(String, String)> = Vec::new();
    let mut skipped = 0;
    for line in BufReader::new(child.stderr.take().expect("piped stderr")).lines() {
        let line = line.map_err(|e| format!("reading the harness output: {e}"))?;
        eprintln!("{line}");
        if let Some(rest) = line.strip_prefix("crash harness (")
            && let Some((name, rest)) = rest.split_once("): ")
            && let Some((n, _)) = rest.split_once(" kills survived")
        {
            kills.push((name.to_owned(), n.to_owned()));
        }
        if line.starts_with("SKIPPED") {
            skipped += 1;
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the harness: {e}"))?;
    println!("xtask crash summary:");
    for backend in ["sqlite", "redb", "postgres"] {
        match kills.iter().find(|(n, _)| n == backend) {
            Some((_, n)) => println!("  {backend:<9} {n} kill -9 cycles survived"),
            None => println!("  {backend:<9} SKIPPED: not run (0 kills)"),
        }
    }
    if !status.success() {
        return Err(format!("the crash harness failed: {status}"));
    }
    if kills.len() < 3 {
        let why = format!("{} of 3 backends ran ({skipped} skipped)", kills.len());
        return if require_postgres {
            Err(why)
        } else {
            eprintln!("xtask: WARNING: {why}; a skipped backend is not a pass");
            Ok(())
        };
    }
    Ok(())
}
