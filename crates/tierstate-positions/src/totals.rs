//! Totals that say what they mean: net value (borrows count negative) and gross exposure
//! (absolute values), never one figure standing for both.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::kind::PositionType;
use crate::record::PositionRecord;

/// Count, net value and gross exposure of a set of positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// Positions counted.
    pub count: usize,
    /// Sum of values, borrows negative, perps signed.
    pub net_usd: Decimal,
    /// Sum of absolute values.
    pub gross_usd: Decimal,
}

impl Exposure {
    fn add(&mut self, p: &PositionRecord) {
        self.count += 1;
        self.net_usd += p.net_value();
        self.gross_usd += p.gross_value();
    }
}

/// One chain's summary: its exposure and the same split by position type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// The chain's positions together.
    pub all: Exposure,
    /// Per position type (only types present).
    pub by_type: BTreeMap<PositionType, Exposure>,
}

/// Totals of a book: overall, per chain (every configured chain, even empty) and per type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Every position together.
    pub all: Exposure,
    /// Per chain.
    pub by_chain: BTreeMap<String, ChainSummary>,
    /// Per position type, across chains.
    pub by_type: BTreeMap<PositionType, Exposure>,
}

impl Totals {
    /// Totals of `positions` over `chains`.
    pub fn of<'a>(
        chains: impl IntoIterator<Item = &'a str>,
        positions: impl IntoIterator<Item = &'a PositionRecord>,
    ) -> Self {
        let mut t = Totals {
            by_chain: chains
                .into_iter()
                .map(|c| (c.to_owned(), ChainSummary::default()))
                .collect(),
            ..Totals::default()
        };
        for p in positions {
            t.all.add(p);
            t.by_type.entry(p.kind).or_default().add(p);
            let c = t.by_chain.entry(p.chain.clone()).or_default();
            c.all.add(p);
            c.by_type.entry(p.kind).or_default().add(p);
        }
        t
    }
}
