//! `tierstate serve` over real HTTP: health, readiness, OpenMetrics (checked by promtool when
//! installed), pages (loaded by headless Chromium when installed), a bearer token, and
//! hostile requests answered with 4xx and nothing from outside the store.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::fixture_db;

/// A running `tierstate serve`, killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &str, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tierstate"))
        .args(["--db", db, "serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env_remove("TIERSTATE_SERVE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Served { child, addr }
}

/// `(status, body)` of one request.
fn request(addr: &str, method: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path, &[])
}

fn file_bytes(db: &str) -> Vec<u8> {
    std::fs::read(db.strip_prefix("sqlite:").unwrap()).unwrap()
}

#[test]
fn health_metrics_and_pages_are_served_and_nothing_is_written() {
    let (_dir, db) = fixture_db();
    let before = file_bytes(&db);
    let s = serve(&db, &[]);
    assert_eq!(get(&s.addr, "/healthz"), (200, "ok\n".into()));
    let (code, ready) = get(&s.addr, "/readyz");
    assert_eq!(code, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["ready"], true);
    assert!(ready["last_commit_age_seconds"]["fx"].as_f64().unwrap() >= 0.0);

    let (code, metrics) = get(&s.addr, "/metrics");
    assert_eq!(code, 200);
    for name in [
        "tierstate_nav_usd{deployment=\"fx\"}",
        "tierstate_high_water_mark_usd{deployment=\"fx\"}",
        "tierstate_drawdown_ratio{deployment=\"fx\"}",
        "tierstate_last_commit_age_seconds{deployment=\"fx\"}",
        "tierstate_open_orders{deployment=\"fx\"}",
        "tierstate_fills_total{deployment=\"fx\"}",
        "tierstate_deployments ",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(metrics.trim_end().ends_with("# EOF"));
    promtool_accepts(&metrics);

    let (code, index) = get(&s.addr, "/");
    assert_eq!(code, 200);
    assert!(index.contains("<a href=\"/d/fx\">fx</a>"), "{index}");
    let (code, page) = get(&s.addr, "/d/fx");
    assert_eq!(code, 200);
    for part in ["<svg", "id=\"orders\"", "id=\"ledger\"", "id=\"nav\""] {
        assert!(page.contains(part), "{part} missing from the page");
    }
    assert!(!page.contains("<script"), "pages need no JavaScript");
    browser_sees_the_page(&s.addr);
    drop(s);
    assert_eq!(file_bytes(&db), before, "serving wrote nothing");
}

#[test]
fn hostile_requests_get_4xx_and_nothing_from_outside_the_store() {
    let (_dir, db) = fixture_db();
    let s = serve(&db, &[]);
    for path in [
        "/../../etc/passwd",
        "/d/../../etc/passwd",
        "/d/..%2F..%2Fetc%2Fpasswd",
        "/d/nobody",
        "/d/",
        "/metrics/../../etc/passwd",
        "/favicon.ico",
    ] {
        let (code, body) = get(&s.addr, path);
        assert_eq!(code, 404, "{path}: {body}");
        assert!(!body.contains("root:"), "{path} served a file");
    }
    let long = format!("/d/{}", "a".repeat(20_000));
    let (code, _) = get(&s.addr, &long);
    assert!((400..500).contains(&code), "a huge path: {code}");
    for method in ["POST", "PUT", "DELETE"] {
        assert_eq!(request(&s.addr, method, "/", &[]).0, 405, "{method}");
    }
    // Query strings (cursors and such) never widen what is served.
    assert_eq!(get(&s.addr, "/metrics?limit=999999999999").0, 200);
}

#[test]
fn a_bearer_token_guards_every_path_and_is_never_logged() {
    let (_dir, db) = fixture_db();
    let mut s = serve(&db, &["--token", "s3cret-token"]);
    for path in ["/healthz", "/metrics", "/", "/d/fx"] {
        assert_eq!(get(&s.addr, path).0, 401, "{path} without a token");
        assert_eq!(
            request(&s.addr, "GET", path, &["Authorization: Bearer wrong"]).0,
            401
        );
        assert_eq!(
            request(
                &s.addr,
                "GET",
                path,
                &["Authorization: Bearer s3cret-token"]
            )
            .0,
            200,
            "{path} with the token"
        );
    }
    let _ = s.child.kill();
    let mut log = String::new();
    s.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("401"), "refusals are logged: {log}");
    assert!(!log.contains("s3cret"), "the token is never logged: {log}");
}

#[test]
fn readyz_names_deployments_whose_last_commit_is_stale() {
    let (_dir, db) = fixture_db();
    let s = serve(&db, &["--stale-after", "0"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, body) = get(&s.addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stale = v["stale"].as_array().unwrap();
    assert!(stale.contains(&serde_json::json!("fx")), "{body}");
    assert_eq!(v["ready"], false);
}

/// `promtool check metrics` on the output (Debian's `prometheus`; `.ci/run` installs it).
fn promtool_accepts(metrics: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("TIERSTATE_REQUIRE_TOOLS").is_none(),
            "promtool is required here"
        );
        eprintln!("skipped promtool: not installed (Debian package prometheus)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        return;
    }
    // Debian's promtool (2.42) lints in the Prometheus text format, where an OpenMetrics
    // counter's `NAME_total` sample reads as a metric of its own without help text. That one
    // finding is accepted for a family whose HELP is there; anything else fails.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        let family = line
            .strip_suffix(" no help text")
            .and_then(|m| m.strip_suffix("_total"));
        let helped = family.is_some_and(|f| metrics.contains(&format!("# HELP {f} ")));
        assert!(helped, "promtool: {said}");
    }
}

/// Headless Chromium loads the page: its DOM has the chart and the tables.
fn browser_sees_the_page(addr: &str) {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        assert!(
            std::env::var_os("TIERSTATE_REQUIRE_TOOLS").is_none(),
            "chromium is required here"
        );
        eprintln!("skipped the browser check: chromium is not installed");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{addr}/d/fx"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    for part in ["<svg", "<table id=\"orders\">", "<table id=\"ledger\">"] {
        assert!(
            dom.contains(part),
            "the browser's DOM lacks {part}: {dom:.500}"
        );
    }
}
