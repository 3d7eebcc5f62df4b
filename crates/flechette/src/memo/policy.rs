//! How long results stay fresh.

use std::time::Duration;

/// Freshness of one cached result, relative to when it was computed.
///
/// * before `update_after`: served as is;
/// * after `update_after`, before `expire_after`: served at once while one
///   background refresh runs;
/// * after `expire_after`: a read waits for a fresh value.
///
/// Either may be unset (never). A per-value policy comes from
/// [`CachedFnBuilder::lifespan`](crate::CachedFnBuilder::lifespan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Freshness {
    /// When a read starts a background refresh.
    pub update_after: Option<Duration>,
    /// When a read stops serving the value.
    pub expire_after: Option<Duration>,
}

impl Freshness {
    /// Fresh forever.
    pub const FOREVER: Self = Self {
        update_after: None,
        expire_after: None,
    };

    /// Fresh forever; set the limits with the setters.
    pub fn new() -> Self {
        Self::FOREVER
    }

    /// Refresh in the background after `d`.
    pub fn update_after(mut self, d: Duration) -> Self {
        self.update_after = Some(d);
        self
    }

    /// Stop serving after `d`.
    pub fn expire_after(mut self, d: Duration) -> Self {
        self.expire_after = Some(d);
        self
    }

    /// Whether the result never goes stale.
    pub fn is_forever(&self) -> bool {
        self.update_after.is_none() && self.expire_after.is_none()
    }
}

/// Where an entry stands in its life at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Age {
    Fresh,
    Stale,
    Expired,
}

/// Deadlines of an entry on some clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadlines<I> {
    pub(crate) update_at: Option<I>,
    pub(crate) expire_at: Option<I>,
}

impl<I: Ord + Copy> Deadlines<I> {
    pub(crate) fn age(&self, now: I) -> Age {
        if self.expire_at.is_some_and(|t| now >= t) {
            Age::Expired
        } else if self.update_at.is_some_and(|t| now >= t) {
            Age::Stale
        } else {
            Age::Fresh
        }
    }

    pub(crate) fn never(&self) -> bool {
        self.update_at.is_none() && self.expire_at.is_none()
    }
}
