//! The Python package's tests: the package built into a virtualenv under `target/` with
//! pinned tools, then pytest against the same PostgreSQL as the Rust tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tools the package is built and tested with (one line, kept in the venv to know when
/// it must be refreshed).
const PINS: [&str; 6] = [
    "maturin==1.16.0",
    "pytest==9.2.0",
    "pytest-asyncio==1.5.0",
    "hypothesis==6.170.27",
    // Independent readers of `tierstate export --format parquet` (tests/test_export.py).
    "duckdb==2.0.1",
    "polars==2.1.0",
];

/// pytest's counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Builds the package and runs its tests. `Ok(None)`: skipped, and why was said (an error
/// instead under `required`).
///
/// # Errors
/// A failing step, or (under `required`) a missing Python.
pub fn test(
    root: &Path,
    env: &[(String, String)],
    required: bool,
) -> Result<Option<Counts>, String> {
    let skip = |why: String| -> Result<Option<Counts>, String> {
        if required {
            return Err(format!("--require-python: {why}"));
        }
        eprintln!("xtask: ************************************************************");
        eprintln!("xtask: PYTHON TESTS SKIPPED: {why}");
        eprintln!("xtask: ************************************************************");
        Ok(None)
    };
    let Some(python) = find_python() else {
        return skip("no python3 >= 3.11 on PATH".into());
    };
    let venv = root.join("target/pyvenv");
    let bin = venv.join("bin");
    let pins_file = venv.join("tierstate-pins.txt");
    let pins = PINS.join("\n");
    if std::fs::read_to_string(&pins_file).ok().as_deref() != Some(pins.as_str()) {
        if !bin.join("python").exists() {
            let ok = Command::new(&python)
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return skip(format!(
                    "{} -m venv failed (is python3-venv installed?)",
                    python.display()
                ));
            }
        }
        let ok = Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PINS)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return skip(format!("pip could not install {}", PINS.join(" ")));
        }
        std::fs::write(&pins_file, &pins).map_err(|e| format!("{}: {e}", pins_file.display()))?;
    }
    let crate_dir = root.join("crates/tierstate-py");
    let mut develop = Command::new(bin.join("maturin"));
    develop
        .args(["develop", "--quiet"])
        .current_dir(&crate_dir)
        .env("VIRTUAL_ENV", &venv);
    crate::run(&mut develop)?;
    let mut pytest = Command::new(bin.join("python"));
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(&crate_dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // The CLI `cargo test` just built (with Parquet), for the export test.
        .env("TIERSTATE_CLI", root.join("target/debug/tierstate"));
    eprintln!("xtask: running {}", crate::shown(&pytest));
    let out = pytest
        .output()
        .map_err(|e| format!("cannot start pytest: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let counts = counts(&text);
    if !out.status.success() {
        return Err(format!(
            "pytest failed ({} passed, {} failed)",
            counts.passed,
            counts.failed.max(1)
        ));
    }
    Ok(Some(counts))
}

/// A `python3` of at least 3.11 on PATH.
fn find_python() -> Option<PathBuf> {
    for name in ["python3", "python"] {
        let ok = Command::new(name)
            .args([
                "-c",
                "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(PathBuf::from(name));
        }
    }
    None
}

/// pytest's summary line, e.g. `31 passed, 1 skipped in 7.13s`.
fn counts(out: &str) -> Counts {
    let mut c = Counts::default();
    let Some(line) = out
        .lines()
        .rev()
        .find(|l| l.contains(" in ") && (l.contains("passed") || l.contains("failed")))
    else {
        return c;
    };
    for part in line.split(',') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(word)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.trim_start_matches('=').trim().parse::<u64>() else {
            continue;
        };
        match word {
            "passed" => c.passed = n,
            "failed" | "errors" | "error" => c.failed += n,
            "skipped" => c.skipped = n,
            _ => {}
        }
    }
    c
}

/// The Python comparison bench: a Python >= 3.12 venv (almanak needs it) under
/// `target/pybench` with almanak 2.29.2 and the release wheel of this package, then
/// `bench/compare.py`.
///
/// # Errors
/// A failing build or run; a missing Python 3.12 or an almanak that will not install is a
/// skip, said plainly.
pub fn bench(root: &Path, quick: bool) -> Result<(), String> {
    let python = ["python3.12", "python3.13", "python3"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .env("PYENV_VERSION", "3.12.1")
                .args([
                    "-c",
                    "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)",
                ])
                .status()
                .is_ok_and(|s| s.success())
        });
    let Some(python) = python else {
        eprintln!(
            "xtask: bench-python skipped: almanak 2.29.2 needs Python >= 3.12 and none is on PATH"
        );
        return Ok(());
    };
    let venv = root.join("target/pybench");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        crate::run(
            Command::new(&python)
                .env("PYENV_VERSION", "3.12.1")
                .args(["-m", "venv"])
                .arg(&venv),
        )?;
    }
    let almanak = Command::new(bin.join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "almanak==2.29.2",
            PINS[0],
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !almanak {
        eprintln!("xtask: almanak 2.29.2 could not be installed: its column is left out");
    }
    let wheels = root.join("target/pybench-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    crate::run(
        Command::new(bin.join("maturin"))
            .args(["build", "--release", "--quiet", "-o"])
            .arg(&wheels)
            .current_dir(root.join("crates/tierstate-py")),
    )?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("maturin built no wheel")?;
    crate::run(
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--force-reinstall", "--no-deps"])
            .arg(&wheel),
    )?;
    let mut run = Command::new(bin.join("python"));
    run.arg(root.join("crates/tierstate-py/bench/compare.py"));
    if quick {
        run.arg("--quick");
    }
    crate::run(&mut run)
}
