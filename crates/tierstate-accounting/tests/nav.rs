//! The NAV header is kept incrementally, yet always equals a full recomputation over the
//! stored series (continued from the fold of what retention removed), whatever the order of
//! saves, back-fills, replacements and deletions.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use tierstate_accounting::{
    AccountingError, ExecutionMode, NavFold, Portfolio, PortfolioSnapshot, ValueConfidence,
};
use tierstate_core::{DeploymentId, InMemoryStore};

#[derive(Debug, Clone)]
enum Op {
    Save(i64, u32),
    Upsert(i64, u32),
    DeleteBefore(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..40, 0u32..2000).prop_map(|(t, v)| Op::Save(t, v)),
        2 => (0i64..40, 0u32..2000).prop_map(|(t, v)| Op::Upsert(t, v)),
        1 => (0i64..40).prop_map(Op::DeleteBefore),
    ]
}

fn at(t: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + t * 60, 0).unwrap()
}

/// Values with two decimal places, so percentages exercise rounding.
fn value(v: u32) -> Decimal {
    Decimal::new(i64::from(v), 2)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn header_equals_full_recomputation(ops in prop::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let p = Portfolio::new(Arc::new(InMemoryStore::new()), &DeploymentId::new("d").unwrap());
            // The model: what is stored, and the values removed, in time order.
            let mut stored: BTreeMap<i64, Decimal> = BTreeMap::new();
            let mut removed: Vec<Decimal> = Vec::new();
            let mut cut = i64::MIN;
            for op in ops {
                let snap = |t, v| PortfolioSnapshot::new(at(t), value(v), ValueConfidence::High,
                    ExecutionMode::Paper).unwrap();
                match op {
                    Op::Save(t, v) | Op::Upsert(t, v) => {
                        let upsert = matches!(op, Op::Upsert(..));
                        let r = if upsert {
                            p.upsert_snapshot(&snap(t, v)).await
                        } else {
                            p.save_snapshot(&snap(t, v)).await
                        };
                        match r {
                            Ok(_) => { stored.insert(t, value(v)); }
                            Err(AccountingError::BeforeRetention { .. }) => assert!(t < cut),
                            Err(AccountingError::SnapshotExists { .. }) => {
                                assert!(!upsert && stored[&t] != value(v));
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    Op::DeleteBefore(t) => {
                        let n = p.delete_before(at(t)).await.unwrap();
                        let keep = stored.split_off(&t);
                        assert_eq!(n as usize, stored.len());
                        removed.extend(stored.values());
                        stored = keep;
                        if n > 0 {
                            cut = cut.max(t);
                        }
                    }
                }
                let summary = p.nav_summary().await.unwrap();
                let model = NavFold::over(removed.iter().chain(stored.values()).copied());
                assert_eq!(summary.fold, model);
                assert_eq!(summary.fold, p.recompute_nav().await.unwrap());
                assert_eq!(summary.stored as usize, stored.len());
            }
        });
    }
}
