//! The ledger's running totals are kept one append at a time, yet always equal both a full
//! recomputation over the stored entries and an independent model of what was accepted,
//! whatever mix of new entries, replays and conflicting reuses of an id arrives.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use tierstate_accounting::{AccountingError, ExecutionMode, Ledger, LedgerEntry, Recorded};
use tierstate_core::{DeploymentId, InMemoryStore};

#[derive(Debug, Clone)]
struct Spec {
    id: u8,
    at: i64,
    success: bool,
    token_in: u8,
    amount_in: u32,
    token_out: u8,
    amount_out: u32,
    gas: Option<(u32, u32)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..12,
        0i64..1000,
        any::<bool>(),
        0u8..3,
        0u32..100_000,
        0u8..3,
        0u32..100_000,
        prop::option::of((0u32..500_000, 0u32..10_000)),
    )
        .prop_map(
            |(id, at, success, token_in, amount_in, token_out, amount_out, gas)| Spec {
                id,
                at,
                success,
                token_in,
                amount_in,
                token_out,
                amount_out,
                gas,
            },
        )
}

const TOKENS: [&str; 3] = ["USDC", "ETH", "WBTC"];

fn entry(s: &Spec) -> LedgerEntry {
    let at = Utc.timestamp_opt(1_800_000_000 + s.at, 0).unwrap();
    let mut e = LedgerEntry::new(
        format!("e{}", s.id),
        "d",
        ExecutionMode::Live,
        at,
        "SWAP",
        s.success,
    )
    .unwrap();
    e.token_in = Some(TOKENS[s.token_in as usize].into());
    e.amount_in = Some(Decimal::new(i64::from(s.amount_in), 3));
    e.token_out = Some(TOKENS[s.token_out as usize].into());
    e.amount_out = Some(Decimal::new(i64::from(s.amount_out), 6));
    if let Some((units, usd)) = s.gas {
        e.gas_used = Some(u64::from(units));
        e.gas_usd = Some(Decimal::new(i64::from(usd), 4));
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn totals_equal_recomputation_and_model(specs in prop::collection::vec(spec(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let l = Ledger::new(Arc::new(InMemoryStore::new()), &DeploymentId::new("d").unwrap());
            // The model: the accepted entry of each id, in acceptance order.
            let mut accepted: Vec<LedgerEntry> = Vec::new();
            let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
            for s in &specs {
                let e = entry(s);
                match (l.append(&e).await, by_id.get(&e.id)) {
                    (Ok(Recorded::Appended(seq)), None) => {
                        accepted.push(e.clone());
                        by_id.insert(e.id.clone(), accepted.len() - 1);
                        assert_eq!(seq as usize, accepted.len());
                    }
                    (Ok(Recorded::Duplicate(seq)), Some(&i)) => {
                        assert_eq!(accepted[i], e);
                        assert_eq!(seq as usize, i + 1);
                    }
                    (Err(AccountingError::LedgerEntryConflict { seq, .. }), Some(&i)) => {
                        assert_ne!(accepted[i], e);
                        assert_eq!(seq as usize, i + 1);
                    }
                    (other, known) => panic!("{other:?} for {} (known: {known:?})", e.id),
                }
            }
            let stats = l.stats().await.unwrap();
            assert_eq!(stats, l.recompute_stats().await.unwrap());
            // Independent sums over the accepted entries.
            let count = accepted.len() as u64;
            let ok: Vec<&LedgerEntry> = accepted.iter().filter(|e| e.success).collect();
            assert_eq!((stats.count, stats.successes, stats.last_seq), (count, ok.len() as u64, count));
            let gas_usd: Decimal = accepted.iter().filter_map(|e| e.gas_usd).sum();
            let gas_used: u64 = accepted.iter().filter_map(|e| e.gas_used).sum();
            assert_eq!((stats.gas_usd, stats.gas_used), (gas_usd, gas_used));
            for t in TOKENS {
                let v: Decimal = ok
                    .iter()
                    .flat_map(|e| [(&e.token_in, e.amount_in), (&e.token_out, e.amount_out)])
                    .filter(|(k, _)| k.as_deref() == Some(t))
                    .filter_map(|(_, a)| a)
                    .sum();
                assert_eq!(stats.volume_of(t), v, "{t}");
            }
            assert_eq!(stats.first_time, accepted.iter().map(|e| e.time).min());
            assert_eq!(stats.last_time, accepted.iter().map(|e| e.time).max());
            let rate = (count > 0).then(|| Decimal::from(ok.len() as u64) / Decimal::from(count));
            assert_eq!(stats.success_rate(), rate);
        });
    }
}
