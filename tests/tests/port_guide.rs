//! The port guide (`docs/port-guide.md`) cannot drift: it lists every public call of the four
//! seed systems, every function or field it names in tierstate exists, and its counts are its
//! rows'.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The seeds' public calls, as their documents list them.
const SEED_CALLS: [(&str, &[&str]); 4] = [
    (
        "000",
        &[
            "add_position",
            "apply",
            "cleanup_old_snapshots",
            "clear",
            "delete_state",
            "find_open_auto_mode_registry_row",
            "find_position",
            "get",
            "get_accounting_events_for_dashboard",
            "get_accounting_events_sync",
            "get_clob_order",
            "get_first_snapshot",
            "get_first_snapshot_sync",
            "get_latest_snapshot",
            "get_ledger_anchor_candidates",
            "get_ledger_entries",
            "get_ledger_quant_stats",
            "get_metrics",
            "get_metrics_summary",
            "get_migration_state",
            "get_migrations_path",
            "get_nav_series",
            "get_open_clob_orders",
            "get_portfolio_metrics",
            "get_position",
            "get_position_events",
            "get_position_events_filtered",
            "get_position_events_for_dashboard",
            "get_position_events_sync",
            "get_position_history",
            "get_position_registry_open_rows",
            "get_recent_snapshots",
            "get_rollback_info",
            "get_snapshot_at",
            "get_snapshots_in_window",
            "get_snapshots_since",
            "get_summary",
            "has_accounting_event_backend",
            "has_first_snapshot_backend",
            "initialize",
            "insert_position_registry_row_if_absent",
            "invalidate_hot_cache",
            "load_state",
            "positions_by_protocol",
            "positions_by_type",
            "positions_on",
            "register",
            "remove_position",
            "save_accounting_event",
            "save_clob_order",
            "save_ledger_and_registry",
            "save_ledger_entry",
            "save_portfolio_metrics",
            "save_portfolio_snapshot",
            "save_position_event",
            "save_state",
            "sum_ledger_gas_usd",
            "to_dict",
            "total_value_on",
            "update_clob_order_status",
            "update_position_attribution",
            "upsert_migration_state",
            "from_dict",
            "positions",
            "total_value_usd",
            "warm_backend",
            "warm_backend_type",
        ],
    ),
    (
        "001",
        &[
            "create_intent",
            "create_order_state",
            "delete_intent",
            "delete_order_state",
            "get_intent",
            "get_intents_by_group",
            "get_metrics",
            "get_order_state",
            "get_order_state_by_exchange_id",
            "get_stale_orders",
            "list_intents",
            "list_order_states",
            "reconcile_all",
            "reconcile_intent",
            "start",
            "stop",
            "update_intent",
            "update_order_state",
        ],
    ),
    (
        "002",
        &[
            "append_event",
            "get_events",
            "place_order_idempotent",
            "reconcile_positions",
            "reconstruct_order_state",
            "update_with_optimistic_lock",
            "update_with_retry",
        ],
    ),
    (
        "003",
        &[
            "append_metrics",
            "append_trade",
            "init",
            "load_state",
            "save_state",
            "upsert_positions",
        ],
    ),
];

const STATUSES: [&str; 4] = ["covered", "different", "partial", "missing"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `crates/*/src`, with its text.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    for c in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = c.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut out);
        }
    }
    out
}

/// The text between backticks in `cell`.
fn quoted(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_port_guide_lists_every_seed_call_and_names_only_real_functions() {
    let guide = std::fs::read_to_string(root().join("docs/port-guide.md")).unwrap();
    let sources = sources();
    let mut rows: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    let mut seed = None;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in guide.lines() {
        if let Some(h) = line.strip_prefix("## Seed ") {
            seed = Some(&h[..3]);
            continue;
        }
        let (Some(s), true) = (seed, line.starts_with("| `") || line.starts_with("| (")) else {
            continue;
        };
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "a row has four cells: {line}");
        let status = cells[2];
        assert!(
            STATUSES.contains(&status),
            "unknown status {status:?}: {line}"
        );
        *counts.entry(status).or_default() += 1;
        if cells[1] == "—" {
            assert!(
                matches!(status, "missing" | "partial"),
                "a row without a counterpart is missing or partial: {line}"
            );
        }
        // Every function named in the tierstate and note columns exists beside its type.
        for name in quoted(cells[1]).into_iter().chain(quoted(cells[3])) {
            let Some((ty, f)) = name.split_once("::") else {
                continue;
            };
            let (ty, f) = (ty.trim(), f.trim_end_matches("()"));
            if !f
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue; // not a name (e.g. `Filter { kind, .. }`)
            }
            let found = sources.iter().any(|(_, text)| {
                (text.contains(&format!("fn {f}("))
                    || text.contains(&format!("fn {f}<"))
                    || text.contains(&format!("pub {f}:")))
                    && text.contains(ty)
            });
            assert!(
                found,
                "the guide names {ty}::{f}, which does not exist: {line}"
            );
        }
        rows.entry(s).or_default().push(cells);
    }
    for (s, calls) in SEED_CALLS {
        let listed: Vec<&str> = rows
            .get(s)
            .map(|r| r.iter().flat_map(|c| quoted(c[0])).collect())
            .unwrap_or_default();
        for call in calls {
            assert!(
                listed.contains(call),
                "seed {s}'s {call} is not in the port guide"
            );
        }
    }
    let said = guide
        .lines()
        .find_map(|l| l.strip_prefix("Counts: "))
        .expect("the guide states its counts");
    let expected = STATUSES
        .iter()
        .map(|s| format!("{s} {}", counts.get(s).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        said.trim_end_matches('.'),
        expected,
        "the counts line is not the rows'"
    );
}
