//! `export ID --format csv DIR`: trades, positions, metrics, NAV and ledger as CSV files, oldest
//! first, for analysis elsewhere. Money is written as decimal text, never through a float.

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
use crate::out::{Report, time};
use crate::records::{deployment, streams};

/// Entries read per page.
const PAGE: usize = 5_000;

struct Sheet {
    path: std::path::PathBuf,
    w: csv::Writer<std::fs::File>,
    rows: u64,
}

impl Sheet {
    fn create(dir: &Path, name: &str, header: &[&str]) -> Result<Self> {
        let path = dir.join(name);
        let mut w = csv::Writer::from_path(&path).map_err(|e| csv_error(&path, e))?;
        w.write_record(header).map_err(|e| csv_error(&path, e))?;
        Ok(Self { path, w, rows: 0 })
    }

    fn row(&mut self, cells: &[String]) -> Result<()> {
        self.rows += 1;
        self.w
            .write_record(cells)
            .map_err(|e| csv_error(&self.path, e))
    }

    fn finish(mut self) -> Result<(String, u64)> {
        self.w.flush().map_err(|e| CliError::io(&self.path, e))?;
        Ok((self.path.display().to_string(), self.rows))
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

/// Writes the five files.
///
/// # Errors
/// `Io` naming the directory or file; `Store`/`Accounting` if a read fails.
pub async fn csv(store: &Arc<dyn StateStore>, id: &str, dir: &Path) -> Result<Report> {
    let id = deployment(id)?;
    std::fs::create_dir_all(dir).map_err(|e| CliError::io(dir, e))?;
    let mut files = Vec::new();

    let strategy = StrategyStore::<StrategyState>::new(store.clone(), &id);
    let mut trades = Sheet::create(
        dir,
        "trades.csv",
        &["time", "trade_id", "symbol", "side", "price", "size", "fee"],
    )?;
    let mut from = 1;
    loop {
        let page = strategy.trades(from, PAGE).await?;
        for t in &page {
            trades.row(&[
                time(t.time),
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
    files.push(trades.finish()?);

    let mut positions = Sheet::create(
        dir,
        "positions.csv",
        &["time", "symbol", "size", "avg_price"],
    )?;
    let addr = StreamAddr {
        deployment_id: id.clone(),
        stream: Name::stream(POSITIONS)?,
    };
    each_entry(store, &addr, |e| {
        let snap: PositionsSnapshot = serde_json::from_value(serde_json::Value::Object(e.value))
            .map_err(|err| {
                CliError::Other(format!(
                    "{addr} #{}: not a positions snapshot: {err}",
                    e.seq
                ))
            })?;
        for p in &snap.positions {
            positions.row(&[
                time(snap.time),
                p.symbol.clone(),
                p.size.to_string(),
                p.avg_price.to_string(),
            ])?;
        }
        Ok(())
    })
    .await?;
    files.push(positions.finish()?);

    let mut metrics = Sheet::create(dir, "metrics.csv", &["time", "metric", "value"])?;
    for s in streams(store, &id).await? {
        let Some(metric) = s.as_str().strip_prefix(METRIC_PREFIX).map(str::to_owned) else {
            continue;
        };
        let addr = StreamAddr {
            deployment_id: id.clone(),
            stream: s.clone(),
        };
        each_entry(store, &addr, |e| {
            let v = e.value.get("value").cloned().unwrap_or_default();
            metrics.row(&[time(e.event_time), metric.clone(), v.to_string()])
        })
        .await?;
    }
    files.push(metrics.finish()?);

    let mut nav = Sheet::create(dir, "nav.csv", &["time", "seq", "nav"])?;
    for p in series(&Portfolio::new(store.clone(), &id)).await? {
        nav.row(&[time(p.time), p.seq.to_string(), p.value.to_string()])?;
    }
    files.push(nav.finish()?);

    let mut ledger = Sheet::create(
        dir,
        "ledger.csv",
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
    )?;
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
    for s in all.iter().rev() {
        let e = &s.entry;
        ledger.row(&[
            s.seq.to_string(),
            time(e.time),
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
    files.push(ledger.finish()?);

    let mut text = String::new();
    for (f, n) in &files {
        text.push_str(&format!("wrote {f} ({n} rows)\n"));
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
