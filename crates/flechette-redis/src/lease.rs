//! Cross-process single flight on Redis: a lease is a key set with `NX` and a
//! time to live, holding a token only its holder knows.

use std::time::Duration;

use async_trait::async_trait;
use flechette_core::Digest;
use flechette_core::storage::{Coordinator, Lease, StorageError};

use crate::{DELETE_IF, Redis};

static TOKENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A token no other holder has: per-process random keys, the time and a
/// counter, hashed.
fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

#[async_trait]
impl Coordinator for Redis {
    async fn acquire(&self, key: &Digest, ttl: Duration) -> Result<Option<Lease>, StorageError> {
        let token = token();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(self.key('l', key))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms),
            )
            .await?;
        Ok(set.map(|_| Lease(token)))
    }

    async fn release(&self, key: &Digest, lease: &Lease) -> Result<(), StorageError> {
        self.query::<i64>(
            redis::cmd("EVAL")
                .arg(DELETE_IF)
                .arg(1)
                .arg(self.key('l', key))
                .arg(&lease.0),
        )
        .await
        .map(drop)
    }

    async fn wait_released(&self, key: &Digest, at_most: Duration) -> Result<(), StorageError> {
        let deadline = tokio::time::Instant::now() + at_most;
        let mut pause = Duration::from_millis(5);
        loop {
            let held: bool = self
                .query(redis::cmd("EXISTS").arg(self.key('l', key)))
                .await?;
            if !held || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}
