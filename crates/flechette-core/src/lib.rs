//! The content-addressed call cache at the core of flechette.
//!
//! * [`digest`]: SHA-256 over a canonical MessagePack encoding of any
//!   `Serialize` value, the same in every process;
//! * [`CallRecord`]: what a call was — name, module, version, argument and
//!   result digests, metadata;
//! * [`storage`]: the async [`ValueStorage`](storage::ValueStorage) and
//!   [`CallStorage`](storage::CallStorage) traits with memory and file backends;
//! * [`Cache`] and [`CacheStack`]: save, load lazily, query, tabulate,
//!   expand and shrink short digests, collect garbage.
//!
//! Most users depend on the `flechette` facade, which re-exports this crate
//! and adds cached functions and scopes.

mod cache;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
mod digest;
pub mod encoding;
mod error;
mod lazy;
mod prefix;
mod query;
mod record;
pub mod storage;
mod value;

pub use cache::{
    Cache, CacheStack, DEFAULT_GC_GRACE, GcOptions, GcProgress, GcReport, Table, TableOptions,
    WriteBehind, WriteFailed,
};
pub use digest::{Digest, ParseDigestError, digest};
pub use error::CacheError;
pub use lazy::{Call, LazyArguments, LazyCall};
pub use prefix::{D, DigestPrefix, MIN_PREFIX, PrefixError};
pub use query::CallQuery;
pub use record::{CallRecord, Lifespan, Metadata, Runtime, Timestamp, call_key};
pub use value::to_json;
