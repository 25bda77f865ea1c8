//! Property test of the over-trading rule: random intent edits (side, symbol, size up and down,
//! price, time in force, cancel) between engine passes, against a venue that cancels orders on
//! its own, expires IOC orders, fills them partly and injects seeded faults (timeouts after
//! acceptance, rejects, late and doubled deliveries, lost cancel answers, outages).
//!
//! For every intent and every direction (symbol, side) it ever had, the venue's fills across
//! all its placements never exceed the largest size the intent had in that direction; every
//! placement the engine made was in the direction the intent wanted when it was made; and once
//! the faults stop the engine settles with the venue's open orders exactly the live intents'.
//!
//! The seed is printed; `TIERSTATE_PROP_SEED=<seed>` replays a run and
//! `TIERSTATE_PROP_CASES=<n>` runs more cases.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use tierstate_core::{DeploymentId, InMemoryStore};
use tierstate_orders::{
    Exchange, FaultPlan, IntentStatus, OrderEvent, OrderIntent, OrderSpec, OrderStore, Reconciler,
    Side, SimExchange, TimeInForce, client_order_id,
};

const INTENTS: usize = 3;
const SYMBOLS: [&str; 2] = ["X", "Y"];

/// (market, side).
type Direction = (String, &'static str);

fn dir(spec: &OrderSpec) -> Direction {
    let side = match spec.side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    };
    (spec.symbol.clone(), side)
}

fn tenths(n: u32) -> Decimal {
    Decimal::new(i64::from(n), 1)
}

fn side(r: &mut StdRng) -> Side {
    if r.random_bool(0.5) {
        Side::Buy
    } else {
        Side::Sell
    }
}

#[test]
fn fills_never_exceed_the_intent_in_any_direction() {
    let seed: u64 = std::env::var("TIERSTATE_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    let cases: u64 = std::env::var("TIERSTATE_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("intent edits: seed {seed} ({cases} cases; replay with TIERSTATE_PROP_SEED={seed})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for case in 0..cases {
        let case_seed = seed.wrapping_add(case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rt.block_on(run_case(case_seed))
            .unwrap_or_else(|e| panic!("seed {seed}, case {case} (case seed {case_seed}): {e}"));
    }
}

async fn run_case(seed: u64) -> Result<(), String> {
    let mut r = StdRng::seed_from_u64(seed);
    let dep = DeploymentId::new("d").unwrap();
    let o = OrderStore::new(Arc::new(InMemoryStore::new()), &dep);
    let p = r.random_range(0.0..0.25);
    let venue = Arc::new(SimExchange::new(FaultPlan::uniform(r.random(), p)));
    let e = Reconciler::new(o.clone(), venue.clone(), Decimal::ZERO);
    let now = chrono::Utc::now();
    // The largest size each intent had in each direction.
    let mut largest: BTreeMap<(String, Direction), Decimal> = BTreeMap::new();
    let mut note = |id: &str, spec: &OrderSpec| {
        let k = (id.to_owned(), dir(spec));
        let m = largest.entry(k).or_insert(Decimal::ZERO);
        *m = (*m).max(spec.size);
    };
    let steps = r.random_range(10..60);
    for _ in 0..steps {
        let id = format!("i{}", r.random_range(0..INTENTS));
        match r.random_range(0..10) {
            // Create or edit an intent.
            0..=3 => {
                let cur = o.intent(&id).await.map_err(|e| e.to_string())?;
                let mut spec = match &cur {
                    Some(c) => c.intent.spec.clone(),
                    None => OrderSpec::limit(
                        SYMBOLS[r.random_range(0..2)],
                        side(&mut r),
                        Decimal::from(r.random_range(95..=105)),
                        tenths(r.random_range(1..=20)),
                    )
                    .unwrap(),
                };
                match r.random_range(0..6) {
                    0 => {
                        spec.side = match spec.side {
                            Side::Buy => Side::Sell,
                            Side::Sell => Side::Buy,
                        }
                    }
                    1 => spec.symbol = SYMBOLS[r.random_range(0..2)].into(),
                    2 => spec.size = tenths(r.random_range(1..=20)),
                    3 => spec.price = Some(Decimal::from(r.random_range(95..=105))),
                    4 => {
                        spec.tif = if r.random_bool(0.3) {
                            TimeInForce::Ioc
                        } else {
                            TimeInForce::Gtc
                        }
                    }
                    _ => {}
                }
                match cur {
                    None => {
                        note(&id, &spec);
                        let i = OrderIntent::new(&id, "d", spec, now).unwrap();
                        o.create_intent(&i).await.map_err(|e| e.to_string())?;
                    }
                    Some(c) if c.intent.status == IntentStatus::Active => {
                        note(&id, &spec);
                        let mut next = c.intent.clone();
                        next.spec = spec;
                        o.update_intent(&c, next).await.map_err(|e| e.to_string())?;
                    }
                    Some(_) => {}
                }
            }
            // The strategy no longer wants it.
            4 => {
                if let Some(c) = o.intent(&id).await.map_err(|e| e.to_string())?
                    && c.intent.status == IntentStatus::Active
                {
                    let mut next = c.intent.clone();
                    next.status = IntentStatus::Cancelled;
                    o.update_intent(&c, next).await.map_err(|e| e.to_string())?;
                }
            }
            // Someone trades against the book.
            5..=6 => {
                venue
                    .maker(
                        SYMBOLS[r.random_range(0..2)],
                        side(&mut r),
                        Decimal::from(r.random_range(95..=105)),
                        tenths(r.random_range(1..=15)),
                    )
                    .unwrap();
            }
            // The venue cancels an order on its own.
            7 => {
                if let Some(a) = o.actual(&id).await.map_err(|e| e.to_string())?
                    && let Some(x) = a.order.exchange_order_id
                {
                    let _ = venue.cancel(&x).await;
                }
            }
            // An engine pass (errors are the venue's faults: retried next pass).
            _ => {
                let _ = e.reconcile_all().await;
            }
        }
    }
    // The faults stop; everything in flight lands; the engine settles.
    venue.set_faults(FaultPlan::none());
    venue.deliver().unwrap();
    let mut settled = false;
    for _ in 0..25 {
        let pass = e.reconcile_all().await.map_err(|e| e.to_string())?;
        if !pass.errors.is_empty() {
            return Err(format!("pass failed without faults: {:?}", pass.errors));
        }
        if pass.actions.is_empty() {
            settled = true;
            break;
        }
    }
    if !settled {
        return Err("the engine did not settle".into());
    }
    if let Some((c, n)) = venue.accepted().into_iter().find(|(_, n)| *n > 1) {
        return Err(format!("client order id {c} accepted {n} times"));
    }
    // Fills per intent and direction, across every placement, from the venue.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for k in 0..INTENTS {
        let id = format!("i{k}");
        for rev in 1..=200 {
            owner.insert(client_order_id("d", &id, rev), id.clone());
        }
    }
    let mut fills: BTreeMap<(String, Direction), Decimal> = BTreeMap::new();
    for v in venue.client_orders() {
        let id = owner
            .get(&v.client_order_id)
            .ok_or_else(|| format!("venue order {} of no intent", v.client_order_id))?;
        *fills.entry((id.clone(), dir(&v.spec))).or_default() += v.filled();
    }
    for (k, f) in &fills {
        let max = largest.get(k).copied().unwrap_or_default();
        if *f > max {
            return Err(format!(
                "intent {} filled {f} {} on {}, more than its largest size {max} that way",
                k.0, k.1.1, k.1.0
            ));
        }
    }
    // Every placement went out in the direction the intent wanted when it was made.
    let mut live = BTreeSet::new();
    for k in 0..INTENTS {
        let id = format!("i{k}");
        let mut wanted: Option<Direction> = None;
        for (seq, ev) in o.events(&id).await.map_err(|e| e.to_string())? {
            match ev {
                OrderEvent::IntentSet { intent } => wanted = Some(dir(&intent.spec)),
                OrderEvent::Created { spec, .. } | OrderEvent::Replaced { spec, .. }
                    if wanted.as_ref() != Some(&dir(&spec)) =>
                {
                    return Err(format!(
                        "{id} #{seq}: placed {:?} {:?} while the intent wanted {wanted:?}",
                        spec.symbol, spec.side
                    ));
                }
                _ => {}
            }
        }
        o.verify(&id).await.map_err(|e| e.to_string())?;
        if let (Some(i), Some(a)) = (
            o.intent(&id).await.map_err(|e| e.to_string())?,
            o.actual(&id).await.map_err(|e| e.to_string())?,
        ) && i.intent.status == IntentStatus::Active
            && !a.order.status.is_terminal()
        {
            if dir(&a.order.spec) != dir(&i.intent.spec) {
                return Err(format!(
                    "{id}: working {:?}, wanted {:?}",
                    a.order.spec, i.intent.spec
                ));
            }
            live.insert(a.order.client_order_id.clone());
        }
    }
    // Open on the venue == the live intents' working orders.
    let open: BTreeSet<String> = venue
        .open_orders(None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|v| v.client_order_id)
        .collect();
    if open != live {
        return Err(format!("venue open {open:?}, live intents {live:?}"));
    }
    Ok(())
}
