//! The HOT tier as the manager sees it: the real cache with the `hot` feature, nothing without.

use std::sync::Arc;

use tierstate_core::{DeploymentId, StateData};

#[cfg(feature = "hot")]
pub use tierstate_hot::HotConfig;

/// One operation in flight (see `tierstate_hot::Ticket`); `None` when HOT is off.
#[cfg(feature = "hot")]
pub(crate) type Ticket<'a> = Option<tierstate_hot::Ticket<'a>>;
#[cfg(not(feature = "hot"))]
pub(crate) type Ticket<'a> = Option<std::marker::PhantomData<&'a ()>>;

/// A warm-up page in progress (see `tierstate_hot::BulkTicket`); `None` when HOT is off.
#[cfg(feature = "hot")]
pub(crate) type BulkTicket<'a> = Option<tierstate_hot::BulkTicket<'a>>;
#[cfg(not(feature = "hot"))]
pub(crate) type BulkTicket<'a> = Option<std::marker::PhantomData<&'a ()>>;

/// How a write ended. Only the HOT cache reads the committed record.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "hot"), allow(dead_code))]
pub(crate) enum Written<'a> {
    /// Committed as this record.
    Ok(&'a StateData),
    /// A delete that committed.
    Deleted,
    /// Certainly wrote nothing.
    NotApplied,
    /// May or may not have committed.
    Unknown,
}

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

    pub(crate) fn begin_read(&self, _id: &DeploymentId) -> Ticket<'_> {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().map(|c| c.begin_read(_id));
        #[cfg(not(feature = "hot"))]
        None
    }

    pub(crate) fn begin_write(&self, _id: &DeploymentId) -> Ticket<'_> {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().map(|c| c.begin_write(_id));
        #[cfg(not(feature = "hot"))]
        None
    }

    /// Offers a WARM read's result (cached unless a rule of the HOT tier refuses it).
    pub(crate) fn fill(&self, _ticket: Ticket<'_>, _data: &StateData) {
        #[cfg(feature = "hot")]
        if let (Some(c), Some(t)) = (&self.cache, _ticket) {
            c.fill(t, _data);
        }
    }

    /// Ends a write.
    pub(crate) fn finish_write(&self, _ticket: Ticket<'_>, _how: Written<'_>) {
        #[cfg(feature = "hot")]
        if let (Some(c), Some(t)) = (&self.cache, _ticket) {
            let how = match _how {
                Written::Ok(d) => tierstate_hot::WriteOutcome::Written(d),
                Written::Deleted => tierstate_hot::WriteOutcome::Deleted,
                Written::NotApplied => tierstate_hot::WriteOutcome::NotApplied,
                Written::Unknown => tierstate_hot::WriteOutcome::Unknown,
            };
            c.finish_write(t, how);
        }
    }

    pub(crate) fn begin_bulk(&self) -> BulkTicket<'_> {
        #[cfg(feature = "hot")]
        return self.cache.as_ref().map(|c| c.begin_bulk());
        #[cfg(not(feature = "hot"))]
        None
    }

    /// Offers one warm-up record (given away: it is cached without a copy); true if it was
    /// cached.
    pub(crate) fn fill_bulk(&self, _ticket: &BulkTicket<'_>, _data: StateData) -> bool {
        #[cfg(feature = "hot")]
        if let (Some(c), Some(t)) = (&self.cache, _ticket) {
            return c.fill_bulk(t, _data) == tierstate_hot::InsertOutcome::Stored;
        }
        false
    }

    /// `version` of `id` is known to be committed.
    pub(crate) fn observe(&self, _id: &DeploymentId, _version: u64) {
        #[cfg(feature = "hot")]
        if let Some(c) = &self.cache {
            c.observe(_id, _version);
        }
    }

    pub(crate) fn invalidate(&self, _id: &DeploymentId) {
        #[cfg(feature = "hot")]
        if let Some(c) = &self.cache {
            c.invalidate(_id);
        }
    }

    /// `id` was deleted.
    pub(crate) fn forget(&self, _id: &DeploymentId) {
        #[cfg(feature = "hot")]
        if let Some(c) = &self.cache {
            c.forget(_id);
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
