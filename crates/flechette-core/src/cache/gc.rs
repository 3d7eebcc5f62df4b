//! Garbage collection: values no record refers to, and sweeps of expired
//! calls.

use super::Cache;
use crate::storage::SweepReport;
use crate::{CacheError, CallQuery};

/// How far a [`Cache::gc_with`] has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcProgress {
    /// What it did so far.
    pub report: GcReport,
    /// How many values it examines in all.
    pub total: usize,
}

/// What [`Cache::gc`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Values kept because a record refers to them.
    pub kept: usize,
    /// Values removed because no record refers to them.
    pub removed: usize,
}

impl Cache {
    /// Sweeps every level once: each examines up to `budget` calls and
    /// removes those past their `expire_after` (with the values only they
    /// referred to, where the backend knows them). Backends sweep by
    /// themselves too, periodically; this is for a sweep now.
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn sweep(&self, budget: usize) -> Result<SweepReport, CacheError> {
        self.flush().await;
        let mut all = SweepReport::default();
        for level in &self.inner.levels {
            let report = level.calls.sweep(budget).await?;
            all.examined += report.examined;
            all.expired += report.expired;
            all.values += report.values;
        }
        Ok(all)
    }

    /// Removes, in every level, the values that no record of that level
    /// refers to.
    ///
    /// Run it while no writer is between saving a call's values and its
    /// record, or that call's values may go (the call then reads as a miss).
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn gc(&self) -> Result<GcReport, CacheError> {
        self.gc_with(|_| {}).await
    }

    /// [`gc`](Self::gc), reporting progress: `progress(report)` after each
    /// value is examined, with the running counts and `total` (values to
    /// examine in all levels) in the second argument.
    ///
    /// # Errors
    ///
    /// As [`gc`](Self::gc).
    pub async fn gc_with(
        &self,
        mut progress: impl FnMut(GcProgress),
    ) -> Result<GcReport, CacheError> {
        self.flush().await;
        let mut report = GcReport::default();
        let mut sweeps = Vec::new();
        for level in &self.inner.levels {
            let mut marked = std::collections::HashSet::new();
            for (_, record) in level.calls.query(&CallQuery::new()).await? {
                marked.extend(record.value_digests().copied());
            }
            sweeps.push((level, marked, level.values.list(None).await?));
        }
        let total = sweeps.iter().map(|(_, _, values)| values.len()).sum();
        for (level, marked, values) in sweeps {
            for digest in values {
                if marked.contains(&digest) {
                    report.kept += 1;
                } else if level.values.remove(&digest).await? {
                    report.removed += 1;
                }
                progress(GcProgress { report, total });
            }
        }
        Ok(report)
    }
}
