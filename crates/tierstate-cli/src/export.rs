//! `export ID DIR` (or `export --all DIR`, every deployment in the same five files with a
//! `deployment` column): trades, positions, metrics, NAV and ledger as CSV or NDJSON files,
//! oldest first, optionally since a time, for analysis elsewhere. Money is written as decimal
//! text, never through a float.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tierstate::accounting::{Ledger, LedgerQuery, Portfolio};
use tierstate::strategy::{
    METRIC_PREFIX, POSITIONS, PositionsSnapshot, StrategyState, StrategyStore,
};
use tierstate::{JournalQuery, Name, StateStore, StreamAddr};

use crate::chart::series;
use crate::error::{CliError, Result};
use crate::out::Report;
use crate::records::{deployment, deployments, require_deployment, streams};

#[cfg(feature = "parquet")]
mod parquet;

/// Entries read per page.
const PAGE: usize = 5_000;

/// The files an export writes, in order (without their extension).
const FILES: [&str; 5] = ["trades", "positions", "metrics", "nav", "ledger"];

/// How an export writes its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, a header row first.
    Csv,
    /// One JSON object per line, keyed by column; money and quantities as decimal text.
    Ndjson,
    /// Parquet (feature `parquet`): decimals as `DECIMAL(38, s)`, times as UTC microseconds.
    Parquet,
}

impl Format {
    /// Parses `--format`.
    ///
    /// # Errors
    /// `Usage` naming the formats built.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(Self::Csv),
            "ndjson" => Ok(Self::Ndjson),
            "parquet" if cfg!(feature = "parquet") => Ok(Self::Parquet),
            "parquet" => Err(CliError::Usage(
                "this build has no Parquet: build tierstate-cli with --features parquet".into(),
            )),
            other => Err(CliError::Usage(format!(
                "unknown export format {other:?}: csv, ndjson or parquet"
            ))),
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
        }
    }
}

/// What an export writes and over what.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The file format.
    pub format: Format,
    /// Only rows at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Overwrite files an earlier export left.
    pub force: bool,
}

impl Options {
    fn keeps(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        self.since.is_none_or(|s| t >= s)
    }
}

/// Where a sheet's rows go.
enum Out {
    Csv(Box<csv::Writer<std::fs::File>>),
    /// The column names, then one object per row.
    Ndjson(std::io::BufWriter<std::fs::File>, Vec<String>),
}

/// A time with microseconds (two events in one millisecond stay apart and in order).
fn time_us(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One CSV file being written under a temporary name in its directory; renamed into place by
/// [`Sheet::finish`] only once every file is complete, and removed if dropped before that.
struct Sheet {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    w: Option<Out>,
    rows: u64,
    names: Vec<String>,
    kinds: Vec<Kind>,
    /// The deployment written first on each row (`export --all`), if there is that column.
    lead: Option<Option<String>>,
    /// Parquet: the CSV written first, rewritten as Parquet into `tmp` once complete.
    csv_tmp: Option<std::path::PathBuf>,
}

/// What a column's values have all been so far: what `schema.json` types it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No value yet.
    Empty,
    /// Numbers: the most digits before and after the point.
    Number { int: u32, scale: u32 },
    /// Anything else.
    Text,
}

impl Kind {
    fn with(self, cell: &str) -> Self {
        if cell.is_empty() {
            return self;
        }
        let digits = cell.strip_prefix('-').unwrap_or(cell);
        let (i, f) = digits.split_once('.').unwrap_or((digits, ""));
        let numeric = !i.is_empty()
            && i.bytes().all(|b| b.is_ascii_digit())
            && f.bytes().all(|b| b.is_ascii_digit())
            && (f.is_empty() != digits.contains('.'));
        let (int, scale) = (i.len() as u32, f.len() as u32);
        match self {
            Self::Text => Self::Text,
            _ if !numeric => Self::Text,
            Self::Empty => Self::Number { int, scale },
            Self::Number { int: a, scale: b } => Self::Number {
                int: a.max(int),
                scale: b.max(scale),
            },
        }
    }

    /// The SQL type (DuckDB's spelling) that holds every value exactly: never a float.
    fn sql(self, column: &str) -> String {
        match self {
            _ if column == "time" => "TIMESTAMPTZ".into(),
            Self::Number { int, scale: 0 } if int <= 18 => "BIGINT".into(),
            Self::Number { int, scale } if int + scale <= 38 => format!("DECIMAL(38, {scale})"),
            _ => "VARCHAR".into(),
        }
    }
}

impl Sheet {
    fn create(dir: &Path, base: &str, header: &[&str], format: Format, lead: bool) -> Result<Self> {
        let with_lead: Vec<&str> = if lead {
            std::iter::once("deployment")
                .chain(header.iter().copied())
                .collect()
        } else {
            header.to_vec()
        };
        let header = with_lead.as_slice();
        let name = format!("{base}.{}", format.ext());
        let path = dir.join(&name);
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let csv_tmp = (format == Format::Parquet)
            .then(|| dir.join(format!(".{name}.csv.tmp-{}", std::process::id())));
        let first = csv_tmp.as_ref().unwrap_or(&tmp);
        let file = std::fs::File::create(first).map_err(|e| CliError::io(first, e))?;
        let out = match format {
            Format::Csv | Format::Parquet => {
                let mut w = csv::Writer::from_writer(file);
                w.write_record(header).map_err(|e| csv_error(&tmp, e))?;
                Out::Csv(Box::new(w))
            }
            Format::Ndjson => Out::Ndjson(
                std::io::BufWriter::new(file),
                header.iter().map(|h| (*h).to_owned()).collect(),
            ),
        };
        Ok(Self {
            tmp,
            path,
            w: Some(out),
            rows: 0,
            names: header.iter().map(|h| (*h).to_owned()).collect(),
            kinds: vec![Kind::Empty; header.len()],
            lead: lead.then_some(None),
            csv_tmp,
        })
    }

    fn row(&mut self, cells: &[String]) -> Result<()> {
        let led: Vec<String>;
        let cells = match &self.lead {
            Some(id) => {
                led = std::iter::once(id.clone().unwrap_or_default())
                    .chain(cells.iter().cloned())
                    .collect();
                led.as_slice()
            }
            None => cells,
        };
        self.rows += 1;
        for (k, c) in self.kinds.iter_mut().zip(cells) {
            *k = k.with(c);
        }
        let tmp = self.tmp.clone();
        match &mut self.w {
            Some(Out::Csv(w)) => w.write_record(cells).map_err(|e| csv_error(&tmp, e)),
            Some(Out::Ndjson(w, names)) => {
                // Every value as its text (exact decimals); an empty cell is null.
                let obj: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .zip(cells)
                    .map(|(n, c)| {
                        let v = if c.is_empty() {
                            serde_json::Value::Null
                        } else {
                            serde_json::Value::String(c.clone())
                        };
                        (n.clone(), v)
                    })
                    .collect();
                let mut line =
                    serde_json::to_vec(&obj).map_err(|e| CliError::Other(e.to_string()))?;
                line.push(b'\n');
                std::io::Write::write_all(w, &line).map_err(|e| CliError::io(&tmp, e))
            }
            None => Ok(()),
        }
    }

    /// Flushes and syncs the temporary file; it is renamed by [`publish`].
    fn finish(mut self) -> Result<Finished> {
        let w = self
            .w
            .take()
            .ok_or_else(|| CliError::Other("sheet written twice".into()))?;
        let file = match w {
            Out::Csv(w) => (*w)
                .into_inner()
                .map_err(|e| CliError::io(&self.tmp, e.into_error()))?,
            Out::Ndjson(w, _) => w
                .into_inner()
                .map_err(|e| CliError::io(&self.tmp, e.into_error()))?,
        };
        file.sync_all().map_err(|e| CliError::io(&self.tmp, e))?;
        #[cfg(feature = "parquet")]
        if let Some(csv) = self.csv_tmp.take() {
            let kinds: Vec<(String, Kind)> =
                self.names.iter().cloned().zip(self.kinds.clone()).collect();
            let table = self
                .path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let written = parquet::from_csv(&csv, &self.tmp, &table, &kinds);
            let _ = std::fs::remove_file(&csv);
            written?;
            std::fs::File::open(&self.tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| CliError::io(&self.tmp, e))?;
        }
        let columns = self
            .names
            .iter()
            .zip(&self.kinds)
            .map(|(n, k)| json!({"name": n, "type": k.sql(n)}))
            .collect();
        Ok(Finished {
            tmp: std::mem::take(&mut self.tmp),
            path: std::mem::take(&mut self.path),
            rows: self.rows,
            columns,
        })
    }
}

impl Drop for Sheet {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        if let Some(csv) = &self.csv_tmp {
            let _ = std::fs::remove_file(csv);
        }
    }
}

/// A complete file under its temporary name, with its columns' types.
struct Finished {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    rows: u64,
    columns: Vec<serde_json::Value>,
}

/// `schema.json` beside the data: each file's table name, rows and column types (decimals
/// as `DECIMAL(p, s)` wide enough for every value, never a float), for DuckDB or polars.
fn schema_file(dir: &Path, files: &[Finished]) -> Result<Finished> {
    let doc = json!({
        "files": files.iter().map(|f| json!({
            "file": f.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "table": f.path.file_stem().map(|n| n.to_string_lossy().into_owned()),
            "rows": f.rows,
            "columns": f.columns,
        })).collect::<Vec<_>>(),
    });
    let path = dir.join("schema.json");
    let tmp = dir.join(format!(".schema.json.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| CliError::Other(e.to_string()))?;
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
        .map_err(|e| CliError::io(&tmp, e))?;
    Ok(Finished {
        tmp,
        path,
        rows: files.len() as u64,
        columns: Vec::new(),
    })
}

impl Drop for Finished {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Renames every finished file into place: the export appears whole or not at all.
/// Each file written with its rows (`None`: `schema.json`, which describes the others).
fn publish(files: &mut Vec<Finished>, dir: &Path) -> Result<Vec<(String, Option<u64>)>> {
    let data = files.len();
    let schema = schema_file(dir, files)?;
    files.push(schema);
    let mut out = Vec::new();
    for f in files.iter_mut() {
        std::fs::rename(&f.tmp, &f.path).map_err(|e| CliError::io(&f.path, e))?;
        f.tmp = std::path::PathBuf::new();
        let rows = (out.len() < data).then_some(f.rows);
        out.push((f.path.display().to_string(), rows));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}

/// A report line: the file and its rows, or what `schema.json` holds.
fn wrote(file: &str, rows: Option<u64>) -> String {
    match rows {
        Some(n) => format!("wrote {file} ({n} rows)\n"),
        None => format!("wrote {file} (the column types)\n"),
    }
}

fn csv_error(path: &Path, e: csv::Error) -> CliError {
    CliError::Other(format!("{}: {e}", path.display()))
}

/// Every entry of a journal, oldest retained first, handed to `each`.
async fn each_entry(
    store: &Arc<dyn StateStore>,
    addr: &StreamAddr,
    mut each: impl FnMut(tierstate::JournalEntry) -> Result<()>,
) -> Result<()> {
    let Some(info) = store.journal_info(addr).await? else {
        return Ok(());
    };
    let mut q = Some(JournalQuery::from_seq(info.first_seq.max(1), PAGE));
    while let Some(query) = q {
        let page = store.read_journal(addr, query).await?;
        for e in page.entries {
            each(e)?;
        }
        q = page.next;
    }
    Ok(())
}

/// Writes the five files: each under a temporary name first, then all renamed into place, so
/// an error or an interruption leaves no partial file. Existing files are refused unless
/// `force`.
///
/// # Errors
/// `Other` for a deployment that holds nothing or files that exist; `Io` naming the
/// directory or file; `Store`/`Accounting` if a read fails or finds damage.
pub async fn one(
    store: &Arc<dyn StateStore>,
    id: &str,
    dir: &Path,
    opts: Options,
) -> Result<Report> {
    let id = deployment(id)?;
    require_deployment(store, &id).await?;
    refuse_existing(std::iter::once(dir), opts)?;
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let mut sheets = Sheets::create(dir, opts.format, false)?;
    // On error the sheets are dropped (their temporary files removed) before the directory.
    let written = fill(store, &id, &mut sheets, opts)
        .await
        .and_then(|()| sheets.finish());
    let mut files = match written {
        Ok(f) => f,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(dir); // only if empty: nothing of ours is left
            }
            return Err(e);
        }
    };
    let files = publish(&mut files, dir)?;
    let mut text = String::new();
    for (f, n) in &files {
        text.push_str(&wrote(f, *n));
    }
    Ok(Report {
        text,
        json: json!(
            files
                .iter()
                .map(|(f, n)| json!({"file": f, "rows": n}))
                .collect::<Vec<_>>()
        ),
    })
}

/// Refuses, unless `force`, when any export file already exists in one of `dirs`.
fn refuse_existing<'a>(dirs: impl Iterator<Item = &'a Path>, opts: Options) -> Result<()> {
    let force = opts.force;
    let ext = opts.format.ext();
    let taken: Vec<String> = dirs
        .flat_map(|d| {
            FILES
                .iter()
                .map(move |f| d.join(format!("{f}.{ext}")))
                .chain(std::iter::once(d.join("schema.json")))
        })
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if taken.is_empty() || force {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "{} already exist(s): pass --force to overwrite",
        taken.join(", ")
    )))
}

/// `export --all DIR`: every deployment holding any record, in the same five files with a
/// `deployment` column first, all written or none (each file under a temporary name first).
///
/// # Errors
/// As [`one`], for any deployment; `Other` if the database holds none.
pub async fn all(store: &Arc<dyn StateStore>, dir: &Path, opts: Options) -> Result<Report> {
    let ids = deployments(store).await?;
    if ids.is_empty() {
        return Err(CliError::Other("the database holds no deployment".into()));
    }
    refuse_existing(std::iter::once(dir), opts)?;
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let mut sheets = Sheets::create(dir, opts.format, true)?;
    let mut written = Ok(());
    for id in &ids {
        written = fill(store, id, &mut sheets, opts).await;
        if written.is_err() {
            break;
        }
    }
    let mut files = match written.and_then(|()| sheets.finish()) {
        Ok(f) => f,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(dir); // only if empty: nothing of ours is left
            }
            return Err(e);
        }
    };
    let mut text = String::new();
    let mut items = Vec::new();
    for (f, n) in publish(&mut files, dir)? {
        text.push_str(&wrote(&f, n));
        items.push(json!({"file": f, "rows": n}));
    }
    text.push_str(&format!("{} deployment(s)\n", ids.len()));
    Ok(Report {
        text,
        json: json!(items),
    })
}

/// The five files of an export, being written.
struct Sheets {
    trades: Sheet,
    positions: Sheet,
    metrics: Sheet,
    nav: Sheet,
    ledger: Sheet,
}

impl Sheets {
    /// The five files under temporary names in `dir`, with a `deployment` column if `lead`.
    fn create(dir: &Path, format: Format, lead: bool) -> Result<Self> {
        let sheet = |base: &str, header: &[&str]| Sheet::create(dir, base, header, format, lead);
        Ok(Self {
            trades: sheet(
                "trades",
                &["time", "trade_id", "symbol", "side", "price", "size", "fee"],
            )?,
            positions: sheet(
                "positions",
                &[
                    "time",
                    "id",
                    "chain",
                    "type",
                    "token",
                    "amount",
                    "entry_price",
                    "mark_price",
                    "unrealized_pnl",
                    "value_usd",
                ],
            )?,
            metrics: sheet("metrics", &["time", "metric", "value"])?,
            nav: sheet("nav", &["time", "seq", "nav"])?,
            ledger: sheet(
                "ledger",
                &[
                    "seq",
                    "time",
                    "id",
                    "intent_type",
                    "token_in",
                    "amount_in",
                    "token_out",
                    "amount_out",
                    "price",
                    "success",
                ],
            )?,
        })
    }

    /// Names the deployment the next rows belong to (for the `deployment` column).
    fn lead(&mut self, id: &str) {
        for s in [
            &mut self.trades,
            &mut self.positions,
            &mut self.metrics,
            &mut self.nav,
            &mut self.ledger,
        ] {
            if let Some(lead) = &mut s.lead {
                *lead = Some(id.to_owned());
            }
        }
    }

    /// Flushes and syncs every file, in [`FILES`] order.
    fn finish(self) -> Result<Vec<Finished>> {
        Ok(vec![
            self.trades.finish()?,
            self.positions.finish()?,
            self.metrics.finish()?,
            self.nav.finish()?,
            self.ledger.finish()?,
        ])
    }
}

/// Writes one deployment's rows into the files.
async fn fill(
    store: &Arc<dyn StateStore>,
    id: &tierstate::DeploymentId,
    sheets: &mut Sheets,
    opts: Options,
) -> Result<()> {
    let id = id.clone();
    sheets.lead(id.as_str());
    let strategy = StrategyStore::<StrategyState>::new(store.clone(), &id);
    let trades = &mut sheets.trades;
    let mut from = 1;
    loop {
        let page = strategy.trades(from, PAGE).await?;
        for t in page.iter().filter(|t| opts.keeps(t.time)) {
            trades.row(&[
                time_us(t.time),
                t.trade_id.clone(),
                t.symbol.clone(),
                crate::domain::name(&t.side),
                t.price.to_string(),
                t.size.to_string(),
                t.fee.to_string(),
            ])?;
        }
        if page.len() < PAGE {
            break;
        }
        from += PAGE as u64;
    }

    let positions = &mut sheets.positions;
    let addr = StreamAddr {
        deployment_id: id.clone(),
        stream: Name::stream(POSITIONS)?,
    };
    each_entry(store, &addr, |e| {
        let snap = PositionsSnapshot::from_entry(e.value).map_err(|err| {
            CliError::Other(format!(
                "{addr} #{}: not a positions snapshot: {err}",
                e.seq
            ))
        })?;
        if !opts.keeps(snap.time) {
            return Ok(());
        }
        for p in &snap.positions {
            let opt =
                |v: Option<rust_decimal::Decimal>| v.map(|v| v.to_string()).unwrap_or_default();
            positions.row(&[
                time_us(snap.time),
                p.id.clone(),
                p.chain.clone(),
                p.kind.to_string(),
                p.token.clone(),
                p.amount.to_string(),
                opt(p.entry_price),
                opt(p.mark_price),
                opt(p.unrealized_pnl),
                p.value_usd.to_string(),
            ])?;
        }
        Ok(())
    })
    .await?;

    let metrics = &mut sheets.metrics;
    for s in streams(store, &id).await? {
        let Some(metric) = s.as_str().strip_prefix(METRIC_PREFIX).map(str::to_owned) else {
            continue;
        };
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s.clone(),
        };
        each_entry(store, &addr, |e| {
            // Decimal text (0.000007, never 7e-6): a float's shortest exact form.
            let v = e
                .value
                .get("value")
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| CliError::Other(format!("{addr} #{}: holds no value", e.seq)))?;
            if !opts.keeps(e.event_time) {
                return Ok(());
            }
            metrics.row(&[time_us(e.event_time), metric.clone(), format!("{v}")])
        })
        .await?;
    }

    let nav = &mut sheets.nav;
    let points = series(&Portfolio::new(store.clone(), &id)).await?;
    for p in points.iter().filter(|p| opts.keeps(p.time)) {
        nav.row(&[time_us(p.time), p.seq.to_string(), p.value.to_string()])?;
    }

    let ledger = &mut sheets.ledger;
    let l = Ledger::new(store.clone(), &id);
    let mut all = Vec::new();
    let mut q = LedgerQuery::newest(PAGE);
    loop {
        let page = l.entries(&q).await?;
        let n = page.entries.len();
        all.extend(page.entries);
        match page.next {
            Some(c) if n == PAGE => q.before = Some(c),
            _ => break,
        }
    }
    let cell = |v: Option<String>| v.unwrap_or_default();
    for s in all.iter().rev().filter(|s| opts.keeps(s.entry.time)) {
        let e = &s.entry;
        ledger.row(&[
            s.seq.to_string(),
            time_us(e.time),
            e.id.clone(),
            e.intent_type.clone(),
            cell(e.token_in.clone()),
            cell(e.amount_in.map(|a| a.to_string())),
            cell(e.token_out.clone()),
            cell(e.amount_out.map(|a| a.to_string())),
            cell(e.effective_price.map(|a| a.to_string())),
            e.success.to_string(),
        ])?;
    }
    // The ledger is read through its time index: what that index returned must be every
    // entry the journal holds (its head counts them).
    let ledger_stream = StreamAddr {
        deployment_id: id.clone(),
        stream: Name::stream(tierstate::accounting::LEDGER)?,
    };
    let held = store
        .journal_info(&ledger_stream)
        .await?
        .map_or(0, |i| i.count);
    if all.len() as u64 != held {
        return Err(CliError::Other(format!(
            "{id} ledger: the journal holds {held} entries but {} were read (a missing entry, or a writer committing meanwhile): nothing was written; run verify",
            all.len()
        )));
    }
    Ok(())
}
