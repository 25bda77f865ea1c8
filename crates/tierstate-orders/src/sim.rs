//! An in-process exchange: an order book per symbol matching limit and market orders by
//! price-time priority, partial fills, client-order-id deduplication, and a seeded fault plan
//! (timeouts after acceptance, rejects, delayed and duplicated deliveries, dropped cancel
//! responses, outages). A real component for tests and the demo, not a mock: orders rest,
//! match and fill.

use std::collections::{BTreeMap, HashMap, VecDeque};

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use crate::exchange::{Exchange, ExchangeError};
use crate::order::{Fill, Order, OrderKind, OrderSpec, OrderStatus, Side, TimeInForce};
use crate::venue_file::Resting;

/// How often each fault strikes (each a probability in 0..=1 per call), drawn from a seeded
/// generator so a run can be replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    /// Seed of the draws.
    pub seed: u64,
    /// A place is accepted but its answer is lost (`Unknown`).
    pub timeout_after_accept: f64,
    /// A place is refused.
    pub reject: f64,
    /// A place arrives only at the next call (answer `Unknown`), sometimes twice.
    pub delayed: f64,
    /// A cancel is done but its answer is lost (`Unknown`).
    pub drop_cancel_response: f64,
    /// Any call fails with `Unavailable` and does nothing.
    pub outage: f64,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> Self {
        Self {
            seed: 0,
            timeout_after_accept: 0.0,
            reject: 0.0,
            delayed: 0.0,
            drop_cancel_response: 0.0,
            outage: 0.0,
        }
    }

    /// Every fault at probability `p`, seeded.
    pub fn uniform(seed: u64, p: f64) -> Self {
        Self {
            seed,
            timeout_after_accept: p,
            reject: p / 2.0,
            delayed: p,
            drop_cancel_response: p,
            outage: p,
        }
    }
}

#[derive(Default)]
struct Book {
    /// Price → order ids in time order.
    bids: BTreeMap<Decimal, VecDeque<String>>,
    asks: BTreeMap<Decimal, VecDeque<String>>,
}

struct State {
    orders: HashMap<String, Resting>,
    by_client: HashMap<String, String>,
    books: HashMap<String, Book>,
    /// Places delivered late: (client id, spec, copies).
    in_flight: Vec<(String, OrderSpec, u32)>,
    /// Accepted places per client id (at most one each, or the dedup failed).
    accepted: HashMap<String, u32>,
    seq: u64,
    fills: u64,
    plan: FaultPlan,
    rng: StdRng,
    /// Where the venue keeps its state (a durable venue outlives the process that trades on
    /// it, as a real one does), and how long it waits between accepting an order and
    /// answering.
    file: Option<std::path::PathBuf>,
    ack_delay: std::time::Duration,
    /// Smallest size a place may have (zero: any positive size).
    min_size: Decimal,
    /// Who the venue belongs to (e.g. the identity of the database that trades on it).
    owner: Option<String>,
    /// Set when a failed append could not be cut back off the log: the venue then refuses
    /// every change.
    broken: Option<String>,
    /// Before-images of what the running change touched (`None`: it did not exist): what a
    /// durable venue logs, and what undoes a change that could not be written.
    undo_orders: HashMap<String, Option<Resting>>,
    undo_accepted: HashMap<String, Option<u32>>,
    /// Changes in the log since the last snapshot.
    logged: u64,
    /// Orders the last snapshot held: the next one is due after as many changes.
    snapshot_orders: u64,
}

/// The counters a change may move, as they were before it.
struct Before {
    seq: u64,
    fills: u64,
    owner: Option<String>,
    in_flight: Vec<(String, OrderSpec, u32)>,
}

/// The simulated exchange.
pub struct SimExchange {
    state: Mutex<State>,
    /// Why the last change could not be saved, until one is saved again.
    storage: Mutex<Option<String>>,
    /// A durable venue's lock on `<file>.lock`, held for its life: one process per file.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for SimExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimExchange").finish_non_exhaustive()
    }
}

enum Fault {
    None,
    Outage,
    Reject,
    Timeout,
    Delay,
}

impl SimExchange {
    /// An empty exchange with a fault plan.
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            state: Mutex::new(State {
                orders: HashMap::new(),
                by_client: HashMap::new(),
                books: HashMap::new(),
                in_flight: Vec::new(),
                accepted: HashMap::new(),
                seq: 0,
                fills: 0,
                rng: StdRng::seed_from_u64(plan.seed),
                plan,
                file: None,
                ack_delay: std::time::Duration::ZERO,
                min_size: Decimal::ZERO,
                owner: None,
                broken: None,
                undo_orders: HashMap::new(),
                undo_accepted: HashMap::new(),
                logged: 0,
                snapshot_orders: 0,
            }),
            _lock: None,
            storage: Mutex::new(None),
        }
    }

    /// A venue whose state lives in `file`: loaded if it exists, and each change appended
    /// (synced) to the log beside it before the change is answered, so a change costs one
    /// small write whatever the venue's history (see `venue_file.rs`); a change that cannot
    /// be written fails (`Unavailable`) and is undone. A process killed mid-call
    /// leaves the venue as it was after the last change, like a real one. One process owns
    /// the file at a time (a lock on `<file>.lock`, released when the process ends).
    /// `ack_delay` is slept between accepting a place and answering it.
    ///
    /// # Errors
    /// `WouldBlock` if another venue (process) holds the file; I/O errors; a file that is not
    /// a saved venue.
    pub fn durable(
        file: impl Into<std::path::PathBuf>,
        plan: FaultPlan,
        ack_delay: std::time::Duration,
    ) -> std::io::Result<Self> {
        let file = file.into();
        let mut lock_path = file.clone().into_os_string();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "the venue file {} is in use by another process (one venue per file)",
                        file.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut sim = Self::new(plan);
        {
            let mut s = sim.state.lock();
            let (saved, logged) = crate::venue_file::load(&file)?;
            s.restore(saved);
            // The log folded into a fresh snapshot: the file exists from the first open on,
            // and each run starts with an empty log.
            if logged > 0 || !file.exists() {
                crate::venue_file::write_snapshot(&file, &s.snapshot())?;
            }
            s.snapshot_orders = s.orders.len() as u64;
            s.file = Some(file);
            s.ack_delay = ack_delay;
        }
        sim._lock = Some(lock);
        Ok(sim)
    }

    /// Who the venue belongs to, if anyone claimed it.
    pub fn owner(&self) -> Option<String> {
        self.state.lock().owner.clone()
    }

    /// Claims the venue for `owner` (saved with it), or checks that it is `owner`'s: a venue
    /// file belongs to the one database that trades on it.
    ///
    /// # Errors
    /// `Rejected` naming the owner if another one claimed it; `Unavailable` if the claim
    /// cannot be saved (nothing changes).
    pub fn claim(&self, owner: &str) -> Result<(), ExchangeError> {
        if self.owner().as_deref() == Some(owner) {
            return Ok(()); // already this owner's: nothing to save
        }
        self.change(|s| match &s.owner {
            Some(o) if o == owner => Ok(()),
            Some(o) => Err(ExchangeError::Rejected(format!(
                "the venue belongs to {o}, not {owner}"
            ))),
            None => {
                s.owner = Some(owner.to_owned());
                Ok(())
            }
        })?
    }

    /// Runs `f` on the venue and saves the result (a durable venue); if the save fails the
    /// change is undone and the call fails with `Unavailable`.
    fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, ExchangeError> {
        let mut s = self.state.lock();
        if let Some(why) = &s.broken {
            return Err(ExchangeError::Unavailable(format!(
                "venue storage: {why}; reopen the venue"
            )));
        }
        let before = Before {
            seq: s.seq,
            fills: s.fills,
            owner: s.owner.clone(),
            in_flight: s.in_flight.clone(),
        };
        let out = f(&mut s);
        if let Err(e) = s.save() {
            // Undone in memory from the before-images: the files hold the venue as it was
            // after its last answered change.
            s.undo(before);
            *self.storage.lock() = Some(e.to_string());
            return Err(e);
        }
        if s.file.is_some() {
            *self.storage.lock() = None;
        }
        Ok(out)
    }

    /// Why the venue's last change could not be written to its file (it was undone), until
    /// a change is written again: a full disk, a file that cannot be replaced.
    pub fn storage_error(&self) -> Option<String> {
        self.storage.lock().clone()
    }

    /// Replaces the fault plan (e.g. `FaultPlan::none()` to let the engine converge), keeping
    /// the generator's position.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.state.lock().plan = plan;
    }

    /// Sets the smallest size a place may have on every symbol; smaller places are rejected.
    pub fn set_min_size(&self, size: Decimal) {
        self.state.lock().min_size = size;
    }

    /// Delivers every place still in flight.
    ///
    /// # Errors
    /// `Unavailable` if a durable venue cannot save (nothing is delivered).
    pub fn deliver(&self) -> Result<(), ExchangeError> {
        self.change(State::deliver)
    }

    /// A market maker's order (no client id): rests or trades against what is on the book.
    /// Returns the maker order as it stands.
    ///
    /// # Errors
    /// `Unavailable` if a durable venue cannot save (nothing happens).
    pub fn maker(
        &self,
        symbol: &str,
        side: Side,
        price: Decimal,
        size: Decimal,
    ) -> Result<Order, ExchangeError> {
        self.change(|s| {
            s.deliver();
            let spec = OrderSpec {
                symbol: symbol.to_owned(),
                side,
                kind: OrderKind::Limit,
                price: Some(price),
                size,
                tif: TimeInForce::Gtc,
            };
            let id = format!("mk-{}", s.seq + 1);
            s.accept(id.clone(), String::new(), spec, true);
            s.orders[&id].order.clone()
        })
    }

    /// How many times each client id was accepted (every value must be 1).
    pub fn accepted(&self) -> HashMap<String, u32> {
        self.state.lock().accepted.clone()
    }

    /// Every order placed with a client id, as it stands.
    pub fn client_orders(&self) -> Vec<Order> {
        let s = self.state.lock();
        let mut v: Vec<Order> = s
            .orders
            .values()
            .filter(|r| !r.maker)
            .map(|r| r.order.clone())
            .collect();
        v.sort_by(|a, b| a.exchange_order_id.cmp(&b.exchange_order_id));
        v
    }
}

impl State {
    /// Notes `id`'s before-image for the running change (once per change). A venue without
    /// a file never fails to save, so it keeps none.
    fn touch(&mut self, id: &str) {
        if self.file.is_some() && !self.undo_orders.contains_key(id) {
            let was = self.orders.get(id).cloned();
            self.undo_orders.insert(id.to_owned(), was);
        }
    }

    /// The order `id` for changing, its before-image noted.
    fn order_mut(&mut self, id: &str) -> &mut Resting {
        self.touch(id);
        self.orders.get_mut(id).expect("an order the venue holds")
    }

    /// Puts the venue back as it was before the running change.
    fn undo(&mut self, before: Before) {
        for (id, was) in std::mem::take(&mut self.undo_orders) {
            match was {
                Some(r) => self.orders.insert(id, r),
                None => self.orders.remove(&id),
            };
        }
        for (client, was) in std::mem::take(&mut self.undo_accepted) {
            match was {
                Some(n) => self.accepted.insert(client, n),
                None => self.accepted.remove(&client),
            };
        }
        self.seq = before.seq;
        self.fills = before.fills;
        self.owner = before.owner;
        self.in_flight = before.in_flight;
        self.reindex();
    }

    fn restore(&mut self, saved: crate::venue_file::Saved) {
        self.owner = saved.owner;
        self.accepted = saved.accepted;
        self.in_flight = saved.in_flight;
        self.seq = saved.seq;
        self.fills = saved.fills;
        self.orders = saved.orders.into_iter().collect();
        self.reindex();
    }

    /// Rebuilds the client-id index and the books from the orders.
    fn reindex(&mut self) {
        self.by_client.clear();
        self.books.clear();
        let mut resting: Vec<(u64, String)> = Vec::new();
        for (id, r) in &self.orders {
            if !r.maker {
                self.by_client
                    .insert(r.order.client_order_id.clone(), id.clone());
            }
            if r.order.status.is_working() && r.order.spec.price.is_some() {
                resting.push((r.seq, id.clone()));
            }
        }
        resting.sort();
        for (_, id) in resting {
            let o = &self.orders[&id].order;
            let (symbol, side, price) = (o.spec.symbol.clone(), o.spec.side, o.spec.price);
            let book = self.books.entry(symbol).or_default();
            let levels = match side {
                Side::Buy => &mut book.bids,
                Side::Sell => &mut book.asks,
            };
            levels
                .entry(price.expect("checked"))
                .or_default()
                .push_back(id);
        }
    }

    /// Makes the running change durable: one synced line in the log, or, once the log holds at
    /// least [`crate::venue_file::COMPACT_EVERY`] changes and as many as the last snapshot
    /// held orders, a new snapshot that empties the log. The snapshot grows with every order
    /// ever placed, so rewriting it on a fixed count would cost O(history) per change; this
    /// way a rewrite of N orders is paid once per N changes (O(1) each).
    fn save(&mut self) -> Result<(), ExchangeError> {
        let Some(file) = self.file.clone() else {
            return Ok(());
        };
        let storage = |e: std::io::Error| ExchangeError::Unavailable(format!("venue storage: {e}"));
        let due = crate::venue_file::COMPACT_EVERY.max(self.snapshot_orders);
        if self.logged >= due {
            crate::venue_file::write_snapshot(&file, &self.snapshot()).map_err(storage)?;
            self.logged = 0;
            self.snapshot_orders = self.orders.len() as u64;
        } else {
            let mut orders: Vec<_> = self
                .undo_orders
                .keys()
                .map(|id| (id.clone(), self.orders.get(id).cloned()))
                .collect();
            orders.sort_by(|a, b| a.0.cmp(&b.0));
            let delta = crate::venue_file::Delta {
                orders,
                accepted: self
                    .undo_accepted
                    .keys()
                    .map(|c| (c.clone(), self.accepted.get(c).copied().unwrap_or(0)))
                    .collect(),
                in_flight: self.in_flight.clone(),
                seq: self.seq,
                fills: self.fills,
                owner: self.owner.clone(),
            };
            if let Err((e, uncut)) = crate::venue_file::append(&file, &delta) {
                if let Some(why) = uncut {
                    self.broken = Some(format!("its log could not be cut back ({why})"));
                }
                return Err(storage(e));
            }
            self.logged += 1;
        }
        self.undo_orders.clear();
        self.undo_accepted.clear();
        Ok(())
    }

    /// The whole state for a snapshot. A finished market maker's order is never asked about
    /// again: the snapshot keeps only what can still trade or be queried.
    fn snapshot(&self) -> crate::venue_file::Saved {
        crate::venue_file::Saved {
            orders: self
                .orders
                .iter()
                .filter(|(_, r)| !r.maker || r.order.status.is_working())
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            accepted: self.accepted.clone(),
            in_flight: self.in_flight.clone(),
            seq: self.seq,
            fills: self.fills,
            owner: self.owner.clone(),
        }
    }

    /// An outage, drawn: `Unavailable`, and the call does nothing.
    fn outage(&mut self) -> Result<(), ExchangeError> {
        let p = self.plan.outage;
        if self.draw(p) {
            return Err(ExchangeError::Unavailable("simulated outage".into()));
        }
        Ok(())
    }

    fn draw(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    fn fault_for_place(&mut self) -> Fault {
        let plan = self.plan;
        if self.draw(plan.outage) {
            Fault::Outage
        } else if self.draw(plan.reject) {
            Fault::Reject
        } else if self.draw(plan.delayed) {
            Fault::Delay
        } else if self.draw(plan.timeout_after_accept) {
            Fault::Timeout
        } else {
            Fault::None
        }
    }

    fn deliver(&mut self) {
        for (client, spec, copies) in std::mem::take(&mut self.in_flight) {
            for _ in 0..copies {
                if !self.by_client.contains_key(&client) {
                    self.seq += 1;
                    let id = format!("x-{}", self.seq);
                    self.accept(id, client.clone(), spec.clone(), false);
                }
            }
        }
    }

    /// Accepts an order: matches it, then rests what is left (GTC limit) or expires it.
    fn accept(&mut self, id: String, client: String, spec: OrderSpec, maker: bool) {
        self.seq += 1;
        if !maker {
            if self.file.is_some() && !self.undo_accepted.contains_key(&client) {
                let was = self.accepted.get(&client).copied();
                self.undo_accepted.insert(client.clone(), was);
            }
            *self.accepted.entry(client.clone()).or_default() += 1;
            self.by_client.insert(client.clone(), id.clone());
        }
        let order = {
            let mut o = Order::placement_on_venue(client, spec);
            o.exchange_order_id = Some(id.clone());
            o
        };
        let seq = self.seq;
        self.touch(&id);
        self.orders
            .insert(id.clone(), Resting { order, seq, maker });
        self.match_order(&id);
        let r = &self.orders[&id];
        let left = r.order.spec.size - r.order.filled();
        let (kind, tif, side, price, symbol) = (
            r.order.spec.kind,
            r.order.spec.tif,
            r.order.spec.side,
            r.order.spec.price,
            r.order.spec.symbol.clone(),
        );
        if left <= Decimal::ZERO {
            self.order_mut(&id).order.status = OrderStatus::Filled;
        } else if kind == OrderKind::Limit && tif == TimeInForce::Gtc {
            let book = self.books.entry(symbol).or_default();
            let levels = match side {
                Side::Buy => &mut book.bids,
                Side::Sell => &mut book.asks,
            };
            levels
                .entry(price.expect("a limit order has a price"))
                .or_default()
                .push_back(id);
        } else {
            self.order_mut(&id).order.status = OrderStatus::Expired;
        }
    }

    /// Trades the incoming order against the best opposite levels, price then time.
    fn match_order(&mut self, id: &str) {
        loop {
            let incoming = &self.orders[id].order;
            let left = incoming.spec.size - incoming.filled();
            if left <= Decimal::ZERO {
                return;
            }
            let (side, limit, symbol) = (
                incoming.spec.side,
                incoming.spec.price,
                incoming.spec.symbol.clone(),
            );
            let Some(book) = self.books.get_mut(&symbol) else {
                return;
            };
            let best = match side {
                Side::Buy => book.asks.iter_mut().next(),
                Side::Sell => book.bids.iter_mut().next_back(),
            };
            let Some((&price, queue)) = best else { return };
            let crosses = match (side, limit) {
                (_, None) => true,
                (Side::Buy, Some(l)) => price <= l,
                (Side::Sell, Some(l)) => price >= l,
            };
            if !crosses {
                return;
            }
            let Some(resting_id) = queue.front().cloned() else {
                match side {
                    Side::Buy => book.asks.remove(&price),
                    Side::Sell => book.bids.remove(&price),
                };
                continue;
            };
            let resting = &self.orders[&resting_id].order;
            let size = left.min(resting.spec.size - resting.filled());
            self.fills += 1;
            let n = self.fills;
            for (oid, tag) in [(resting_id.clone(), "r"), (id.to_owned(), "t")] {
                let o = &mut self.order_mut(&oid).order;
                o.fills.push(Fill {
                    fill_id: format!("fill-{n}{tag}"),
                    price,
                    size,
                    fee: Decimal::ZERO,
                    time: None,
                    counterparty: None,
                });
                if o.status == OrderStatus::Live && o.filled() < o.spec.size {
                    o.status = OrderStatus::PartiallyFilled;
                }
            }
            let resting = &mut self.order_mut(&resting_id).order;
            if resting.filled() >= resting.spec.size {
                resting.status = OrderStatus::Filled;
                let book = self.books.get_mut(&symbol).expect("book exists");
                let levels = match side {
                    Side::Buy => &mut book.asks,
                    Side::Sell => &mut book.bids,
                };
                if let Some(q) = levels.get_mut(&price) {
                    q.pop_front();
                    if q.is_empty() {
                        levels.remove(&price);
                    }
                }
            }
        }
    }

    fn unrest(&mut self, id: &str) {
        let o = &self.orders[id].order;
        let (symbol, side, price) = (o.spec.symbol.clone(), o.spec.side, o.spec.price);
        if let (Some(book), Some(p)) = (self.books.get_mut(&symbol), price) {
            let levels = match side {
                Side::Buy => &mut book.bids,
                Side::Sell => &mut book.asks,
            };
            if let Some(q) = levels.get_mut(&p) {
                q.retain(|x| x != id);
                if q.is_empty() {
                    levels.remove(&p);
                }
            }
        }
    }
}

impl State {
    fn place_now(
        &mut self,
        client_order_id: &str,
        spec: &OrderSpec,
    ) -> Result<Order, ExchangeError> {
        let s = self;
        s.deliver();
        let fault = s.fault_for_place();
        if matches!(fault, Fault::Outage) {
            return Err(ExchangeError::Unavailable("simulated outage".into()));
        }
        if s.by_client.contains_key(client_order_id) {
            return Err(ExchangeError::Duplicate(client_order_id.to_owned()));
        }
        if spec.size < s.min_size {
            return Err(ExchangeError::Rejected(format!(
                "size {} is below the minimum {}",
                spec.size, s.min_size
            )));
        }
        match fault {
            Fault::Reject => Err(ExchangeError::Rejected("simulated reject".into())),
            Fault::Delay => {
                let copies = if s.draw(0.5) { 2 } else { 1 };
                s.in_flight
                    .push((client_order_id.to_owned(), spec.clone(), copies));
                Err(ExchangeError::Unknown("simulated delayed delivery".into()))
            }
            Fault::Timeout => {
                s.seq += 1;
                let id = format!("x-{}", s.seq);
                s.accept(id, client_order_id.to_owned(), spec.clone(), false);
                Err(ExchangeError::Unknown(
                    "simulated timeout after acceptance".into(),
                ))
            }
            _ => {
                s.seq += 1;
                let id = format!("x-{}", s.seq);
                s.accept(id.clone(), client_order_id.to_owned(), spec.clone(), false);
                Ok(s.orders[&id].order.clone())
            }
        }
    }

    fn modify_now(
        &mut self,
        exchange_order_id: &str,
        price: Option<Decimal>,
        size: Decimal,
    ) -> Result<Order, ExchangeError> {
        let s = self;
        s.deliver();
        s.outage()?;
        let Some(r) = s.orders.get(exchange_order_id) else {
            return Err(ExchangeError::NotFound(exchange_order_id.to_owned()));
        };
        if !r.order.status.is_working() {
            return Err(ExchangeError::Rejected(format!(
                "{exchange_order_id} is not open"
            )));
        }
        if size < r.order.filled() || size <= Decimal::ZERO {
            return Err(ExchangeError::Rejected("size below what has filled".into()));
        }
        // A modify loses time priority, as on most venues: off the book, back on.
        s.unrest(exchange_order_id);
        let r = s.order_mut(exchange_order_id);
        r.order.spec.price = price;
        r.order.spec.size = size;
        let (symbol, side) = (r.order.spec.symbol.clone(), r.order.spec.side);
        s.seq += 1;
        let seq = s.seq;
        s.order_mut(exchange_order_id).seq = seq;
        s.match_order(exchange_order_id);
        let o = &s.orders[exchange_order_id].order;
        if o.filled() >= o.spec.size {
            s.order_mut(exchange_order_id).order.status = OrderStatus::Filled;
        } else if let Some(p) = price {
            let book = s.books.entry(symbol).or_default();
            let levels = match side {
                Side::Buy => &mut book.bids,
                Side::Sell => &mut book.asks,
            };
            levels
                .entry(p)
                .or_default()
                .push_back(exchange_order_id.to_owned());
        }
        Ok(s.orders[exchange_order_id].order.clone())
    }

    fn cancel_now(&mut self, exchange_order_id: &str) -> Result<Order, ExchangeError> {
        let s = self;
        s.deliver();
        s.outage()?;
        let Some(r) = s.orders.get(exchange_order_id) else {
            return Err(ExchangeError::NotFound(exchange_order_id.to_owned()));
        };
        if r.order.status.is_working() {
            s.unrest(exchange_order_id);
            s.order_mut(exchange_order_id).order.status = OrderStatus::Cancelled;
        }
        let lost = s.plan.drop_cancel_response;
        if s.draw(lost) {
            return Err(ExchangeError::Unknown(
                "simulated lost cancel response".into(),
            ));
        }
        Ok(s.orders[exchange_order_id].order.clone())
    }

    fn query_now(&mut self, client_order_id: &str) -> Result<Option<Order>, ExchangeError> {
        let s = self;
        s.outage()?;
        Ok(s.by_client
            .get(client_order_id)
            .map(|id| s.orders[id].order.clone()))
    }

    fn open_orders_now(&mut self, symbol: Option<&str>) -> Result<Vec<Order>, ExchangeError> {
        let s = self;
        s.deliver();
        s.outage()?;
        let mut v: Vec<Order> = s
            .orders
            .values()
            .filter(|r| !r.maker && r.order.status.is_working())
            .filter(|r| symbol.is_none_or(|x| x == r.order.spec.symbol))
            .map(|r| r.order.clone())
            .collect();
        v.sort_by(|a, b| a.exchange_order_id.cmp(&b.exchange_order_id));
        Ok(v)
    }
}

#[async_trait]
impl Exchange for SimExchange {
    async fn place(&self, client_order_id: &str, spec: &OrderSpec) -> Result<Order, ExchangeError> {
        let (r, delay) = self.change(|s| (s.place_now(client_order_id, spec), s.ack_delay))?;
        if !delay.is_zero() && matches!(r, Ok(_) | Err(ExchangeError::Unknown(_))) {
            tokio::time::sleep(delay).await; // accepted, not yet answered
        }
        r
    }

    async fn modify(
        &self,
        exchange_order_id: &str,
        price: Option<Decimal>,
        size: Decimal,
    ) -> Result<Order, ExchangeError> {
        self.change(|s| s.modify_now(exchange_order_id, price, size))?
    }

    async fn cancel(&self, exchange_order_id: &str) -> Result<Order, ExchangeError> {
        self.change(|s| s.cancel_now(exchange_order_id))?
    }

    async fn query(&self, client_order_id: &str) -> Result<Option<Order>, ExchangeError> {
        self.state.lock().query_now(client_order_id)
    }

    async fn open_orders(&self, symbol: Option<&str>) -> Result<Vec<Order>, ExchangeError> {
        self.change(|s| s.open_orders_now(symbol))?
    }

    fn min_size(&self, _symbol: &str) -> Decimal {
        self.state.lock().min_size
    }
}
