//! Async-first caching for tokio services.
//!
//! flechette keeps calls of async functions in content-addressed caches:
//! every call is keyed by a SHA-256 digest of the function's name, module,
//! version and argument digests; arguments and results are stored once by
//! digest; each call leaves a record that can be queried, tabulated and
//! loaded lazily. In front of the cache, each [`CachedFn`] keeps decoded
//! values in process, collapses concurrent misses into one computation, and
//! refreshes or expires values by age.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use flechette::{Cache, CachedFn, with_cache};
//!
//! let slow_add = CachedFn::builder("slow_add")
//!     .args(["a", "b"])
//!     .build(|(a, b): (i64, i64)| async move { a + b });
//!
//! let cache = Cache::memory();
//! with_cache(cache.clone(), async {
//!     assert_eq!(slow_add.call((2, 3)).await.unwrap(), 5); // computed
//!     assert_eq!(slow_add.call((2, 3)).await.unwrap(), 5); // from the cache
//! })
//! .await;
//! # }
//! ```

mod args;
mod builder;
mod cached_fn;
mod call;
pub mod config;
mod error;
#[cfg(feature = "tower")]
pub mod layer;
mod memo;
mod scope;
mod task;

#[doc(hidden)]
pub mod __private {
    pub use crate::private::Slot;
}
mod private;

pub use args::{Arg, ArgRefs, Args};
pub use builder::{CachedFnBuilder, DEFAULT_CAPACITY, DEFAULT_WARN_AFTER};
pub use cached_fn::CachedFn;
pub use call::CallFuture;
pub use config::{Config, ConfigError, configure};
pub use error::{CallError, Failure};
pub use flechette_core::*;
#[cfg(feature = "macros")]
pub use flechette_macros::cached;
/// Redis storage (feature `redis`).
#[cfg(feature = "redis")]
pub use flechette_redis as redis;
/// SQLite storage (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub use flechette_sqlite as sqlite;
pub use memo::policy::Freshness;
pub use memo::stats::Stats;
pub use scope::{
    Tags, cache, current_tags, default_cache, rerun, set_default_cache, tags, with_cache,
};
pub use task::{
    Bound, CachedJoinSet, Executor, ExecutorStats, SpawnOptions, TaskHandle, bind, bind_blocking,
    bind_fn, spawn,
};
