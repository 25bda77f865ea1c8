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
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// A chunked HTTP body's content.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("chunk {size:?}"));
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
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
    // A strategy that counts its venue errors as a metric.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ts = tierstate::Tierstate::open(&db).await.unwrap();
        let fx = tierstate::DeploymentId::new("fx").unwrap();
        let s = ts.strategy::<tierstate::strategy::StrategyState>(&fx);
        s.append_metrics(common::t(900), &[("venue_errors", 3.0)])
            .await
            .unwrap();
        // It reads (the last metric it wrote) and publishes its own figures, as the demo does
        // every 100 ticks.
        let last = s.latest_metric("venue_errors").await.unwrap();
        assert_eq!(last.map(|m| m.value), Some(3.0));
        let batch = tierstate::WriteBatch::new().with(&ts.plan_figures(&fx).unwrap());
        ts.commit(batch).await.unwrap();
        ts.close().await;
    });
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
        "tierstate_strategy_metric{deployment=\"fx\",metric=\"nav\"}",
        "tierstate_venue_errors_total{deployment=\"fx\"} 3\n",
        "tierstate_store_operations_total{backend=\"sqlite\",tier=\"warm\",outcome=\"ok\"}",
        "tierstate_store_p99_latency_seconds{backend=\"sqlite\",tier=\"warm\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(metrics.trim_end().ends_with("# EOF"));
    // The writer's own figures, as it published them: its append counted, none failed.
    let value = |name: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("tierstate_writer_warm_operations_total{deployment=\"fx\"}") >= 1.0);
    assert_eq!(
        value("tierstate_writer_errors_total{deployment=\"fx\"}"),
        0.0
    );
    assert_eq!(
        value("tierstate_writer_conflicts_total{deployment=\"fx\"}"),
        0.0
    );
    assert!(value("tierstate_writer_retries_total{deployment=\"fx\"}") >= 0.0);
    assert!(value("tierstate_writer_figures_age_seconds{deployment=\"fx\"}") >= 0.0);
    assert!(value("tierstate_writer_warm_write_p99_latency_seconds{deployment=\"fx\"}") > 0.0);
    assert!(value("tierstate_writer_warm_read_p50_latency_seconds{deployment=\"fx\"}") > 0.0);
    promtool_accepts(&metrics);

    let (code, index) = get(&s.addr, "/");
    assert_eq!(code, 200);
    assert!(index.contains("<a href=\"/d/fx\">fx</a>"), "{index}");
    let (code, page) = get(&s.addr, "/d/fx");
    assert_eq!(code, 200);
    for part in [
        "<svg",
        "id=\"positions\"",
        "id=\"orders\"",
        "id=\"ledger\"",
        "id=\"nav\"",
        "id=\"tail\"",
    ] {
        assert!(page.contains(part), "{part} missing from the page");
    }
    // Everything is in the HTML; the one script only follows the journal.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains("new EventSource(\"/d/fx/tail/strategy.trades?from="));
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
fn the_live_tail_sends_another_process_commits_as_they_happen() {
    let (dir, db) = fixture_db();
    let s = serve(&db, &[]);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        conn,
        "GET /d/fx/tail/strategy.trades?from=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(conn);
    let mut seen = String::new();
    let mut until = |want: &str, seen: &mut String| {
        while !seen.contains(want) {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("the stream ended before {want}: {seen}");
            }
            seen.push_str(&line);
        }
    };
    until("text/event-stream", &mut seen);
    until("id: 1\n", &mut seen);
    // Another writer appends: its entry arrives on the open stream.
    let db_file = dir.path().join("fx.db");
    append_entry(&db_file, "live-entry");
    until("\"live-entry\"", &mut seen);
    assert!(seen.contains("data: {"), "{seen}");
}

/// Appends one entry (`{"note": NOTE}`) to `fx`'s trades from a store of its own sharing the
/// file: another writer's commit, as the served page sees it.
fn append_entry(db_file: &std::path::Path, note: &str) {
    use tierstate::{Append, Sharing, SqliteConfig, SqliteStore, StateStore, StreamAddr};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(db_file).sharing(Sharing::Shared))
            .await
            .unwrap();
        let value = serde_json::json!({ "note": note });
        store
            .append(Append::new(
                StreamAddr::new("fx", "strategy.trades").unwrap(),
                chrono::Utc::now(),
                value.as_object().unwrap().clone(),
            ))
            .await
            .unwrap();
        store.close().await;
    });
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

/// On PostgreSQL, `/metrics` says whether the change feed is live (it is, on a healthy
/// server) and labels the store's figures with the backend; promtool accepts the output.
#[test]
fn metrics_on_postgres_show_the_change_feed() {
    let (_dir, db) = fixture_db();
    let Some(pg) = common::pg_url(&format!("serve_{}", std::process::id())) else {
        return;
    };
    let r = common::tierstate(&["copy", "--from", &db, "--to", &pg]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = serve(&pg, &[]);
    let (code, metrics) = get(&s.addr, "/metrics");
    assert_eq!(code, 200, "{metrics}");
    for want in [
        "tierstate_store_change_feed_connected 1\n",
        "tierstate_store_operations_total{backend=\"postgres\",tier=\"warm\",outcome=\"ok\"}",
        "tierstate_nav_usd{deployment=\"fx\"}",
    ] {
        assert!(metrics.contains(want), "{want} missing:\n{metrics}");
    }
    assert!(!metrics.contains("devpass"));
    promtool_accepts(&metrics);
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
    let Some(chromium) = chromium() else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    // The page's live tail keeps a connection open: the dump is taken after 4 s of loading
    // (`--timeout`), and the browser is killed if it ever outlives a minute.
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--timeout=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{addr}/d/fx"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let guard = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    });
    let out = child.wait_with_output().unwrap();
    drop(guard);
    let dom = String::from_utf8_lossy(&out.stdout);
    for part in ["<svg", "<table id=\"orders\">", "<table id=\"ledger\">"] {
        assert!(
            dom.contains(part),
            "the browser's DOM lacks {part}: {dom:.500}"
        );
    }
}

/// The page in headless Chromium follows the journal: entries another writer commits after
/// the page loaded appear in its live list, without a reload (read through the DevTools
/// protocol while the page stays open).
#[test]
fn the_page_in_a_browser_shows_new_entries_without_a_reload() {
    let Some(chromium) = chromium() else {
        return;
    };
    let (dir, db) = fixture_db();
    let s = serve(&db, &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let profile = tempfile::tempdir().unwrap();
    let mut browser = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--remote-debugging-port={port}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://{}/d/fx", s.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let page = devtools_page(port);
        let (mut ws, _) = tungstenite::connect(page.as_str()).expect("the page's DevTools socket");
        if let tungstenite::stream::MaybeTlsStream::Plain(t) = ws.get_ref() {
            t.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
        }
        let mut id = 0;
        let mut eval = |expr: &str| -> String {
            id += 1;
            let call = serde_json::json!({
                "id": id, "method": "Runtime.evaluate",
                "params": {"expression": expr, "returnByValue": true},
            });
            ws.send(tungstenite::Message::text(call.to_string()))
                .unwrap();
            loop {
                let msg = ws.read().unwrap();
                let Ok(v) = serde_json::from_str::<serde_json::Value>(msg.to_text().unwrap_or(""))
                else {
                    continue;
                };
                if v["id"] == id {
                    return v["result"]["result"]["value"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                }
            }
        };
        // The page has loaded with its tables and chart.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while eval("document.getElementById('live') ? 'ready' : ''") != "ready" {
            assert!(
                std::time::Instant::now() < deadline,
                "the page never loaded"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(
            eval("String(document.querySelectorAll('svg').length > 0)"),
            "true"
        );
        assert_eq!(eval("String(!!document.getElementById('orders'))"), "true");
        let before = eval("document.getElementById('live').textContent");
        assert!(!before.contains("live-entry"), "{before}");
        // Another writer commits; the open page shows it.
        append_entry(&dir.path().join("fx.db"), "live-entry");
        loop {
            let live = eval("document.getElementById('live').textContent");
            if live.contains("live-entry") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing arrived live: {live:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let _ = browser.kill();
    let _ = browser.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// The WebSocket address of the browser's page target, once DevTools answers.
fn devtools_page(port: u16) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
            // DevTools keeps the connection open: read until the list is whole (or a pause).
            c.set_read_timeout(Some(std::time::Duration::from_millis(500)))
                .unwrap();
            let _ = write!(
                c,
                "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            );
            let mut out = String::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.push_str(&String::from_utf8_lossy(&buf[..n]));
                if out.trim_end().ends_with(']') {
                    break;
                }
            }
            if let Some((_, body)) = out.split_once("\r\n\r\n")
                && let Ok(serde_json::Value::Array(targets)) = serde_json::from_str(body)
                && let Some(ws) = targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                return ws.to_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "DevTools never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Headless Chromium's command (Debian's `chromium`; `.ci/run` installs it), or `None`, said
/// on stderr, where it is not installed and not required.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("TIERSTATE_REQUIRE_TOOLS").is_none(),
            "chromium is required here"
        );
        eprintln!("skipped the browser check: chromium is not installed");
    }
    found
}

/// Every page on the fixture database, as served (insta snapshots; commit times, the temporary
/// directory and this run's latencies and ages masked): the index, a deployment's page and
/// `/metrics`.
#[test]
fn pages_match_their_snapshots() {
    let (dir, db) = fixture_db();
    let s = serve(&db, &[]);
    let mut settings = insta::Settings::clone_current();
    let shown = dir.path().display().to_string();
    settings.add_filter(&common::regex_escape(&shown), "[dir]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[time]");
    settings.add_filter(r"(_seconds\{[^}]*\}) [0-9.e-]+", "$1 [s]");
    settings.add_filter(r"(tierstate_store_operations_total\{[^}]*\}) \d+", "$1 [n]");
    settings.add_filter(r"(/tail/[^?]+\?from=)\d+", "${1}[seq]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (name, path) in [
            ("page_index", "/"),
            ("page_fx", "/d/fx"),
            ("page_metrics", "/metrics"),
        ] {
            let (code, body) = get(&s.addr, path);
            assert_eq!(code, 200, "{path}");
            // A metric family's samples come in no fixed order: sorted within each family.
            let body = if path == "/metrics" {
                sorted_samples(&body)
            } else {
                body
            };
            insta::assert_snapshot!(name, body);
        }
    });
}

/// OpenMetrics text with each family's sample lines sorted.
fn sorted_samples(text: &str) -> String {
    let mut out = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            run.sort_unstable();
            out.append(&mut run);
            out.push(line);
        } else {
            run.push(line);
        }
    }
    run.sort_unstable();
    out.append(&mut run);
    out.join("\n") + "\n"
}

/// Longer lists come a page at a time, each with a link to the next: deployments (100 a
/// page), ledger entries (50, older ones) and intents (200, in id order); a malformed cursor
/// is a 400, not a guess.
#[test]
fn long_lists_page_with_cursors() {
    use tierstate::accounting::{ExecutionMode, LedgerEntry};
    use tierstate::orders::{OrderIntent, OrderSpec, Side};
    let (_dir, db) = fixture_db();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ts = tierstate::Tierstate::open(&db).await.unwrap();
        for i in 0..101 {
            let id = tierstate::DeploymentId::new(format!("z{i:03}")).unwrap();
            let state = serde_json::json!({"i": i}).as_object().unwrap().clone();
            ts.state().create(&id, state).await.unwrap();
        }
        let fx = tierstate::DeploymentId::new("fx").unwrap();
        let ledger = ts.ledger(&fx);
        for n in 0..60 {
            let e = LedgerEntry::new(
                format!("x-{n}"),
                "fx",
                ExecutionMode::Paper,
                common::t(1000 + n),
                "MM_FILL",
                true,
            )
            .unwrap();
            ledger.append(&e).await.unwrap();
        }
        let orders = ts.orders(&fx);
        for n in 0..205 {
            let spec = OrderSpec::limit(
                "ETH-USD",
                Side::Buy,
                "2000".parse().unwrap(),
                "1".parse().unwrap(),
            )
            .unwrap();
            let intent =
                OrderIntent::new(format!("k {n:03}&"), "fx", spec, common::t(900)).unwrap();
            orders.create_intent(&intent).await.unwrap();
        }
        ts.close().await;
    });
    let s = serve(&db, &[]);
    let link = |page: &str, text: &str| -> String {
        let at = page
            .find(text)
            .unwrap_or_else(|| panic!("no {text:?} link"));
        let start = page[..at].rfind("href=\"").unwrap() + 6;
        page[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    };
    // Deployments: 100, then the rest.
    let (code, first) = get(&s.addr, "/");
    assert_eq!(code, 200);
    assert_eq!(first.matches("<tr><td><a href=\"/d/").count(), 100);
    let (_, second) = get(&s.addr, &link(&first, "next →"));
    assert_eq!(second.matches("<tr><td><a href=\"/d/").count(), 103 - 100);
    assert!(second.contains("/d/z100") && !second.contains("next →"));
    // The ledger: the newest 50 of 63, then older ones.
    let (_, page) = get(&s.addr, "/d/fx");
    // The rows of one table of a page.
    let rows = |p: &str, table: &str| {
        let at = format!("id=\"{table}\"");
        let body = p.split(at.as_str()).nth(1).unwrap();
        body.split("</table>")
            .next()
            .unwrap()
            .matches("<tr><td>")
            .count()
    };
    let ledger_rows = |p: &str| rows(p, "ledger");
    assert_eq!(ledger_rows(&page), 50);
    let (code, older) = get(&s.addr, &link(&page, "older entries →"));
    assert_eq!(code, 200);
    assert_eq!(ledger_rows(&older), 13);
    assert!(older.contains("<td>1</td>"), "down to the first entry");
    // Intents: a link to every intent in id order, 200 a page; keys are escaped in links.
    let (_, all) = get(&s.addr, &link(&page, "every intent, in id order →"));
    assert!(all.contains("Intents and orders (by id)"));
    let (code, rest) = get(&s.addr, &link(&all, "next →"));
    assert_eq!(code, 200);
    let order_rows = |p: &str| rows(p, "orders");
    assert_eq!(
        order_rows(&all) + order_rows(&rest),
        205 + 2,
        "every intent once"
    );
    assert!(rest.contains("k 204&amp;"));
    for bad in [
        "/d/fx?ledger=abc",
        "/d/fx?ledger=1-x",
        "/d/fx?ledger=99999999999999999999-1",
        "/?after=%ZZ",
        "/d/fx?orders=%00",
        "/d/fx?orders=%FF",
    ] {
        assert_eq!(get(&s.addr, bad).0, 400, "{bad}");
    }
}
