//! Commands over a deployment's domain records: orders (intent beside actual), the ledger,
//! and positions.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tierstate::StateStore;
use tierstate::accounting::{Ledger, LedgerQuery};
use tierstate::orders::OrderStore;
use tierstate::strategy::{StrategyState, StrategyStore};

use crate::error::CliError;
use crate::error::Result;
use crate::out::{Report, table, time};
use crate::records::{deployment, parse_time, require_deployment};

/// A serde enum's wire name (`partially_filled`), as the JSON output spells it.
pub fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// `orders ID [--open]`: each intent beside its actual order.
pub async fn orders(store: &Arc<dyn StateStore>, id: &str, open: bool) -> Result<Report> {
    let id = deployment(id)?;
    require_deployment(store, &id).await?;
    let o = OrderStore::new(store.clone(), &id);
    let mut actuals: BTreeMap<String, _> = o
        .actuals(None, None)
        .await?
        .into_iter()
        .filter_map(|a| a.order.intent_id.clone().map(|i| (i, a)))
        .collect();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for i in o.intents(None, None).await? {
        let a = actuals.remove(&i.intent.intent_id);
        let working = a.as_ref().is_some_and(|a| !a.order.status.is_terminal());
        if open && i.intent.status != tierstate::orders::IntentStatus::Active && !working {
            continue;
        }
        let spec = &i.intent.spec;
        rows.push(vec![
            i.intent.intent_id.clone(),
            spec.symbol.clone(),
            name(&spec.side),
            opt(spec.price),
            spec.size.to_string(),
            name(&i.intent.status),
            a.as_ref().map_or("-".into(), |a| name(&a.order.status)),
            // What the intent has bought or sold its way, across every placement.
            a.as_ref().map_or("-".into(), |a| {
                a.order.filled_toward(&spec.symbol, spec.side).to_string()
            }),
            a.as_ref().map_or("-".into(), |a| name(&a.recon)),
            a.as_ref()
                .and_then(|a| a.order.exchange_order_id.clone())
                .unwrap_or_else(|| "-".into()),
        ]);
        items.push(json!({
            "intent": i.intent,
            "intent_version": i.version,
            "actual": a.as_ref().map(|a| &a.order),
            "recon": a.as_ref().map(|a| name(&a.recon)),
            "synced_at": a.as_ref().map(|a| a.synced_at),
        }));
    }
    // Actual orders whose intent is gone (the engine cancels them).
    for a in actuals.into_values() {
        if open && a.order.status.is_terminal() {
            continue;
        }
        rows.push(vec![
            a.order.intent_id.clone().unwrap_or_else(|| "-".into()),
            a.order.spec.symbol.clone(),
            name(&a.order.spec.side),
            opt(a.order.spec.price),
            a.order.spec.size.to_string(),
            "(gone)".into(),
            name(&a.order.status),
            a.order.filled().to_string(),
            name(&a.recon),
            opt(a.order.exchange_order_id.clone()),
        ]);
        items.push(json!({"intent": null, "actual": a.order, "recon": name(&a.recon)}));
    }
    let mut text = table(
        &[
            "INTENT", "SYMBOL", "SIDE", "PRICE", "SIZE", "WANTED", "ACTUAL", "FILLED", "RECON",
            "VENUE ID",
        ],
        &rows,
    );
    text.push_str(&format!("{} order(s)\n", rows.len()));
    Ok(Report {
        text,
        json: Value::Array(items),
    })
}

/// `ledger ID [--since T] [--limit N]`: newest first, with the running totals.
pub async fn ledger(
    store: &Arc<dyn StateStore>,
    id: &str,
    since: Option<&str>,
    limit: usize,
) -> Result<Report> {
    let id = deployment(id)?;
    if limit == 0 {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    require_deployment(store, &id).await?;
    let ledger = Ledger::new(store.clone(), &id);
    let mut q = LedgerQuery::newest(limit);
    q.since = since.map(parse_time).transpose()?;
    let page = ledger.entries(&q).await?;
    let stats = ledger.stats().await?;
    let rows: Vec<Vec<String>> = page
        .entries
        .iter()
        .map(|s| {
            let e = &s.entry;
            vec![
                s.seq.to_string(),
                time(e.time),
                e.intent_type.clone(),
                format!("{} {}", opt(e.amount_in), opt(e.token_in.clone())),
                format!("{} {}", opt(e.amount_out), opt(e.token_out.clone())),
                opt(e.effective_price),
                if e.success {
                    "ok".into()
                } else {
                    "FAILED".into()
                },
                e.id.clone(),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "SEQ", "TIME", "INTENT", "IN", "OUT", "PRICE", "RESULT", "ID",
        ],
        &rows,
    );
    text.push_str(&format!(
        "{} entr(ies) in all, {} succeeded; volume {}\n",
        stats.count,
        stats.successes,
        stats
            .volume
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(Report {
        text,
        json: json!({
            "entries": page.entries.iter().map(|s| json!({"seq": s.seq, "entry": s.entry})).collect::<Vec<_>>(),
            "count": stats.count,
            "successes": stats.successes,
            "volume": stats.volume,
        }),
    })
}

/// `positions ID`: the latest positions snapshot and the holdings in the state.
pub async fn positions(store: &Arc<dyn StateStore>, id: &str) -> Result<Report> {
    let id = deployment(id)?;
    require_deployment(store, &id).await?;
    let s = StrategyStore::<StrategyState>::new(store.clone(), &id);
    let snap = s.positions(None).await?;
    let holdings = s.load().await?.map(|c| c.state.portfolio);
    let mut text = String::new();
    match &snap {
        Some(p) => {
            text.push_str(&format!("positions as of {}\n", time(p.time)));
            let rows: Vec<Vec<String>> = p
                .positions
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.chain.clone(),
                        r.kind.to_string(),
                        r.amount.to_string(),
                        opt(r.entry_price),
                        opt(r.mark_price),
                        opt(r.unrealized_pnl),
                        r.value_usd.to_string(),
                    ]
                })
                .collect();
            text.push_str(&table(
                &[
                    "ID",
                    "CHAIN",
                    "TYPE",
                    "AMOUNT",
                    "ENTRY",
                    "MARK",
                    "UNREALIZED",
                    "VALUE USD",
                ],
                &rows,
            ));
        }
        None => text.push_str("no positions snapshot\n"),
    }
    if let Some(h) = &holdings {
        for (ccy, amount) in &h.cash {
            text.push_str(&format!("cash {ccy}: {amount}\n"));
        }
    }
    Ok(Report {
        text,
        json: json!({"snapshot": snap, "holdings": holdings}),
    })
}
