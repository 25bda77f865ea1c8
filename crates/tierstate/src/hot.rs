//! The HOT tier as the manager sees it: the real cache with the `hot` feature, nothing without.

use std::sync::Arc;

use tierstate_core::{DeploymentId, StateData};

#[cfg(feature = "hot")]
pub use tierstate_hot::HotConfig;

/// Ticket type the manager passes around (see `tierstate_hot::FillTicket`).
#[cfg(feature = "hot")]
pub(crate) type Ticket = Option<tierstate_hot::FillTicket>;
#[cfg(not(feature = "hot"))]
pub(crate) type Ticket = Option<()>;

/// Optional HOT cache.
#[derive(Debug, Default)]
pub(crate) struct Hot {
    #[cfg(feature = "hot")]
    cache: Option<tierstate_hot::HotCache>,
}

impl Hot {
    #[cfg(feature = "hot")]
    pub(crate) fn new(config: Option<HotConfig>) -> Self {
        Self {
            cache: config.map(tierstate_hot::HotCache::new),
        }
    }

    #[cfg(not(feature = "hot"))]
    pub(crate) fn new() -> Self {
        Self {}
    }

    pub(crate) fn enabled(&self) -> bool {
        #[cfg(feature = "hot")]
        return self.cache.is_some();
        #[cfg(not(feature = "hot"))]
        false
    }

    pub(crate) fn capacity(&self) -> usize {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().map_or(0, |c| c.capacity());
        #[cfg(not(feature = "hot"))]
        0
    }

    #[inline]
    pub(crate) fn get(&self, _id: &DeploymentId) -> Option<Arc<StateData>> {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().and_then(|c| c.get(_id));
        #[cfg(not(feature = "hot"))]
        None
    }

    pub(crate) fn ticket(&self) -> Ticket {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().map(|c| c.ticket());
        #[cfg(not(feature = "hot"))]
        None
    }

    /// Caches a WARM record, marked as HOT-served (one copy at insert time, none per get).
    pub(crate) fn insert(&self, _data: &StateData, _ticket: Ticket) {
        #[cfg(feature = "hot")]
        if let (Some(c), Some(t)) = (&self.cache, _ticket) {
            c.insert(
                Arc::new(_data.clone().served_from(tierstate_core::Tier::Hot)),
                t,
            );
        }
    }

    pub(crate) fn invalidate(&self, _id: &DeploymentId) {
        #[cfg(feature = "hot")]
        if let Some(c) = &self.cache {
            c.invalidate(_id);
        }
    }

    pub(crate) fn invalidate_older_than(&self, _id: &DeploymentId, _version: u64) {
        #[cfg(feature = "hot")]
        if let Some(c) = &self.cache {
            c.invalidate_older_than(_id, _version);
        }
    }

    pub(crate) fn invalidate_all(&self) {
        #[cfg(feature = "hot")]
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
    }

    pub(crate) fn len(&self) -> usize {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().map_or(0, |c| c.len());
        #[cfg(not(feature = "hot"))]
        0
    }
}
