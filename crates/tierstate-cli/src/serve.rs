//! `tierstate serve`: a read-only HTTP view of a database for operators — `/healthz`,
//! `/readyz`, `/metrics` (OpenMetrics text, one scrape target for every deployment),
//! server-rendered pages (`/`, `/d/ID`) that need no JavaScript but for their live journal
//! tail, and that tail as server-sent events (`/d/ID/tail/STREAM?from=N`). It opens the database
//! read-only, so no request can write; an optional bearer token guards every path; pages are
//! bounded; nothing outside the store is ever served.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rust_decimal::prelude::ToPrimitive;
use tierstate::accounting::{Ledger, LedgerQuery, Portfolio};
use tierstate::orders::OrderStore;
use tierstate::strategy::{StrategyState, StrategyStore};
use tierstate::{DeploymentId, JournalQuery, StateStore, StreamAddr};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::error::{CliError, Result};

/// Live tails served at once; more are refused (503) until one ends.
const MAX_TAILS: usize = 64;
/// Journal entries shown on a page before its live tail.
const TAIL_ROWS: usize = 20;

/// Ledger entries on a deployment's page.
const LEDGER_ROWS: usize = 50;
/// Deployments per page of the index.
const INDEX_ROWS: usize = 100;
/// Intents on a deployment's page.
const ORDER_ROWS: usize = 200;

/// What the server needs.
pub struct Options {
    /// `HOST:PORT` (port 0: any free port).
    pub listen: String,
    /// Requests must carry `Authorization: Bearer TOKEN` when set.
    pub token: Option<String>,
    /// `/readyz` fails if a deployment's last commit is older than this.
    pub stale_after: Option<Duration>,
    /// Shown on the pages and in `/readyz` (password masked).
    pub shown_url: String,
    /// The handle every read goes through: its metrics are the store's figures in `/metrics`.
    pub handle: tierstate::Tierstate,
}

/// Serves until the process is stopped. Prints `listening on http://ADDR` first.
///
/// # Errors
/// `Other` if the address cannot be bound.
pub fn run(rt: tokio::runtime::Handle, store: Arc<dyn StateStore>, opts: Options) -> Result<()> {
    let server = Server::http(&opts.listen)
        .map_err(|e| CliError::Other(format!("cannot listen on {}: {e}", opts.listen)))?;
    let addr = server
        .server_addr()
        .to_ip()
        .map_or_else(|| opts.listen.clone(), |a| a.to_string());
    println!("listening on http://{addr} (read-only: {})", opts.shown_url);
    let opts = Arc::new(opts);
    let tails = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A thread per request: a live tail holds its connection open.
    for req in server.incoming_requests() {
        let (rt, store, opts, tails) = (rt.clone(), store.clone(), opts.clone(), tails.clone());
        std::thread::spawn(move || {
            if let Some(tail) = tail_request(&opts, &req, &tails) {
                let w = req.into_writer();
                stream_tail(&rt, &store, tail, w);
                tails.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            let (status, kind, body) = handle(&rt, &store, &opts, &req);
            let response = Response::from_string(body)
                .with_status_code(status)
                .with_header(header("Content-Type", kind))
                .with_header(header("Cache-Control", "no-store"));
            let _ = req.respond(response);
        });
    }
    Ok(())
}

/// `GET /d/ID/tail/STREAM?from=N`, authorized and within the limit: the journal and the
/// first sequence number to send. `None` for any other request ([`handle`] answers it,
/// refusals included).
fn tail_request(
    opts: &Options,
    req: &Request,
    tails: &std::sync::atomic::AtomicUsize,
) -> Option<(StreamAddr, u64)> {
    let (path, query) = req.url().split_once('?').unwrap_or((req.url(), ""));
    let rest = path.strip_prefix("/d/")?;
    let (id, stream) = rest.split_once("/tail/")?;
    if !authorized(opts, req) || *req.method() != Method::Get {
        return None;
    }
    let addr = StreamAddr::new(id, stream).ok()?;
    let from = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("from="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    if tails.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_TAILS {
        tails.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return None;
    }
    Some((addr, from))
}

/// Server-sent events on the raw connection, one per journal entry (its JSON, as
/// `tail --json` prints it) from #N, then each new one as it commits (looked for every half
/// second), a comment every 15 s to keep the connection; flushed per batch. Ends when the
/// client goes; a damaged entry ends it with an `error` event naming it.
fn stream_tail(
    rt: &tokio::runtime::Handle,
    store: &Arc<dyn StateStore>,
    (addr, mut next): (StreamAddr, u64),
    mut w: Box<dyn std::io::Write + Send>,
) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    if w.write_all(head.as_bytes())
        .and_then(|()| w.flush())
        .is_err()
    {
        return;
    }
    let mut beat = std::time::Instant::now();
    loop {
        let mut out = String::new();
        match rt.block_on(store.read_journal(&addr, JournalQuery::from_seq(next, 100))) {
            Ok(p) if !p.entries.is_empty() => {
                for e in &p.entries {
                    let _ = write!(
                        out,
                        "id: {}\ndata: {}\n\n",
                        e.seq,
                        crate::tail::entry_json(e)
                    );
                    next = e.seq + 1;
                }
            }
            Ok(_) if beat.elapsed() > Duration::from_secs(15) => {
                beat = std::time::Instant::now();
                out.push_str(": keep-alive\n\n");
            }
            Ok(_) => {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            Err(e) => {
                let _ = write!(
                    out,
                    "event: error\ndata: {}\n\n",
                    tierstate::redact(&e.to_string())
                );
                let _ = w.write_all(out.as_bytes()).and_then(|()| w.flush());
                return;
            }
        }
        if w.write_all(out.as_bytes())
            .and_then(|()| w.flush())
            .is_err()
        {
            return;
        }
    }
}

/// Whether the request carries the token (or none is required).
fn authorized(opts: &Options, req: &Request) -> bool {
    let Some(token) = &opts.token else {
        return true;
    };
    let given = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned())
        .unwrap_or_default();
    same(given.as_bytes(), format!("Bearer {token}").as_bytes())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

const TEXT: &str = "text/plain; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Answer = (u16, &'static str, String);

fn handle(
    rt: &tokio::runtime::Handle,
    store: &Arc<dyn StateStore>,
    opts: &Options,
    req: &Request,
) -> Answer {
    if !authorized(opts, req) {
        eprintln!(
            "serve: 401 {} {} from {}",
            req.method(),
            req.url(),
            req.remote_addr()
                .map_or_else(|| "?".into(), |a| a.to_string())
        );
        return (
            401,
            TEXT,
            "401 unauthorized: send Authorization: Bearer TOKEN\n".into(),
        );
    }
    if *req.method() != Method::Get && *req.method() != Method::Head {
        return (405, TEXT, "405 read-only: only GET\n".into());
    }
    let (path, query) = req.url().split_once('?').unwrap_or((req.url(), ""));
    let r = match path {
        "/healthz" => Ok((200, TEXT, "ok\n".into())),
        "/readyz" => rt.block_on(readyz(store, opts)),
        "/metrics" => rt
            .block_on(metrics(store, &opts.handle))
            .map(|m| (200, OPENMETRICS, m)),
        "/" => match Cursors::parse(query) {
            Ok(c) => rt.block_on(index(store, opts, &c)).map(|h| (200, HTML, h)),
            Err(why) => Ok((400, TEXT, format!("400 {why}\n"))),
        },
        p if p.starts_with("/d/") && p.contains("/tail/") => Ok((
            503,
            TEXT,
            "503 too many live tails; try again later\n".into(),
        )),
        p if p.starts_with("/d/") => match (DeploymentId::new(&p[3..]), Cursors::parse(query)) {
            (Err(_), _) => Ok((404, TEXT, "404 no such deployment\n".into())),
            (Ok(_), Err(why)) => Ok((400, TEXT, format!("400 {why}\n"))),
            (Ok(id), Ok(c)) => rt.block_on(deployment(store, &id, &c)),
        },
        _ => Ok((404, TEXT, "404 not found\n".into())),
    };
    r.unwrap_or_else(|e| {
        (
            500,
            TEXT,
            format!("500 {}\n", tierstate::redact(&e.to_string())),
        )
    })
}

/// Where a page of a longer list starts: `?after=ID` (deployments), `?ledger=US-SEQ` (older
/// ledger entries) and `?orders=ID` (intents in id order after ID; empty: from the first).
#[derive(Debug, Default)]
struct Cursors {
    after: Option<DeploymentId>,
    ledger: Option<tierstate::accounting::LedgerCursor>,
    orders: Option<Option<String>>,
}

impl Cursors {
    /// The cursors of a query string; a malformed one is refused (a 400), never guessed.
    fn parse(query: &str) -> std::result::Result<Self, String> {
        let mut c = Cursors::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || format!("bad cursor {k}={v:?}");
            let v = &pct_decode(v).ok_or_else(bad)?;
            match k {
                "after" => c.after = Some(DeploymentId::new(v).map_err(|_| bad())?),
                "ledger" => {
                    let (us, seq) = v.split_once('-').ok_or_else(bad)?;
                    let time = us
                        .parse::<i64>()
                        .ok()
                        .and_then(chrono::DateTime::from_timestamp_micros)
                        .ok_or_else(bad)?;
                    let seq = seq.parse::<u64>().map_err(|_| bad())?;
                    c.ledger = Some(tierstate::accounting::LedgerCursor { time, seq });
                }
                "orders" if v.is_empty() => c.orders = Some(None),
                "orders" => {
                    tierstate::Name::key(v).map_err(|_| bad())?;
                    c.orders = Some(Some(v.to_owned()));
                }
                _ => {} // other parameters are not ours (a `limit` a scraper sends, say)
            }
        }
        Ok(c)
    }
}

/// `s` for a URL's query: every byte but `[A-Za-z0-9._~-]` as `%XX`.
fn pct_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A query value with its `%XX` escapes decoded (`None` for a bad escape or bytes that are
/// not UTF-8).
fn pct_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Compares in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One deployment's figures, read from its records.
struct Figures {
    id: DeploymentId,
    version: Option<u64>,
    last_commit: Option<chrono::DateTime<Utc>>,
    nav: Option<tierstate::accounting::NavFold>,
    open_orders: usize,
    fills: u64,
}

async fn figures(store: &Arc<dyn StateStore>, id: &DeploymentId) -> Result<Figures> {
    let state = store.get(id).await?;
    let nav = Portfolio::new(store.clone(), id).nav_summary().await?;
    let open_orders = OrderStore::new(store.clone(), id)
        .actuals(None, None)
        .await?
        .iter()
        .filter(|a| !a.order.status.is_terminal())
        .count();
    let fills = Ledger::new(store.clone(), id).stats().await?.count;
    Ok(Figures {
        id: id.clone(),
        version: state.as_ref().map(|s| s.version),
        last_commit: state.as_ref().map(|s| s.updated_at),
        nav: (nav.fold.points > 0).then_some(nav.fold),
        open_orders,
        fills,
    })
}

/// The newest value of each of a deployment's strategy metrics, by name: read for `/metrics`
/// only (pages and probes do not show them).
async fn latest_metrics(
    store: &Arc<dyn StateStore>,
    id: &DeploymentId,
) -> Result<Vec<(String, f64)>> {
    let strategy = StrategyStore::<StrategyState>::new(store.clone(), id);
    let mut out = Vec::new();
    for name in strategy.metric_names().await? {
        if let Some(p) = strategy.latest_metric(&name).await? {
            out.push((name, p.value));
        }
    }
    Ok(out)
}

async fn all(store: &Arc<dyn StateStore>) -> Result<Vec<Figures>> {
    let mut out = Vec::new();
    for id in crate::records::deployments(store).await? {
        out.push(figures(store, &id).await?);
    }
    Ok(out)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    deployment: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    deployment: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    backend: String,
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    backend: String,
    tier: String,
    outcome: String,
}

/// The name of the strategy metric a deployment records its venue errors under (a running
/// count); `/metrics` shows it as `tierstate_venue_errors_total`.
pub const VENUE_ERRORS_METRIC: &str = "venue_errors";

fn f(d: tierstate::accounting::Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

/// `/metrics`: OpenMetrics text, per deployment, then the store as this server's handle sees
/// it.
async fn metrics(store: &Arc<dyn StateStore>, handle: &tierstate::Tierstate) -> Result<String> {
    let figures = all(store).await?;
    let mut reg = Registry::with_prefix("tierstate");
    let gauge = |reg: &mut Registry, name: &str, help: &str| {
        let fam = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        reg.register(name, help, fam.clone());
        fam
    };
    let nav = gauge(
        &mut reg,
        "nav_usd",
        "Net asset value of the latest snapshot, USD",
    );
    let hwm = gauge(&mut reg, "high_water_mark_usd", "Highest NAV so far, USD");
    let drawdown = gauge(
        &mut reg,
        "drawdown_ratio",
        "Current drawdown from the high-water mark, 0..1",
    );
    let max_dd = gauge(
        &mut reg,
        "max_drawdown_ratio",
        "Largest drawdown so far, 0..1",
    );
    let age = gauge(
        &mut reg,
        "last_commit_age_seconds",
        "Seconds since the state was last committed",
    );
    let version = gauge(
        &mut reg,
        "state_version",
        "Version of the deployment's state",
    );
    let open = gauge(&mut reg, "open_orders", "Orders working on the venue");
    let fills = Family::<Labels, Counter>::default();
    reg.register(
        "fills",
        "Ledger entries recorded (fills and other actions)",
        fills.clone(),
    );
    let strategy = Family::<MetricLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(
        "strategy_metric",
        "Newest value of each metric a strategy records with its ticks",
        strategy.clone(),
    );
    let venue_errors = Family::<Labels, Counter>::default();
    reg.register(
        "venue_errors",
        "Venue calls that failed (timeouts, rejects, outages), as the strategy counts them",
        venue_errors.clone(),
    );
    let count = Gauge::<i64>::default();
    reg.register(
        "deployments",
        "Deployments holding any record",
        count.clone(),
    );
    count.set(figures.len() as i64);
    let now = Utc::now();
    for fig in &figures {
        let l = Labels {
            deployment: fig.id.to_string(),
        };
        if let Some(n) = &fig.nav {
            nav.get_or_create(&l).set(f(n.last_value));
            hwm.get_or_create(&l).set(f(n.high_water_mark));
            let dd = if n.high_water_mark.is_zero() {
                0.0
            } else {
                f((n.high_water_mark - n.last_value) / n.high_water_mark)
            };
            drawdown.get_or_create(&l).set(dd);
            max_dd.get_or_create(&l).set(f(n.max_drawdown_pct) / 100.0);
        }
        if let Some(t) = fig.last_commit {
            age.get_or_create(&l)
                .set((now - t).num_milliseconds() as f64 / 1000.0);
        }
        if let Some(v) = fig.version {
            version.get_or_create(&l).set(v as f64);
        }
        open.get_or_create(&l).set(fig.open_orders as f64);
        fills.get_or_create(&l).inc_by(fig.fills);
        for (name, value) in &latest_metrics(store, &fig.id).await? {
            let m = MetricLabels {
                deployment: fig.id.to_string(),
                metric: name.clone(),
            };
            strategy.get_or_create(&m).set(*value);
            if name == VENUE_ERRORS_METRIC && value.is_finite() && *value >= 0.0 {
                venue_errors.get_or_create(&l).inc_by(*value as u64);
            }
        }
    }
    let ids: Vec<DeploymentId> = figures.iter().map(|f| f.id.clone()).collect();
    writer_metrics(&mut reg, store, &ids).await?;
    store_metrics(&mut reg, store, handle);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg)
        .map_err(|e| CliError::Other(format!("cannot encode metrics: {e}")))?;
    Ok(out)
}

/// Each deployment's writer's own figures, as its process last published them
/// ([`tierstate::StoreFigures`]): HOT hit ratio, WARM outcomes and latency, retries, and
/// commits per transaction. A deployment whose writer publishes none has no such series.
async fn writer_metrics(
    reg: &mut Registry,
    store: &Arc<dyn StateStore>,
    ids: &[DeploymentId],
) -> Result<()> {
    type FGauge = Gauge<f64, std::sync::atomic::AtomicU64>;
    let gauge = |reg: &mut Registry, name: &str, help: &str| {
        let g = Family::<Labels, FGauge>::default();
        reg.register(name, help, g.clone());
        g
    };
    let counter = |reg: &mut Registry, name: &str, help: &str| {
        let c = Family::<Labels, Counter>::default();
        reg.register(name, help, c.clone());
        c
    };
    let age = gauge(
        reg,
        "writer_figures_age_seconds",
        "Age of the writer's published figures",
    );
    let hit = gauge(
        reg,
        "writer_hot_hit_ratio",
        "The writer's HOT hits over HOT lookups",
    );
    let read_p50 = gauge(
        reg,
        "writer_warm_read_p50_latency_seconds",
        "Median latency of the writer's recent WARM reads",
    );
    let read_p99 = gauge(
        reg,
        "writer_warm_read_p99_latency_seconds",
        "99th percentile latency of the writer's recent WARM reads",
    );
    let write_p50 = gauge(
        reg,
        "writer_warm_write_p50_latency_seconds",
        "Median latency of the writer's recent WARM writes",
    );
    let write_p99 = gauge(
        reg,
        "writer_warm_write_p99_latency_seconds",
        "99th percentile latency of the writer's recent WARM writes",
    );
    let group = gauge(
        reg,
        "writer_commit_group_size",
        "Commits per transaction the writer's grouped commits shared",
    );
    let ops = counter(
        reg,
        "writer_warm_operations",
        "The writer's WARM operations completed",
    );
    let conflicts = counter(
        reg,
        "writer_conflicts",
        "The writer's compare-and-swap conflicts",
    );
    let errors = counter(reg, "writer_errors", "The writer's failed WARM operations");
    let retries = counter(
        reg,
        "writer_retries",
        "Retries the writer's process waited for after lost races",
    );
    let now = Utc::now();
    for id in ids {
        let Some(w) = tierstate::StoreFigures::read(&**store, id).await? else {
            continue;
        };
        let l = Labels {
            deployment: id.to_string(),
        };
        age.get_or_create(&l)
            .set((now - w.at).num_milliseconds() as f64 / 1000.0);
        if let Some(r) = w.hot_hit_ratio() {
            hit.get_or_create(&l).set(r);
        }
        if let Some(g) = w.mean_group_size() {
            group.get_or_create(&l).set(g);
        }
        let latencies = [
            (&read_p50, w.read_p50_us),
            (&read_p99, w.read_p99_us),
            (&write_p50, w.write_p50_us),
            (&write_p99, w.write_p99_us),
        ];
        for (family, us) in latencies {
            if let Some(us) = us {
                family.get_or_create(&l).set(us as f64 / 1e6);
            }
        }
        ops.get_or_create(&l).inc_by(w.warm_ok);
        conflicts.get_or_create(&l).inc_by(w.warm_conflicts);
        errors.get_or_create(&l).inc_by(w.warm_errors);
        retries.get_or_create(&l).inc_by(w.retries);
    }
    Ok(())
}

/// The store's figures as this server's handle measured its own reads: operations by tier
/// and outcome, latency quantiles, HOT's hit ratio, and whether the change feed is live.
fn store_metrics(reg: &mut Registry, store: &Arc<dyn StateStore>, handle: &tierstate::Tierstate) {
    let backend = store.backend().to_owned();
    let ops = Family::<OutcomeLabels, Counter>::default();
    reg.register(
        "store_operations",
        "Operations through this server's handle, by tier and outcome",
        ops.clone(),
    );
    let p50 = Family::<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(
        "store_p50_latency_seconds",
        "Median latency of this server's recent operations, by tier",
        p50.clone(),
    );
    let p99 = Family::<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(
        "store_p99_latency_seconds",
        "99th percentile latency of this server's recent operations, by tier",
        p99.clone(),
    );
    let hit = Family::<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    reg.register(
        "store_hot_hit_ratio",
        "HOT hits over HOT lookups (absent before the first lookup)",
        hit.clone(),
    );
    for t in handle.metrics().summary() {
        let tier = t.tier.to_string().to_lowercase();
        let outcomes = match t.tier {
            // A handle without HOT (this server's) has no HOT figures to show.
            tierstate::Tier::Hot if t.total == 0 => continue,
            tierstate::Tier::Hot => vec![("hit", t.hits), ("miss", t.misses)],
            tierstate::Tier::Warm => vec![
                ("ok", t.ok),
                ("conflict", t.conflicts),
                ("not_found", t.not_found),
                ("error", t.errors),
            ],
        };
        for (outcome, n) in outcomes {
            ops.get_or_create(&OutcomeLabels {
                backend: backend.clone(),
                tier: tier.clone(),
                outcome: outcome.into(),
            })
            .inc_by(n);
        }
        let labels = StoreLabels {
            backend: backend.clone(),
            tier: tier.clone(),
        };
        for (family, d) in [(&p50, t.p50), (&p99, t.p99)] {
            if let Some(d) = d {
                family.get_or_create(&labels).set(d.as_secs_f64());
            }
        }
        if let Some(r) = t.hit_rate {
            hit.get_or_create(&labels).set(r);
        }
    }
    // Only a store shared by processes (PostgreSQL) has a change feed.
    if let Some(feed) = store.changes() {
        let live = Gauge::<i64>::default();
        reg.register(
            "store_change_feed_connected",
            "1 while the store's change feed (PostgreSQL LISTEN) delivers other processes' commits",
            live.clone(),
        );
        live.set(i64::from(feed.live));
    }
}

/// `/readyz`: the store answers, its schema is current, and (with `--stale-after`) every
/// deployment committed recently.
async fn readyz(store: &Arc<dyn StateStore>, opts: &Options) -> Result<Answer> {
    let figures = match all(store).await {
        Ok(f) => f,
        Err(e) => {
            let body =
                serde_json::json!({"ready": false, "store": tierstate::redact(&e.to_string())});
            return Ok((503, JSON, body.to_string()));
        }
    };
    let now = Utc::now();
    let mut stale = Vec::new();
    let mut ages = serde_json::Map::new();
    for fig in &figures {
        if let Some(t) = fig.last_commit {
            let age = (now - t).num_milliseconds() as f64 / 1000.0;
            ages.insert(fig.id.to_string(), age.into());
            if opts
                .stale_after
                .is_some_and(|limit| age > limit.as_secs_f64())
            {
                stale.push(fig.id.to_string());
            }
        }
    }
    let ready = stale.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "store": opts.shown_url,
        "deployments": figures.len(),
        "last_commit_age_seconds": ages,
        "stale": stale,
    });
    Ok((if ready { 200 } else { 503 }, JSON, body.to_string()))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}</style></head>\
         <body>\n{body}</body></html>\n",
        t = esc(title)
    )
}

/// `/`: the deployments with their version, last commit and NAV, a page at a time.
async fn index(store: &Arc<dyn StateStore>, opts: &Options, c: &Cursors) -> Result<String> {
    let mut ids: Vec<DeploymentId> = crate::records::deployments(store)
        .await?
        .into_iter()
        .filter(|id| c.after.as_ref().is_none_or(|a| id > a))
        .collect();
    let more = ids.len() > INDEX_ROWS;
    ids.truncate(INDEX_ROWS);
    let mut figures = Vec::with_capacity(ids.len());
    for id in &ids {
        figures.push(self::figures(store, id).await?);
    }
    let mut b = format!(
        "<h1>tierstate</h1>\n<p>{} (read-only)</p>\n<table id=\"deployments\">\n\
         <tr><th>deployment</th><th>version</th><th>last commit</th><th>NAV</th>\
         <th>open orders</th><th>fills</th></tr>\n",
        esc(&opts.shown_url)
    );
    for fig in &figures {
        let _ = writeln!(
            b,
            "<tr><td><a href=\"/d/{id}\">{id}</a></td><td>{v}</td><td>{t}</td><td>{nav}</td>\
             <td>{o}</td><td>{fills}</td></tr>",
            id = esc(fig.id.as_str()),
            v = fig.version.map_or("-".into(), |v| v.to_string()),
            t = fig.last_commit.map_or("-".into(), crate::out::time),
            nav = fig
                .nav
                .as_ref()
                .map_or("-".into(), |n| n.last_value.to_string()),
            o = fig.open_orders,
            fills = fig.fills,
        );
    }
    b.push_str("</table>\n");
    if let (true, Some(last)) = (more, ids.last()) {
        let _ = writeln!(
            b,
            "<p><a href=\"/?after={}\">next →</a></p>",
            pct_encode(last.as_str())
        );
    }
    Ok(page("tierstate", &b))
}

/// Intents beside their orders: open ones first (intents still wanted, or with an order still
/// working: what an operator looks for), or with `by_id`, a page in id order after its key.
async fn orders_table(
    b: &mut String,
    store: &Arc<dyn StateStore>,
    id: &DeploymentId,
    by_id: Option<&Option<String>>,
) -> Result<()> {
    let o = OrderStore::new(store.clone(), id);
    let (intents, mut actuals, title) = match by_id {
        Some(after) => {
            let page = o.intent_page(after.as_deref(), ORDER_ROWS).await?;
            let mut actuals = std::collections::BTreeMap::new();
            for i in &page {
                if let Some(a) = o.actual(&i.intent.intent_id).await? {
                    actuals.insert(i.intent.intent_id.clone(), a);
                }
            }
            (page, actuals, "Intents and orders (by id)")
        }
        None => {
            let actuals: std::collections::BTreeMap<String, _> = o
                .actuals(None, None)
                .await?
                .into_iter()
                .filter_map(|a| a.order.intent_id.clone().map(|i| (i, a)))
                .collect();
            let mut intents = o.intents(None, None).await?;
            intents.sort_by_key(|i| {
                let working = actuals
                    .get(&i.intent.intent_id)
                    .is_some_and(|a| !a.order.status.is_terminal());
                let active = i.intent.status == tierstate::orders::IntentStatus::Active;
                !(working || active)
            });
            (intents, actuals, "Intents and orders (open first)")
        }
    };
    let _ = writeln!(
        b,
        "<h2>{title}</h2>\n<table id=\"orders\"><tr><th>intent</th><th>symbol</th>\
         <th>side</th><th>price</th><th>size</th><th>intent status</th><th>order status</th>\
         <th>filled</th></tr>"
    );
    let more = intents.len() >= ORDER_ROWS;
    let mut last = None;
    for i in intents.into_iter().take(ORDER_ROWS) {
        let a = actuals.remove(&i.intent.intent_id);
        let s = &i.intent.spec;
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.intent.intent_id),
            esc(&s.symbol),
            esc(&crate::domain::name(&s.side)),
            s.price.map_or("-".into(), |p| p.to_string()),
            s.size,
            esc(&crate::domain::name(&i.intent.status)),
            a.as_ref()
                .map_or("-".into(), |a| esc(&crate::domain::name(&a.order.status))),
            a.as_ref()
                .map_or("-".into(), |a| a.order.filled().to_string()),
        );
        last = Some(i.intent.intent_id);
    }
    b.push_str("</table>\n");
    match (by_id, last) {
        (Some(_), Some(last)) if more => {
            let _ = writeln!(
                b,
                "<p><a href=\"/d/{}?orders={}\">next →</a></p>",
                esc(id.as_str()),
                pct_encode(&last)
            );
        }
        (None, _) if more => {
            let _ = writeln!(
                b,
                "<p><a href=\"/d/{}?orders=\">every intent, in id order →</a></p>",
                esc(id.as_str())
            );
        }
        _ => {}
    }
    Ok(())
}

/// The strategy's latest positions snapshot as a table (nothing if it has none).
async fn positions_table(
    b: &mut String,
    store: &Arc<dyn StateStore>,
    id: &DeploymentId,
) -> Result<()> {
    let s = StrategyStore::<StrategyState>::new(store.clone(), id);
    let Some(snap) = s.positions(None).await? else {
        return Ok(());
    };
    let _ = writeln!(
        b,
        "<h2>Positions (as of {})</h2>\n<table id=\"positions\"><tr><th>id</th><th>chain</th>\
         <th>type</th><th>token</th><th>amount</th><th>entry</th><th>mark</th>\
         <th>unrealized</th><th>value USD</th></tr>",
        crate::out::time(snap.time)
    );
    let opt = |d: Option<tierstate::positions::Decimal>| d.map_or("-".into(), |d| d.to_string());
    for r in snap.positions.iter().take(ORDER_ROWS) {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            esc(&r.id),
            esc(&r.chain),
            esc(&r.kind.to_string()),
            esc(&r.token),
            r.amount,
            opt(r.entry_price),
            opt(r.mark_price),
            opt(r.unrealized_pnl),
            r.value_usd,
        );
    }
    b.push_str("</table>\n");
    Ok(())
}

/// `/d/ID`: the NAV chart, positions, intents beside orders, the newest ledger entries and
/// the live tail of the strategy's trades.
async fn deployment(store: &Arc<dyn StateStore>, id: &DeploymentId, c: &Cursors) -> Result<Answer> {
    if !crate::records::deployments(store).await?.contains(id) {
        return Ok((404, TEXT, "404 no such deployment\n".into()));
    }
    let fig = figures(store, id).await?;
    let mut b = format!(
        "<h1>{}</h1>\n<p><a href=\"/\">all deployments</a></p>\n",
        esc(id.as_str())
    );
    if let Some(n) = &fig.nav {
        let _ = writeln!(
            b,
            "<p id=\"nav\">NAV {} · high-water mark {} · max drawdown {} ({}%)</p>",
            n.last_value, n.high_water_mark, n.max_drawdown, n.max_drawdown_pct
        );
    }
    if let Some(svg) = crate::chart::nav_svg(store, id).await? {
        b.push_str("<div id=\"chart\">");
        b.push_str(&svg);
        b.push_str("</div>\n");
    }
    positions_table(&mut b, store, id).await?;
    orders_table(&mut b, store, id, c.orders.as_ref()).await?;
    b.push_str("<h2>Ledger (newest first)</h2>\n<table id=\"ledger\"><tr><th>#</th>\
                <th>time</th><th>intent</th><th>in</th><th>out</th><th>price</th><th>ok</th></tr>\n");
    let query = LedgerQuery {
        before: c.ledger,
        ..LedgerQuery::newest(LEDGER_ROWS)
    };
    let page_ = Ledger::new(store.clone(), id).entries(&query).await?;
    for e in &page_.entries {
        let x = &e.entry;
        let amt = |t: &Option<String>, a: &Option<tierstate::accounting::Decimal>| match (t, a) {
            (Some(t), Some(a)) => format!("{a} {}", esc(t)),
            _ => "-".into(),
        };
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            crate::out::time(x.time),
            esc(&x.intent_type),
            amt(&x.token_in, &x.amount_in),
            amt(&x.token_out, &x.amount_out),
            x.effective_price.map_or("-".into(), |p| p.to_string()),
            if x.success { "yes" } else { "no" },
        );
    }
    b.push_str("</table>\n");
    if let Some(next) = &page_.next {
        let _ = writeln!(
            b,
            "<p><a href=\"/d/{}?ledger={}-{}\">older entries →</a></p>",
            esc(id.as_str()),
            next.time.timestamp_micros(),
            next.seq
        );
    }
    // The live tail of the strategy's trades (or the first journal): the newest entries as
    // HTML, then each new one as it commits (the page's one script).
    // Asked for by name: a deployment can hold thousands of journals (one per order).
    let trades = tierstate::Name::stream(tierstate::strategy::TRADES)?;
    let chosen = if store
        .journal_info(&StreamAddr::new(id.as_str(), trades.as_str())?)
        .await?
        .is_some()
    {
        Some(trades)
    } else {
        store.streams(id, None, 1).await?.into_iter().next()
    };
    if let Some(stream) = &chosen {
        let addr = StreamAddr::new(id.as_str(), stream.as_str())?;
        let last = store.journal_info(&addr).await?.map_or(0, |i| i.last_seq);
        let from = (last + 1).saturating_sub(TAIL_ROWS as u64).max(1);
        let page_ = store
            .read_journal(&addr, JournalQuery::from_seq(from, TAIL_ROWS))
            .await?;
        let _ = writeln!(
            b,
            "<h2>Journal {} (live)</h2>\n<pre id=\"tail\">",
            esc(stream.as_str())
        );
        for e in &page_.entries {
            b.push_str(&esc(&crate::tail::entry_json(e).to_string()));
            b.push('\n');
        }
        let url = format!(
            "/d/{}/tail/{}?from={}",
            id.as_str(),
            stream.as_str(),
            last + 1
        );
        let _ = writeln!(
            b,
            "</pre>\n<pre id=\"live\"></pre>\n<script>new EventSource({}).onmessage = (e) => {{ \
             document.getElementById(\"live\").textContent += e.data + \"\\n\"; }};</script>",
            // JSON text, with `<` escaped so no id can close the script.
            serde_json::Value::String(url)
                .to_string()
                .replace('<', "\\u003c")
        );
    }
    Ok((200, HTML, page(id.as_str(), &b)))
}
