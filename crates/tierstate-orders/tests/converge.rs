//! Random intent scripts against a venue with a random seeded fault plan: once the faults stop
//! and the engine converges, the venue's open orders are exactly the live intents' orders, no
//! client order id was ever accepted twice, every fill reached the order's journal exactly
//! once, and every stored order equals the fold of its journal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use rust_decimal::Decimal;
use tierstate_core::{DeploymentId, InMemoryStore};
use tierstate_orders::{
    Exchange, FaultPlan, IntentStatus, OrderEvent, OrderIntent, OrderSpec, OrderStatus, OrderStore,
    Reconciler, Side, SimExchange, client_order_id,
};

#[derive(Debug, Clone)]
enum Op {
    /// Create (or re-price, if it exists) intent `id` buying at `price`.
    Want(u8, u16),
    /// Cancel intent `id`.
    Drop(u8),
    /// A maker sells `size` tenths at `price`.
    Sell(u16, u8),
    /// One engine pass.
    Pass,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, 95u16..105).prop_map(|(i, p)| Op::Want(i, p)),
        1 => (0u8..5).prop_map(Op::Drop),
        2 => (95u16..105, 1u8..15).prop_map(|(p, s)| Op::Sell(p, s)),
        4 => Just(Op::Pass),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_converges_without_duplicates(
        ops in prop::collection::vec(op(), 1..40),
        seed in any::<u64>(),
        p in 0.0f64..0.3,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let dep = DeploymentId::new("d").unwrap();
            let o = OrderStore::new(Arc::new(InMemoryStore::new()), &dep);
            let venue = Arc::new(SimExchange::new(FaultPlan::uniform(seed, p)));
            let e = Reconciler::new(o.clone(), venue.clone(), Decimal::ZERO);
            let now = chrono::Utc::now();
            for op in &ops {
                match op {
                    Op::Want(i, price) => {
                        let id = format!("i{i}");
                        let spec = OrderSpec::limit("X", Side::Buy, Decimal::from(*price), Decimal::ONE).unwrap();
                        match o.intent(&id).await.unwrap() {
                            None => { o.create_intent(&OrderIntent::new(&id, "d", spec, now).unwrap()).await.unwrap(); }
                            Some(cur) if cur.intent.status == IntentStatus::Active => {
                                let mut next = cur.intent.clone();
                                next.spec = spec;
                                o.update_intent(&cur, next).await.unwrap();
                            }
                            Some(_) => {}
                        }
                    }
                    Op::Drop(i) => {
                        if let Some(cur) = o.intent(&format!("i{i}")).await.unwrap()
                            && cur.intent.status == IntentStatus::Active
                        {
                            let mut next = cur.intent.clone();
                            next.status = IntentStatus::Cancelled;
                            o.update_intent(&cur, next).await.unwrap();
                        }
                    }
                    Op::Sell(price, size) => {
                        venue.maker("X", Side::Sell, Decimal::from(*price), Decimal::new(i64::from(*size), 1)).unwrap();
                    }
                    Op::Pass => { let _ = e.reconcile_all().await; }
                }
            }
            // The faults stop; the engine converges.
            venue.set_faults(FaultPlan::none());
            venue.deliver().unwrap();
            let mut settled = false;
            for _ in 0..20 {
                let pass = e.reconcile_all().await.unwrap();
                assert!(pass.errors.is_empty(), "{:?}", pass.errors);
                if pass.actions.is_empty() {
                    settled = true;
                    break;
                }
            }
            assert!(settled, "the engine did not settle");
            // No client order id accepted twice.
            assert!(venue.accepted().values().all(|&n| n == 1), "{:?}", venue.accepted());
            // Open on the venue == live intents (active, not rejected).
            let open: BTreeSet<String> = venue.open_orders(None).await.unwrap()
                .into_iter().map(|v| v.client_order_id).collect();
            let mut live = BTreeSet::new();
            for i in o.intents(None, None).await.unwrap() {
                let a = o.actual(&i.intent.intent_id).await.unwrap();
                if i.intent.status == IntentStatus::Active
                    && a.as_ref().is_some_and(|a| a.order.status != OrderStatus::Failed)
                {
                    live.insert(a.unwrap().order.client_order_id);
                }
                o.verify(&i.intent.intent_id).await.unwrap();
            }
            assert_eq!(open, live);
            // Every fill reached each order's journal exactly once.
            let venue_fills: BTreeMap<String, Vec<String>> = venue.client_orders().into_iter()
                .map(|v| (v.client_order_id, v.fills.into_iter().map(|f| f.fill_id).collect()))
                .collect();
            for i in o.intents(None, None).await.unwrap() {
                let id = &i.intent.intent_id;
                let mut seen: Vec<String> = o.events(id).await.unwrap().into_iter()
                    .filter_map(|(_, e)| match e { OrderEvent::Filled { fill } => Some(fill.fill_id), _ => None })
                    .collect();
                let mut want: Vec<String> = (1..=i.intent.revision)
                    .filter_map(|r| venue_fills.get(&client_order_id("d", id, r)))
                    .flatten().cloned().collect();
                seen.sort();
                want.sort();
                assert_eq!(seen, want, "{id}");
            }
        });
    }
}
