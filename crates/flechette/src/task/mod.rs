//! Tokio task integration: scopes that follow work into other tasks, handles
//! that look the same on a hit and a miss, and an executor wrapper that
//! answers hits without spawning anything.

mod bind;
mod executor;
mod handle;
mod join_set;
mod spawn;

pub use bind::{Bound, bind, bind_blocking, bind_fn, spawn};
pub use executor::{Executor, ExecutorStats, SpawnOptions};
pub use handle::TaskHandle;
pub use join_set::CachedJoinSet;
