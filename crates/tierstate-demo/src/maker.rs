//! The market maker: its durable book-keeping (in the strategy state), its quoting rule and
//! its tick, which ends in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration as Span, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tierstate::accounting::{
    Amount, ExecutionMode, Ledger, LedgerEntry, Portfolio, PortfolioSnapshot, ValueConfidence,
};
use tierstate::orders::{
    Exchange, IntentStatus, OrderIntent, OrderSpec, OrderStore, OrdersError, Reconciler, Side,
    SimExchange,
};
use tierstate::strategy::Lease;
use tierstate::strategy::{
    Checkpoint, Holdings, PositionRecord, StrategyState, StrategyStore, Tick, Trade,
};
use tierstate::{DeploymentId, Name, StateStore, WriteBatch};

use crate::error::{DemoError, Result};
use crate::market;
use crate::run::{DemoArgs, money};

/// The market traded.
pub const SYMBOL: &str = "ETH-USD";
/// Cash at the start.
const START_CASH: i64 = 100_000;
/// Ticks between two publications of the handle's figures.
const FIGURES_EVERY: u64 = 100;
/// Price where the market starts.
const START_MID: i64 = 2_500;
/// Volatility per tick (a fraction of the price).
const VOL: f64 = 0.0004;
/// Half the quoted spread, as a fraction of the mid (5 bps).
const HALF_SPREAD: Decimal = Decimal::from_parts(5, 0, 0, false, 4);
/// How far past the mid a taker is willing to trade, in half spreads.
const REACH: Decimal = Decimal::from_parts(16, 0, 0, false, 1);
/// Quote size.
const SIZE: Decimal = Decimal::from_parts(25, 0, 0, false, 2);
/// Largest position either way; beyond it that side is not quoted.
const MAX_POSITION: Decimal = Decimal::from_parts(15, 0, 0, false, 1);
/// Price skew per unit of position (USD): a long book quotes lower to sell.
const SKEW: Decimal = Decimal::from_parts(4, 0, 0, false, 0);
/// A quote is moved once the wanted price is this far from it (USD).
const REQUOTE: Decimal = Decimal::from_parts(50, 0, 0, false, 2);
/// Fee on every fill (1 bp of the notional, a maker fee).
const FEE: Decimal = Decimal::from_parts(1, 0, 0, false, 4);

/// Collection of the database's identity for its venue.
const IDENTITY: &str = "demo.identity";

/// What the strategy keeps beside its portfolio, in the state's `runtime`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Book {
    seed: u64,
    tick: u64,
    mid: Decimal,
    /// The working quote per side ("bid"/"ask"): an intent id.
    quotes: BTreeMap<String, String>,
    /// Intents still followed, with their placement and how many of its fills are booked.
    booked: BTreeMap<String, Booked>,
    /// The position: the one position record, whose trades keep its average entry price.
    #[serde(default)]
    position: Option<PositionRecord>,
    /// Kept by the demo itself before it used the position record (6e4015a): read once to
    /// seed the record's entry price.
    #[serde(default, skip_serializing)]
    avg_price: Option<Decimal>,
    /// Likewise: the NAV header's fold holds the high-water mark now.
    #[serde(default, rename = "peak_nav", skip_serializing)]
    _peak_nav: Option<Decimal>,
    orders: u64,
    fills: u64,
    volume: Decimal,
    venue_errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Booked {
    client_order_id: String,
    fills: usize,
}

/// What one tick did, for the status line.
#[derive(Debug, Clone, Default)]
pub struct TickOutcome {
    orders: u64,
    fills: u64,
    nav: Decimal,
    drawdown_pct: Decimal,
    position: Decimal,
    venue_errors: u64,
}

impl TickOutcome {
    /// The live one-line status.
    pub fn status(&self) -> String {
        format!(
            "orders {}  fills {}  pos {}  NAV {}  DD {}%  venue errors {}",
            self.orders,
            self.fills,
            self.position,
            money(self.nav),
            self.drawdown_pct.round_dp(3),
            self.venue_errors
        )
    }
}

/// The strategy with everything it trades and books through.
pub struct MarketMaker {
    id: DeploymentId,
    /// The front door: every tick commits through it.
    ts: tierstate::Tierstate,
    /// This process's writer lease on the deployment: every tick checks or renews it.
    lease: Option<Lease>,
    store: Arc<dyn StateStore>,
    strategy: StrategyStore<StrategyState>,
    orders: OrderStore,
    engine: Reconciler,
    venue: Arc<SimExchange>,
    ledger: Ledger,
    portfolio: Portfolio,
    checkpoint: Option<Checkpoint<StrategyState>>,
    book: Book,
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "bid",
        Side::Sell => "ask",
    }
}

impl MarketMaker {
    /// Loads the strategy's last checkpoint (or starts one).
    ///
    /// # Errors
    /// `Store`; `Usage` if the database was started with another seed.
    pub async fn open(
        ts: &tierstate::Tierstate,
        args: &DemoArgs,
        venue: Arc<SimExchange>,
        lease: Lease,
    ) -> Result<Self> {
        let id = DeploymentId::new(&args.deployment)?;
        let store = ts.records("demo");
        let strategy = ts.strategy::<StrategyState>(&id);
        let orders = ts.orders(&id);
        let exchange: Arc<dyn Exchange> = venue.clone();
        let engine = Reconciler::new(orders.clone(), exchange, Decimal::new(1, 2));
        let checkpoint = strategy.load().await?;
        let book = match &checkpoint {
            Some(c) => {
                let b: Book = serde_json::from_value(Value::Object(c.state.runtime.clone()))
                    .map_err(|e| {
                        DemoError::Other(format!(
                            "{id} holds a state the demo did not write ({e}); use another --deployment or --db"
                        ))
                    })?;
                if b.seed != args.seed {
                    return Err(DemoError::Usage(format!(
                        "{id} was started with --seed {}; resume with that seed or use another --db",
                        b.seed
                    )));
                }
                b
            }
            None => Book {
                seed: args.seed,
                mid: Decimal::from(START_MID),
                ..Book::default()
            },
        };
        Ok(Self {
            ts: ts.clone(),
            ledger: ts.ledger(&id),
            portfolio: ts.portfolio(&id),
            lease: Some(lease),
            id,
            store,
            strategy,
            orders,
            engine,
            venue,
            checkpoint,
            book,
        })
    }

    /// Refuses a venue that is not the one this database traded on: a missing file under a
    /// started run, or a book holding orders this database never placed (another run's
    /// venue). Trading on the wrong venue would book someone else's fills.
    ///
    /// # Errors
    /// `Usage` naming the file.
    pub async fn check_venue(&self, file: &std::path::Path, existed: bool) -> Result<()> {
        // The venue file carries the identity of the database it belongs to: another run's
        // file (even of the same seed, whose client ids are the same) is refused.
        let identity = self.identity().await?;
        match self.venue.claim(&identity) {
            Ok(()) => {}
            Err(tierstate::orders::ExchangeError::Rejected(why)) => {
                return Err(DemoError::Usage(format!(
                    "the venue file {} belongs to another database ({why}): pass --venue with this database's file, or a new one",
                    file.display()
                )));
            }
            Err(e) => return Err(venue_storage(&self.venue, e)),
        }
        if self.checkpoint.is_some() && !existed {
            return Err(DemoError::Usage(format!(
                "{} has traded, but its venue file {} is missing: pass --venue with the file it traded on",
                self.id,
                file.display()
            )));
        }
        let ours: std::collections::BTreeSet<String> = self
            .orders
            .actuals(None, None)
            .await?
            .into_iter()
            .map(|a| a.order.client_order_id)
            .collect();
        let strangers = self
            .venue
            .client_orders()
            .iter()
            .filter(|o| !ours.contains(&o.client_order_id))
            .count();
        if strangers > 0 {
            return Err(DemoError::Usage(format!(
                "the venue file {} holds {strangers} order(s) this database never placed (another run's venue): pass --venue with a new file",
                file.display()
            )));
        }
        Ok(())
    }

    /// This database's identity for its venue: a random id stored once (before any venue is
    /// claimed with it), so a restart after a crash claims with the same one.
    async fn identity(&self) -> Result<String> {
        let at = tierstate::DocAddr {
            deployment_id: self.id.clone(),
            collection: Name::collection(IDENTITY)?,
            key: Name::key("venue")?,
        };
        if let Some(d) = self.store.get_document(&at).await? {
            return d
                .value
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| DemoError::Other(format!("{at} holds no venue identity")));
        }
        let fresh = {
            use rand::{Rng, SeedableRng};
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let mut r = rand::rngs::StdRng::seed_from_u64(nanos ^ u64::from(std::process::id()));
            format!("{:032x}", r.random::<u128>())
        };
        let mut m = Map::new();
        m.insert("id".into(), Value::from(fresh.clone()));
        let write = tierstate::DocWrite::new(at.clone(), tierstate::PutMode::Create, m);
        match self.store.put_document(write).await {
            Ok(_) => Ok(fresh),
            Err(tierstate::Error::AlreadyExists { .. }) => Box::pin(self.identity()).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Gives the writer lease up (a clean stop): the next run need not wait for it.
    pub async fn release(&mut self) {
        if let Some(l) = self.lease.take()
            && let Err(e) = l.release(&*self.store).await
        {
            eprintln!("demo: the writer lease was not released ({e}); it expires by itself");
        }
    }

    /// Ticks committed so far.
    pub fn tick_no(&self) -> u64 {
        self.book.tick
    }

    fn holdings(&self) -> Holdings {
        self.checkpoint.as_ref().map_or_else(
            || Holdings {
                cash: BTreeMap::from([("USD".to_owned(), Decimal::from(START_CASH))]),
                positions: BTreeMap::from([(SYMBOL.to_owned(), Decimal::ZERO)]),
            },
            |c| c.state.portfolio.clone(),
        )
    }

    /// One tick: market, sync, re-quote, act, book — and the commit.
    ///
    /// # Errors
    /// `Store`/`Orders`/`Accounting` failures; a conflict means another process is running
    /// this deployment.
    pub async fn tick(&mut self) -> Result<TickOutcome> {
        let mut book = self.book.clone();
        let n = book.tick + 1;
        let now = self.next_time();
        let step = market::step(book.seed, n, book.mid, VOL);
        let hs = (step.mid * HALF_SPREAD).round_dp(2);
        // Takers trade against the book; what they leave is withdrawn.
        for (size, side, price) in [
            (step.sell, Side::Sell, step.mid - hs * REACH),
            (step.buy, Side::Buy, step.mid + hs * REACH),
        ] {
            let Some(size) = size else { continue };
            let o = self
                .venue
                .maker(SYMBOL, side, price.round_dp(2), size)
                .map_err(|e| venue_storage(&self.venue, e))?;
            if o.status.is_working()
                && let Some(x) = &o.exchange_order_id
            {
                let _ = self.venue.cancel(x).await;
            }
        }
        // Sync every order still followed (fills, statuses).
        for id in book.booked.keys().cloned().collect::<Vec<_>>() {
            book.venue_errors += venue_error(self.engine.reconcile_intent(&id).await)?;
        }
        // Re-quote around the mid, skewed against the position.
        let holdings = self.holdings();
        let position = holdings.positions.get(SYMBOL).copied().unwrap_or_default();
        let mut changed = Vec::new();
        for side in [Side::Buy, Side::Sell] {
            changed.extend(
                self.quote(&mut book, n, now, side, step.mid, hs, position)
                    .await?,
            );
        }
        // Act on what this tick changed (the sync above already brought every other order in
        // line): place, modify or cancel.
        for id in changed {
            book.venue_errors += venue_error(self.engine.reconcile_intent(&id).await)?;
        }
        // A venue that could not save what it did has undone it: stop before this tick books
        // anything (the next run, disk back, redoes the tick).
        if let Some(why) = self.venue.storage_error() {
            return Err(DemoError::Other(format!(
                "the venue cannot save its book: {why}"
            )));
        }
        // Book every fill not yet booked.
        let mut trades = Vec::new();
        let mut entries = Vec::new();
        let mut cash = holdings.cash.get("USD").copied().unwrap_or_default();
        let mut held = match book.position.take() {
            Some(p) => p,
            None => {
                // A new run, or one the demo kept before it used the position record.
                let mut p = PositionRecord::perp(SYMBOL, "sim", SYMBOL)?;
                p.amount = position;
                p.entry_price = book.avg_price.take().filter(|a| !a.is_zero());
                p
            }
        };
        let mut finished = Vec::new();
        for (intent, b) in &mut book.booked {
            let Some(a) = self.orders.actual(intent).await? else {
                continue;
            };
            if a.order.client_order_id != b.client_order_id {
                // Placed anew (a new revision): its fills start over.
                b.client_order_id = a.order.client_order_id.clone();
                b.fills = 0;
            }
            for f in a.order.fills.iter().skip(b.fills) {
                let trade = Trade {
                    trade_id: format!("{}:{}", a.order.client_order_id, f.fill_id),
                    time: now,
                    symbol: SYMBOL.into(),
                    side: a.order.spec.side,
                    price: f.price,
                    size: f.size,
                    fee: (f.price * f.size * FEE).round_dp(6),
                    position_id: Some(held.id.clone()),
                };
                let notional = trade.price * trade.size;
                held.apply_trade(trade.side, trade.size, trade.price)?;
                cash += match trade.side {
                    Side::Buy => -notional,
                    Side::Sell => notional,
                } - trade.fee;
                book.fills += 1;
                book.volume += trade.size;
                entries.push(ledger_entry(&self.id, &trade)?);
                trades.push(trade);
            }
            b.fills = a.order.fills.len();
            let working = book.quotes.values().any(|q| q == intent);
            if !working && a.order.status.is_terminal() {
                finished.push(intent.clone());
            }
        }
        for f in finished {
            book.booked.remove(&f);
        }
        held.mark(step.mid)?;
        let pos = held.amount;
        let nav = cash + held.value_usd;
        book.tick = n;
        book.mid = step.mid;

        let mut state = self
            .checkpoint
            .as_ref()
            .map(|c| c.state.clone())
            .unwrap_or_default();
        state.last_time = Some(now);
        state.last_event_id = Some(format!("tick-{n}"));
        state.portfolio = Holdings {
            cash: BTreeMap::from([("USD".to_owned(), cash)]),
            positions: BTreeMap::from([(SYMBOL.to_owned(), pos)]),
        };
        let snapshot = PortfolioSnapshot::new(
            now,
            nav.max(Decimal::ZERO),
            ValueConfidence::High,
            ExecutionMode::Paper,
        )?
        .with_cash(Amount::Measured(cash))
        .with_positions(vec![held.clone()]);
        // The NAV header's fold (high-water mark, drawdown) moves in this tick's batch.
        let nav_change = self.portfolio.plan_snapshot(&snapshot).await?;
        let dd_pct = nav_change.fold.drawdown_pct();
        state.metrics = BTreeMap::from([
            ("nav".to_owned(), nav),
            ("pnl".to_owned(), nav - Decimal::from(START_CASH)),
            ("drawdown_pct".to_owned(), dd_pct),
        ]);
        let rows = [held.clone()];
        book.position = Some(held);
        state.runtime = to_map(&book)?;
        let mut extra = WriteBatch::new().with(&nav_change);
        if !entries.is_empty() {
            extra = extra.with(&self.ledger.plan_append_batch(&entries).await?);
        }
        // The tick commits only while this process holds the deployment's writer lease.
        let lease = self
            .lease
            .as_ref()
            .ok_or_else(|| DemoError::Other("the writer lease was given up".into()))?;
        let (guard, renewal) = lease.guard()?;
        extra.push(guard);
        // The handle's own figures (HOT, WARM, retries, commit groups), every 100 ticks in
        // the tick's batch: what `tierstate serve` shows as `tierstate_writer_*`.
        if book.tick % FIGURES_EVERY == 1 {
            extra = extra.with(&self.ts.plan_figures(&self.id)?);
        }
        let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
        let mut metrics = vec![
            ("nav", f(nav)),
            ("drawdown_pct", f(dd_pct)),
            ("position", f(pos)),
            ("mid", f(step.mid)),
        ];
        // The running count of failed venue calls, recorded when it moves (and on the first
        // tick): `tierstate serve` shows its newest value as `tierstate_venue_errors_total`.
        if book.venue_errors != self.book.venue_errors || book.tick == 1 {
            metrics.push(("venue_errors", book.venue_errors as f64));
        }
        let tick = self.strategy.plan_tick(Tick {
            time: now,
            expected: self.checkpoint.as_ref().map(|c| c.version),
            state: &state,
            trades: &trades,
            positions: Some(&rows),
            metrics: &metrics,
        })?;
        // One tick, one transaction, through the front door's one commit path: the state, the
        // trades, the positions, the metrics, the NAV snapshot, the ledger entries and the
        // lease guard.
        let committed = match self.ts.commit(extra.with(&tick)).await {
            Ok(done) => tick.committed(&done),
            Err(e) if lease.lost(&e) => {
                return Err(lease.holder_error(&*self.store).await?.into());
            }
            Err(
                e @ (tierstate::Error::Conflict { .. } | tierstate::Error::AlreadyExists { .. }),
            ) => {
                return Err(DemoError::Other(format!(
                    "{}: another process committed to this deployment ({e}); run one demo per deployment",
                    self.id
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(l) = &mut self.lease {
            l.committed(renewal);
        }
        if committed.replayed_trades > 0 {
            return Err(DemoError::Other(format!(
                "{} fill(s) were already booked: the book-keeping is inconsistent",
                committed.replayed_trades
            )));
        }
        self.checkpoint = Some(Checkpoint {
            state,
            version: committed.version,
        });
        let outcome = TickOutcome {
            orders: book.orders,
            fills: book.fills,
            nav,
            drawdown_pct: dd_pct,
            position: pos,
            venue_errors: book.venue_errors,
        };
        self.book = book;
        Ok(outcome)
    }

    /// The tick's time: now, and always after the previous tick's.
    fn next_time(&self) -> DateTime<Utc> {
        let now = tierstate::truncate_to_micros(Utc::now());
        match self.checkpoint.as_ref().and_then(|c| c.state.last_time) {
            Some(last) if now <= last => last + Span::microseconds(1),
            _ => now,
        }
    }

    /// Keeps one side's quote where the rule wants it: a new intent when the last one is
    /// done, a moved price, or none when the position is at its limit. Returns the intent it
    /// created, moved or cancelled, if any.
    #[allow(clippy::too_many_arguments)]
    async fn quote(
        &self,
        book: &mut Book,
        n: u64,
        now: DateTime<Utc>,
        side: Side,
        mid: Decimal,
        hs: Decimal,
        position: Decimal,
    ) -> Result<Option<String>> {
        let key = side_name(side);
        let skew = SKEW * position;
        let price = match side {
            Side::Buy => mid - hs - skew,
            Side::Sell => mid + hs - skew,
        }
        .round_dp(2)
        .max(Decimal::new(1, 2));
        let wanted = match side {
            Side::Buy => position < MAX_POSITION,
            Side::Sell => position > -MAX_POSITION,
        };
        if let Some(id) = book.quotes.get(key).cloned() {
            let intent = self.orders.intent(&id).await?;
            let actual = self.orders.actual(&id).await?;
            let retired = intent
                .as_ref()
                .is_none_or(|i| i.intent.status != IntentStatus::Active)
                || actual
                    .as_ref()
                    .is_some_and(|a| a.order.status.is_terminal());
            match intent {
                _ if retired => {
                    book.quotes.remove(key);
                    // A quote whose order ended (a reject under --faults) is no longer wanted:
                    // say so, instead of leaving the intent active beside a dead order.
                    if let Some(current) = intent
                        && current.intent.status == IntentStatus::Active
                    {
                        let mut next = current.intent.clone();
                        next.status = IntentStatus::Cancelled;
                        next.updated_at = now;
                        self.orders.update_intent(&current, next).await?;
                    }
                }
                Some(current) if !wanted => {
                    let mut next = current.intent.clone();
                    next.status = IntentStatus::Cancelled;
                    next.updated_at = now;
                    self.orders.update_intent(&current, next).await?;
                    book.quotes.remove(key);
                    return Ok(Some(id));
                }
                Some(current)
                    if (current.intent.spec.price.unwrap_or_default() - price).abs() >= REQUOTE =>
                {
                    let mut next = current.intent.clone();
                    next.spec.price = Some(price);
                    next.updated_at = now;
                    self.orders.update_intent(&current, next).await?;
                    return Ok(Some(id));
                }
                _ => {}
            }
        }
        if wanted && !book.quotes.contains_key(key) {
            let id = format!("q{n}-{key}");
            let spec = OrderSpec::limit(SYMBOL, side, price, SIZE)?;
            let intent = OrderIntent::new(&id, self.id.as_str(), spec, now)?;
            match self.orders.create_intent(&intent).await {
                Ok(_) => {}
                // The same tick ran before a crash: that intent is this one; adopt it.
                Err(OrdersError::Store(tierstate::Error::AlreadyExists { .. })) => {}
                Err(e) => return Err(e.into()),
            }
            let client_order_id = intent.client_order_id();
            book.quotes.insert(key.to_owned(), id.clone());
            book.booked.entry(id.clone()).or_insert(Booked {
                client_order_id,
                fills: 0,
            });
            book.orders += 1;
            return Ok(Some(id));
        }
        Ok(None)
    }

    /// The end-of-run summary, with the audit of the venue against the books, and what
    /// disagrees if anything does (a fill booked that the venue never made, a fill booked
    /// twice, a ledger that does not match the trades, a client order id accepted twice).
    ///
    /// # Errors
    /// `Store` if a read fails.
    pub async fn summary(&self) -> Result<(String, Option<String>)> {
        let b = &self.book;
        let h = self.holdings();
        let cash = h.cash.get("USD").copied().unwrap_or_default();
        let pos = h.positions.get(SYMBOL).copied().unwrap_or_default();
        let nav = cash + pos * b.mid;
        let fold = self.portfolio.nav_summary().await?.fold;
        let mut booked = std::collections::BTreeSet::new();
        let mut twice = 0u64;
        let mut from = 1;
        loop {
            let page = self.strategy.trades(from, 5_000).await?;
            for t in &page {
                if !booked.insert(t.trade_id.clone()) {
                    twice += 1;
                }
            }
            if page.len() < 5_000 {
                break;
            }
            from += 5_000;
        }
        let ledger = self.ledger.stats().await?.count;
        let venue_fills: std::collections::BTreeSet<String> = self
            .venue
            .client_orders()
            .iter()
            .flat_map(|o| {
                o.fills
                    .iter()
                    .map(|f| format!("{}:{}", o.client_order_id, f.fill_id))
                    .collect::<Vec<_>>()
            })
            .collect();
        let accepted_twice = self.venue.accepted().values().filter(|n| **n > 1).count();
        let phantom = booked.difference(&venue_fills).count();
        let unbooked = venue_fills.difference(&booked).count();
        let mut s = String::new();
        s.push_str(&format!(
            "orders {}  fills {}  volume {} {}  venue errors {}\n",
            b.orders, b.fills, b.volume, SYMBOL, b.venue_errors
        ));
        s.push_str(&format!(
            "NAV {} USD (PnL {})  high-water mark {}  max drawdown {} ({}%)\n",
            money(nav),
            money(nav - Decimal::from(START_CASH)),
            money(fold.high_water_mark),
            money(fold.max_drawdown),
            fold.max_drawdown_pct.round_dp(4)
        ));
        let entry = b.position.as_ref().and_then(|p| p.entry_price);
        s.push_str(&format!(
            "position {pos} {SYMBOL} @ {} avg, cash {} USD, mid {}\n",
            money(entry.unwrap_or_default()),
            money(cash),
            b.mid
        ));
        let mut wrong = Vec::new();
        if phantom > 0 {
            wrong.push(format!("{phantom} booked fill(s) the venue never made"));
        }
        if twice > 0 {
            wrong.push(format!("{twice} fill(s) booked twice"));
        }
        if ledger != booked.len() as u64 + twice {
            wrong.push(format!(
                "{ledger} ledger entries for {} booked trades",
                booked.len() as u64 + twice
            ));
        }
        if accepted_twice > 0 {
            wrong.push(format!(
                "{accepted_twice} client order id(s) accepted twice"
            ));
        }
        let verdict = if !wrong.is_empty() {
            format!("NOT EQUAL: {}", wrong.join("; "))
        } else if unbooked > 0 {
            format!("agree, {unbooked} venue fill(s) not yet synced (the next run books them)")
        } else {
            "agree".to_owned()
        };
        s.push_str(&format!(
            "audit: venue fills {}, trades booked {}, ledger entries {ledger}: {verdict}; client order ids accepted twice: {accepted_twice}\n",
            venue_fills.len(),
            booked.len() as u64 + twice,
        ));
        Ok((s, (!wrong.is_empty()).then(|| wrong.join("; "))))
    }
}

/// A failure of the venue's own file (a full disk) stops the demo: nothing the venue did was
/// kept, and trading on would book what the venue forgets.
fn venue_storage(venue: &SimExchange, e: tierstate::orders::ExchangeError) -> DemoError {
    match venue.storage_error() {
        Some(why) => DemoError::Other(format!("the venue cannot save its book: {why}")),
        None => DemoError::Other(format!("the venue failed: {e}")),
    }
}

/// A venue failure is the market's weather: counted (1) and retried next tick; anything else
/// stops the demo.
fn venue_error(r: std::result::Result<Vec<tierstate::orders::Action>, OrdersError>) -> Result<u64> {
    match r {
        Ok(_) => Ok(0),
        Err(OrdersError::Exchange(_)) => Ok(1),
        Err(e) => Err(e.into()),
    }
}

/// The average entry price after a fill of `signed` size at `price` on a position of `pos`.
fn to_map<T: Serialize>(v: &T) -> Result<Map<String, Value>> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(DemoError::Other("the demo's book is not an object".into())),
        Err(e) => Err(DemoError::Other(format!("the demo's book: {e}"))),
    }
}

/// The ledger's record of a fill: what was given and received, at what price.
fn ledger_entry(id: &DeploymentId, t: &Trade) -> Result<LedgerEntry> {
    let mut e = LedgerEntry::new(
        &t.trade_id,
        id.as_str(),
        ExecutionMode::Paper,
        t.time,
        "MM_FILL",
        true,
    )?;
    let notional = (t.price * t.size).round_dp(6);
    let (given, got) = match t.side {
        Side::Buy => (("USD", notional + t.fee), ("ETH", t.size)),
        Side::Sell => (("ETH", t.size), ("USD", notional - t.fee)),
    };
    e.token_in = Some(given.0.into());
    e.amount_in = Some(given.1);
    e.token_out = Some(got.0.into());
    e.amount_out = Some(got.1);
    e.effective_price = Some(t.price);
    e.chain = Some("sim".into());
    e.protocol = Some("sim-clob".into());
    Ok(e)
}
