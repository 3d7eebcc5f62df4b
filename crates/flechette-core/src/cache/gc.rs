//! Garbage collection: values no record refers to, and sweeps of expired
//! calls.

use std::time::Duration;

use super::Cache;
use crate::storage::SweepReport;
use crate::{CacheError, CallQuery, Timestamp};

/// How long a value no record refers to is kept after it was last written
/// unless set: five minutes.
pub const DEFAULT_GC_GRACE: Duration = Duration::from_secs(300);

/// How a [`Cache::gc_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct GcOptions {
    grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GC_GRACE,
        }
    }
}

impl GcOptions {
    /// The defaults: a grace period of [`DEFAULT_GC_GRACE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a value no record refers to is kept after it was last
    /// written: a writer between saving a call's values and its record is
    /// given that long. Files set aside as damaged and temporary files are
    /// kept as long.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// How far a [`Cache::gc_with`] has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcProgress {
    /// What it did so far.
    pub report: GcReport,
    /// How many values it examines in all.
    pub total: usize,
}

/// What [`Cache::gc`] did, of each kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Values kept because a record refers to them.
    pub kept: usize,
    /// Values removed because no record refers to them.
    pub removed: usize,
    /// Values no record refers to, kept because they were written within
    /// the grace period.
    pub young: usize,
    /// Expired calls removed (by the sweep gc starts with).
    pub expired: usize,
    /// Values removed with those calls.
    pub expired_values: usize,
    /// Damaged files set aside earlier (`.corrupt-*`), removed.
    pub corrupt: usize,
    /// Temporary files of writes that never finished, removed.
    pub temp: usize,
}

impl GcReport {
    /// How many values were examined so far: kept, removed or young.
    pub fn examined(&self) -> usize {
        self.kept + self.removed + self.young
    }
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

    /// Collects garbage in every level, with the default [`GcOptions`]:
    /// see [`gc_with`](Self::gc_with).
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn gc(&self) -> Result<GcReport, CacheError> {
        self.gc_with(GcOptions::default(), |_| {}).await
    }

    /// Collects garbage in every level: removes the expired calls (a sweep
    /// of every call) with the values only they referred to, then the
    /// values no record of that level refers to, then damaged files set
    /// aside and temporary files; `progress(..)` is called after each value
    /// is examined, with the running counts and the number of values to
    /// examine in all levels.
    ///
    /// Safe on a live cache: a value written less than the grace period
    /// ago ([`GcOptions::grace`], five minutes unless set) is kept, so a
    /// writer between saving a call's values and its record never loses
    /// them (on backends that know when values were written: memory, files,
    /// SQLite and Redis; see
    /// [`ValueStorage::remove_if_written_before`](crate::storage::ValueStorage::remove_if_written_before)).
    ///
    /// # Errors
    ///
    /// Fails when a storage operation fails.
    pub async fn gc_with(
        &self,
        options: GcOptions,
        mut progress: impl FnMut(GcProgress),
    ) -> Result<GcReport, CacheError> {
        self.flush().await;
        let mut report = GcReport::default();
        let now = crate::clock::now();
        let before = Timestamp(now.0.saturating_sub(micros(options.grace)));
        for level in &self.inner.levels {
            let swept = level.calls.sweep(usize::MAX).await?;
            report.expired += swept.expired;
            report.expired_values += swept.values;
        }
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
                } else if level
                    .values
                    .remove_if_written_before(&digest, before)
                    .await?
                {
                    report.removed += 1;
                } else {
                    report.young += 1;
                }
                progress(GcProgress { report, total });
            }
            for debris in [
                level.values.clear_debris(before).await?,
                level.calls.clear_debris(before).await?,
            ] {
                report.corrupt += debris.corrupt;
                report.temp += debris.temp;
            }
        }
        Ok(report)
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
