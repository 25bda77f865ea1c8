//! The book: every position of a deployment across a configured set of chains.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{PositionError, Result};
use crate::kind::PositionType;
use crate::record::{PositionRecord, check_label};
use crate::totals::Totals;

/// Which positions a [`PositionBook::filter`] keeps; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this chain.
    pub chain: Option<String>,
    /// Only this kind.
    pub kind: Option<PositionType>,
    /// Only this protocol.
    pub protocol: Option<String>,
    /// Only this token.
    pub token: Option<String>,
}

/// How long a position has been missing from its venue's reports (kept with the book so a
/// restart does not forget it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// Consecutive reconciliation runs that did not see it.
    pub runs: u32,
    /// When the first of them ran.
    pub since: DateTime<Utc>,
}

/// The positions of one deployment, keyed by (chain, id), over the chains it was configured
/// with. Iteration is in (chain, id) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionBook {
    chains: BTreeSet<String>,
    positions: BTreeMap<(String, String), PositionRecord>,
    missing: BTreeMap<(String, String), Missing>,
}

impl PositionBook {
    /// A book over `chains` holding `positions` (seed 000's book built with its positions).
    ///
    /// # Errors
    /// As [`PositionBook::new`]; as [`PositionBook::upsert`] for the first position refused
    /// (an unknown chain, a duplicate id, a bad record).
    pub fn with_positions<I, S>(
        chains: I,
        positions: impl IntoIterator<Item = PositionRecord>,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut book = Self::new(chains)?;
        for p in positions {
            let key = (p.chain.clone(), p.id.clone());
            if book.positions.contains_key(&key) {
                return Err(PositionError::invalid(
                    "positions",
                    format!("{} on {} is given twice", key.1, key.0),
                ));
            }
            book.upsert(p)?;
        }
        Ok(book)
    }

    /// The book as the document the store keeps (schema-stamped canonical JSON), for export.
    ///
    /// # Errors
    /// `InvalidInput` if it cannot be encoded.
    pub fn to_document(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        crate::store::encode(self)
    }

    /// A book from a stored or exported document (for importing existing states): every
    /// field checked, decimals exact, a newer schema refused.
    ///
    /// # Errors
    /// `InvalidInput` naming the first bad field; `NewerSchema`.
    pub fn from_document(doc: serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        crate::store::decode(doc)
    }

    /// An empty book over `chains`.
    ///
    /// # Errors
    /// `DuplicateChain` if a chain is named twice; `InvalidInput` for no chains or a bad name.
    pub fn new<I, S>(chains: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut set = BTreeSet::new();
        for c in chains {
            let c = c.into();
            check_label("chain", &c, 64)?;
            if !set.insert(c.clone()) {
                return Err(PositionError::DuplicateChain(c));
            }
        }
        if set.is_empty() {
            return Err(PositionError::invalid(
                "chains",
                "a book needs at least one chain",
            ));
        }
        Ok(Self {
            chains: set,
            positions: BTreeMap::new(),
            missing: BTreeMap::new(),
        })
    }

    /// The configured chains, in order.
    pub fn chains(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().map(String::as_str)
    }

    /// Whether `chain` is configured.
    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.contains(chain)
    }

    /// `Ok` if `chain` is configured, else `ChainNotFound` naming it and the configured ones.
    ///
    /// # Errors
    /// `ChainNotFound`.
    pub fn check_chain(&self, chain: &str) -> Result<()> {
        if self.has_chain(chain) {
            Ok(())
        } else {
            Err(PositionError::ChainNotFound {
                chain: chain.to_owned(),
                configured: self.chains.iter().cloned().collect(),
            })
        }
    }

    /// Adds a position or replaces the one with the same (chain, id); returns the replaced one.
    ///
    /// # Errors
    /// `ChainNotFound` for an unconfigured chain; `InvalidInput` for a bad field.
    pub fn upsert(&mut self, record: PositionRecord) -> Result<Option<PositionRecord>> {
        record.validate()?;
        self.check_chain(&record.chain)?;
        let key = (record.chain.clone(), record.id.clone());
        self.missing.remove(&key);
        Ok(self.positions.insert(key, record))
    }

    /// Removes the position `id` on `chain`; returns it if it was there.
    ///
    /// # Errors
    /// `ChainNotFound` for an unconfigured chain.
    pub fn remove(&mut self, id: &str, chain: &str) -> Result<Option<PositionRecord>> {
        self.check_chain(chain)?;
        let key = (chain.to_owned(), id.to_owned());
        self.missing.remove(&key);
        Ok(self.positions.remove(&key))
    }

    /// The position `id` on `chain`.
    ///
    /// # Errors
    /// `ChainNotFound` for an unconfigured chain.
    pub fn get(&self, id: &str, chain: &str) -> Result<Option<&PositionRecord>> {
        self.check_chain(chain)?;
        Ok(self.positions.get(&(chain.to_owned(), id.to_owned())))
    }

    /// Every position with this id, on any chain.
    pub fn find(&self, id: &str) -> Vec<&PositionRecord> {
        self.positions.values().filter(|p| p.id == id).collect()
    }

    /// The positions `filter` keeps, in (chain, id) order.
    pub fn filter<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a PositionRecord> {
        self.positions.values().filter(move |p| {
            filter.chain.as_ref().is_none_or(|c| &p.chain == c)
                && filter.kind.is_none_or(|k| p.kind == k)
                && filter
                    .protocol
                    .as_ref()
                    .is_none_or(|x| p.protocol.as_ref() == Some(x))
                && filter.token.as_ref().is_none_or(|t| &p.token == t)
        })
    }

    /// The positions on `chain`, in id order.
    ///
    /// # Errors
    /// `ChainNotFound` for an unconfigured chain.
    pub fn on_chain(&self, chain: &str) -> Result<impl Iterator<Item = &PositionRecord>> {
        self.check_chain(chain)?;
        let lo = (chain.to_owned(), String::new());
        Ok(self
            .positions
            .range(lo..)
            .take_while(move |((c, _), _)| c == chain)
            .map(|(_, p)| p))
    }

    /// Removes every position on `chain`; returns how many.
    ///
    /// # Errors
    /// `ChainNotFound` for an unconfigured chain.
    pub fn clear_chain(&mut self, chain: &str) -> Result<usize> {
        self.check_chain(chain)?;
        let before = self.positions.len();
        self.positions.retain(|(c, _), _| c != chain);
        self.missing.retain(|(c, _), _| c != chain);
        Ok(before - self.positions.len())
    }

    /// Removes every position; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.positions.len();
        self.positions.clear();
        self.missing.clear();
        n
    }

    /// Every position, in (chain, id) order.
    pub fn iter(&self) -> impl Iterator<Item = &PositionRecord> {
        self.positions.values()
    }

    /// How many positions.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Net value and gross exposure, overall, per chain and per type.
    pub fn totals(&self) -> Totals {
        Totals::of(self.chains(), self.iter())
    }

    /// How long the position (chain, id) has been missing from its venue, if it is.
    pub fn missing(&self, id: &str, chain: &str) -> Option<Missing> {
        self.missing
            .get(&(chain.to_owned(), id.to_owned()))
            .copied()
    }

    pub(crate) fn missing_map(&self) -> &BTreeMap<(String, String), Missing> {
        &self.missing
    }

    pub(crate) fn set_missing(&mut self, chain: &str, id: &str, m: Option<Missing>) {
        let key = (chain.to_owned(), id.to_owned());
        match m {
            Some(m) => {
                self.missing.insert(key, m);
            }
            None => {
                self.missing.remove(&key);
            }
        }
    }

    pub(crate) fn clear_missing(&mut self) {
        self.missing.clear();
    }

    /// Replaces the chains (checked as [`PositionBook::new`] checks them); every position held
    /// must be on one of them.
    pub(crate) fn set_chains(&mut self, chains: Vec<String>) -> Result<()> {
        let fresh = Self::new(chains)?;
        if let Some((chain, id)) = self
            .positions
            .keys()
            .find(|(c, _)| !fresh.chains.contains(c))
        {
            return Err(PositionError::invalid(
                "chains",
                format!("position {id} is on {chain}, which the book no longer has"),
            ));
        }
        self.chains = fresh.chains;
        Ok(())
    }

    pub(crate) fn take(&mut self, chain: &str, id: &str) -> Option<PositionRecord> {
        let key = (chain.to_owned(), id.to_owned());
        self.missing.remove(&key);
        self.positions.remove(&key)
    }
}
