//! The flechette workspace package: it owns the runnable examples in
//! `examples/` and the cross-crate tests in `tests/`, and publishes nothing.
//! Every guide chapter is compiled here as doctests (the README in
//! `crates/flechette-readme`, against flechette alone).

#[doc = include_str!("../docs/getting-started.md")]
#[cfg(doctest)]
pub struct GettingStartedDoctests;

#[doc = include_str!("../docs/digests.md")]
#[cfg(doctest)]
pub struct DigestsDoctests;

#[doc = include_str!("../docs/storage.md")]
#[cfg(doctest)]
pub struct StorageDoctests;

#[doc = include_str!("../docs/query.md")]
#[cfg(doctest)]
pub struct QueryDoctests;

#[doc = include_str!("../docs/lazy-loading.md")]
#[cfg(doctest)]
pub struct LazyLoadingDoctests;

#[doc = include_str!("../docs/cache-stacks.md")]
#[cfg(doctest)]
pub struct CacheStacksDoctests;

#[doc = include_str!("../docs/memoize.md")]
#[cfg(doctest)]
pub struct MemoizeDoctests;

#[doc = include_str!("../docs/invalidation.md")]
#[cfg(doctest)]
pub struct InvalidationDoctests;

#[doc = include_str!("../docs/macro.md")]
#[cfg(doctest)]
pub struct MacroDoctests;

#[doc = include_str!("../docs/concurrency.md")]
#[cfg(doctest)]
pub struct ConcurrencyDoctests;

#[doc = include_str!("../docs/backends.md")]
#[cfg(doctest)]
pub struct BackendsDoctests;

#[doc = include_str!("../docs/configuration.md")]
#[cfg(doctest)]
pub struct ConfigurationDoctests;

#[doc = include_str!("../docs/cli.md")]
#[cfg(doctest)]
pub struct CliDoctests;

#[doc = include_str!("../docs/tower.md")]
#[cfg(doctest)]
pub struct TowerDoctests;

#[doc = include_str!("../docs/benchmarks.md")]
#[cfg(doctest)]
pub struct BenchmarksDoctests;
