//! Redis storage for flechette: values and call records shared by every
//! service instance that points at one Redis.
//!
//! * Keys are namespaced: `<prefix>:v:<digest>` for values and
//!   `<prefix>:c:<key>` for call records.
//! * A call whose lifespan has an `expire_after` gets a Redis expiry at that
//!   time, so Redis drops it by itself. A value lives the grace period of
//!   `gc` after it was last written, and as long as the calls that refer to
//!   it (for ever for a call without an expiry): Redis forgets what nothing
//!   needs, and its `volatile-*` eviction policies find keys to evict.
//! * A lookup is one round trip: a script returns the record and the result
//!   value it names together.
//! * Cross-instance single flight ([`Coordinator`](flechette_core::storage::Coordinator)): when several instances
//!   miss one call, one takes a lock (`SET NX PX` on `<prefix>:l:<key>`,
//!   with a random token), computes and releases it (a token-checked
//!   delete); the others poll for the release with backoff and read its
//!   result. A holder that dies frees the key when the lock expires.
//! * Invalidation broadcast ([`Broadcast`](flechette_core::storage::Broadcast)): invalidations are published on
//!   `<prefix>:invalidate`; every instance listens (reconnecting when Redis
//!   comes back) and drops the calls from its in-process tiers.
//! * The connection is a reconnecting connection manager, made lazily: a
//!   cache over a Redis that is down works (every read is a miss, every
//!   write is lost, each with a warning) and uses Redis again as soon as it
//!   is back. Every operation is bounded by a timeout, so nothing waits
//!   forever on a dead connection.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = flechette_redis::open("redis://127.0.0.1:6379/", "myapp")?;
//! let d = cache.save_value(&"shared").await?;
//! # Ok(()) }
//! ```

mod broadcast;
mod eviction;
mod lease;
mod ttl;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flechette_core::storage::{
    CallStorage, Invalidation, StorageError, ValueStorage, decode_record, encode_record,
    verified_result,
};
use flechette_core::{Cache, CallQuery, CallRecord, Digest, DigestPrefix};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one Redis operation may take before it counts as failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to Redis under a key prefix, shared by its value and call
/// storage. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: Arc<str>,
    bus: Arc<Bus>,
}

/// Invalidations received from Redis, handed to local subscribers.
struct Bus {
    tx: tokio::sync::broadcast::Sender<Invalidation>,
    listening: std::sync::Once,
    /// `<prefix>:v:`, the lookup script's second argument.
    value_head: String,
    /// Whether lookups touch values.
    eviction: eviction::Eviction,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Backend(Box::new(e))
}

/// A cache over Redis at `url`, keys under `prefix`. Connects lazily.
///
/// # Errors
///
/// Fails when `url` is not a Redis URL.
///
/// # Panics
///
/// Panics outside a tokio runtime (the connection manager needs one).
pub fn open(url: &str, prefix: &str) -> Result<Cache, StorageError> {
    let redis = Redis::open(url, prefix)?;
    Ok(Cache::shared(redis.values(), redis.calls(), redis))
}

impl Redis {
    /// A connection to Redis at `url` with keys under `prefix`, made on
    /// first use and remade whenever it breaks.
    ///
    /// # Errors
    ///
    /// Fails when `url` is not a Redis URL.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime.
    pub fn open(url: &str, prefix: &str) -> Result<Self, StorageError> {
        let client = redis::Client::open(url).map_err(backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEFAULT_TIMEOUT))
            .set_response_timeout(Some(DEFAULT_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(backend)?;
        Ok(Self {
            client,
            conn,
            prefix: Arc::from(prefix),
            bus: Arc::new(Bus {
                tx: tokio::sync::broadcast::channel(1024).0,
                listening: std::sync::Once::new(),
                value_head: format!("{prefix}:v:"),
                eviction: eviction::Eviction::new(),
            }),
        })
    }

    /// The value storage.
    pub fn values(&self) -> RedisValues {
        RedisValues {
            redis: self.clone(),
        }
    }

    /// The call storage.
    pub fn calls(&self) -> RedisCalls {
        RedisCalls {
            redis: self.clone(),
        }
    }

    fn key(&self, kind: char, digest: &Digest) -> String {
        format!("{}:{kind}:{digest}", self.prefix)
    }

    /// Runs one command. The connection manager bounds it: connecting by
    /// its connection timeout, the reply by its response timeout (both
    /// [`DEFAULT_TIMEOUT`]), so no extra timer is armed per command.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StorageError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(backend)
    }

    /// Every digest under `<prefix>:<kind>:` starting with `prefix`.
    async fn scan(
        &self,
        kind: char,
        prefix: Option<&DigestPrefix>,
    ) -> Result<Vec<Digest>, StorageError> {
        let head = format!("{}:{kind}:", self.prefix);
        let pattern = format!("{head}{}*", prefix.map_or("", |p| p.as_str()));
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            out.extend(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(&head)?.parse::<Digest>().ok()),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// Values in Redis.
#[derive(Clone, Debug)]
pub struct RedisValues {
    redis: Redis,
}

/// Call records in Redis.
#[derive(Clone, Debug)]
pub struct RedisCalls {
    redis: Redis,
}

#[async_trait]
impl ValueStorage for RedisValues {
    /// A value whose bytes do not match its digest is deleted (unless a
    /// good copy replaced it meanwhile) and reads as a miss, so that the
    /// next save of that value stores it again.
    async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        let key = self.redis.key('v', digest);
        let bytes: Option<Vec<u8>> = self.redis.query(redis::cmd("GET").arg(&key)).await?;
        match bytes {
            Some(b) if Digest::of_encoded(&b) != *digest => {
                self.redis
                    .query::<i64>(redis::cmd("EVAL").arg(DELETE_IF).arg(1).arg(&key).arg(b))
                    .await?;
                tracing::warn!(%digest, "redis: a value did not match its digest; removed, read as a miss");
                Ok(None)
            }
            found => Ok(found.map(Bytes::from)),
        }
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.put_many(&[(*digest, bytes)]).await
    }

    async fn put_many(&self, values: &[(Digest, Bytes)]) -> Result<(), StorageError> {
        // One script for the whole batch; a value already stored is not
        // written again, its time to live is extended (see `ttl`).
        for chunk in values.chunks(ttl::SCRIPT_BATCH) {
            let cmd = ttl::put_values(
                chunk
                    .iter()
                    .map(|(d, b)| (self.redis.key('v', d), b.as_ref())),
            );
            self.redis.script::<i64>(&ttl::PUT_VALUES, &cmd).await?;
        }
        Ok(())
    }

    /// By its time to live, which tells when a value nothing holds was
    /// last written (see `ttl::DELETE_IF_WRITTEN_BEFORE`); one that a
    /// record without a lifespan held, now gone, goes whatever its age.
    async fn remove_if_written_before(
        &self,
        digest: &Digest,
        before: flechette_core::Timestamp,
    ) -> Result<bool, StorageError> {
        let key = self.redis.key('v', digest);
        let n: i64 = self
            .redis
            .query(
                redis::cmd("EVAL")
                    .arg(ttl::DELETE_IF_WRITTEN_BEFORE)
                    .arg(1)
                    .arg(key)
                    .arg(&ttl::written_before_args(before)[..]),
            )
            .await?;
        Ok(n > 0)
    }

    async fn contains(&self, digest: &Digest) -> Result<bool, StorageError> {
        self.redis
            .query(redis::cmd("EXISTS").arg(self.redis.key('v', digest)))
            .await
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, StorageError> {
        let n: u64 = self
            .redis
            .query(redis::cmd("DEL").arg(self.redis.key('v', digest)))
            .await?;
        Ok(n > 0)
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.redis.scan('v', prefix).await
    }
}

/// A call as stored under `<prefix>:c:<key>`: the result's hex digest (64
/// ASCII bytes), then (`with_arguments`, on a server that may evict) `+`
/// and the hex digest of each argument in order, then the MessagePack
/// record. The header lets the lookup script find the
/// values with `string.sub` instead of decoding the record in Lua, which
/// measured as much as the rest of the lookup. (Calls stored before the
/// argument digests were in the header, or on a server without a bound,
/// have none there; they read the same, and a lookup touches only their
/// result. A record never starts with `+`, a MessagePack integer.)
fn stored_call(record: &CallRecord, with_arguments: bool) -> Result<Vec<u8>, StorageError> {
    let mut bytes = record.result.to_hex().into_bytes();
    for (_, d) in record.arguments.iter().filter(|_| with_arguments) {
        bytes.push(b'+');
        bytes.extend(d.to_hex().into_bytes());
    }
    bytes.extend(encode_record(record)?);
    Ok(bytes)
}

/// The argument digests of a stored call's header, as hex, and the record
/// behind them.
fn split_arguments(mut rest: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut arguments = Vec::new();
    while let Some((b'+', after)) = rest.split_first()
        && let Some((hex, after)) = after.split_at_checked(HEADER)
    {
        arguments.push(hex);
        rest = after;
    }
    (arguments, rest)
}

/// The record in a stored call, if it is whole, consistent with its header
/// and with `key`; anything else is logged and read as a miss.
fn decoded(key: &Digest, bytes: &[u8]) -> Option<CallRecord> {
    let problem = match bytes.split_at_checked(HEADER) {
        None => "is shorter than its header".to_owned(),
        Some((header, rest)) => {
            let (arguments, body) = split_arguments(rest);
            match decode_record(body) {
                Ok(record) if !record.result.is_hex(header) => {
                    "names another result in its header".to_owned()
                }
                Ok(record) if !names_its_arguments(&record, &arguments) => {
                    "names other arguments in its header".to_owned()
                }
                Ok(record) if record.key() != *key => "does not match its key".to_owned(),
                Ok(record) => return Some(record),
                Err(e) => format!("does not decode ({e})"),
            }
        }
    };
    tracing::warn!(%key, "redis: a stored call {problem}; read as a miss");
    None
}

/// Whether a header's argument digests are the record's (a header from
/// before they were written there names none).
fn names_its_arguments(record: &CallRecord, arguments: &[&[u8]]) -> bool {
    arguments.is_empty()
        || (arguments.len() == record.arguments.len()
            && record
                .arguments
                .iter()
                .zip(arguments)
                .all(|((_, d), hex)| d.is_hex(hex)))
}

/// Where the stored call ends in a lookup's answer: the answer is the
/// stored call's length (4 bytes, big-endian), the stored call, then the
/// result value if Redis has it. `None` when the answer is shorter than
/// its length says.
fn call_end(answer: &[u8]) -> Option<usize> {
    let (len, rest) = answer.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then_some(4 + len)
}

/// Length of the result digest in front of every stored call.
const HEADER: usize = 64;

#[async_trait]
impl CallStorage for RedisCalls {
    /// The record, by the lookup script without its result: reading a call
    /// counts as a use of its values (see the lookup script).
    async fn get(&self, key: &Digest) -> Result<Option<CallRecord>, StorageError> {
        let Some(found) = self.redis.lookup(key, false).await? else {
            return Ok(None);
        };
        match call_end(&found) {
            Some(end) => Ok(decoded(key, &found[4..end])),
            None => {
                tracing::warn!(%key, "redis: the lookup script answered in an unknown form; read as a miss");
                Ok(None)
            }
        }
    }

    async fn put(&self, key: &Digest, record: &CallRecord) -> Result<(), StorageError> {
        self.put_many(&[(*key, record.clone())]).await
    }

    async fn put_many(&self, records: &[(Digest, CallRecord)]) -> Result<(), StorageError> {
        // One script for the whole batch: each record, then the lives of
        // its values (see `ttl`).
        let with_arguments = self.redis.may_evict().await;
        for chunk in records.chunks(ttl::SCRIPT_BATCH) {
            let calls = chunk
                .iter()
                .map(|(key, record)| {
                    Ok(ttl::CallWrite {
                        key: self.redis.key('c', key),
                        bytes: stored_call(record, with_arguments)?,
                        record,
                    })
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            let cmd = ttl::put_calls(&calls, |d| self.redis.key('v', d));
            self.redis.script::<i64>(&ttl::PUT_CALLS, &cmd).await?;
        }
        Ok(())
    }

    async fn get_with_result(
        &self,
        key: &Digest,
    ) -> Result<Option<(CallRecord, Option<Bytes>)>, StorageError> {
        let Some(found) = self.redis.lookup(key, true).await? else {
            return Ok(None);
        };
        let Some(end) = call_end(&found) else {
            tracing::warn!(%key, "redis: the lookup script answered in an unknown form; read as a miss");
            return Ok(None);
        };
        let Some(record) = decoded(key, &found[4..end]) else {
            return Ok(None);
        };
        let result = (end < found.len()).then(|| Bytes::from(found).slice(end..));
        let result = verified_result(&record, result);
        Ok(Some((record, result)))
    }

    async fn remove(&self, key: &Digest) -> Result<bool, StorageError> {
        let n: u64 = self
            .redis
            .query(redis::cmd("DEL").arg(self.redis.key('c', key)))
            .await?;
        Ok(n > 0)
    }

    async fn list(&self, prefix: Option<&DigestPrefix>) -> Result<Vec<Digest>, StorageError> {
        self.redis.scan('c', prefix).await
    }

    async fn query(&self, query: &CallQuery) -> Result<Vec<(Digest, CallRecord)>, StorageError> {
        let keys = self.redis.scan('c', None).await?;
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let mut mget = redis::cmd("MGET");
            for key in chunk {
                mget.arg(self.redis.key('c', key));
            }
            let found: Vec<Option<Vec<u8>>> = self.redis.query(&mget).await?;
            for (key, bytes) in chunk.iter().zip(found) {
                if let Some(record) = bytes.and_then(|b| decoded(key, &b))
                    && query.matches(&record)
                {
                    out.push((*key, record));
                }
            }
        }
        Ok(out)
    }
}

/// A lookup in one round trip: the stored call with the result value its
/// header names (see [`stored_call`]) right behind it, as one string led by
/// the stored call's length (4 bytes, big-endian). One string rather than a
/// pair spares Redis and the client an array reply. The script's SHA is
/// computed once.
///
/// On a server with a `maxmemory` bound (`ARGV[3]` = `1`, see
/// `eviction`), every value the header names is touched (the result by
/// reading it, or by `TOUCH` when only the record is wanted, `ARGV[2]` =
/// `0`), so that under an LRU or LFU policy a call that is read keeps all
/// of its values.
static LOOKUP: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local r = redis.call('GET', KEYS[1])
if not r then return nil end
local n = struct.pack('>I4', #r)
if #r < 64 then return n .. r end
local at = 65
while ARGV[3] == '1' and string.byte(r, at) == 43 do
  redis.call('TOUCH', ARGV[1] .. string.sub(r, at + 1, at + 64))
  at = at + 65
end
local result = ARGV[1] .. string.sub(r, 1, 64)
if ARGV[2] == '0' then
  if ARGV[3] == '1' then redis.call('TOUCH', result) end
  return n .. r
end
local v = redis.call('GET', result)
if not v then return n .. r end
return n .. r .. v",
    )
});

/// Deletes a key only if it still holds `ARGV[1]`: a lock its token, or a
/// damaged value the bytes that were read.
const DELETE_IF: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

impl Redis {
    /// Runs `cmd`, an `EVALSHA` of `script`, loading the script when Redis
    /// does not know it (its first use, or after a restart) and trying
    /// again.
    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        cmd: &redis::Cmd,
    ) -> Result<T, StorageError> {
        let mut conn = self.conn.clone();
        match cmd.query_async(&mut conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.load_async(&mut conn).await.map_err(backend)?;
                cmd.query_async(&mut conn).await.map_err(backend)
            }
            found => found.map_err(backend),
        }
    }

    /// Runs the lookup script by its SHA, loading it when Redis does not
    /// know it (the first lookup, or after a restart) and trying again.
    /// Whether the server may evict keys (asked now and then; see
    /// `eviction`).
    async fn may_evict(&self) -> bool {
        if let Some(known) = self.bus.eviction.known() {
            return known;
        }
        let reply: Result<Vec<String>, StorageError> = self
            .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory"))
            .await;
        let maxmemory = reply.ok().and_then(|r| eviction::maxmemory(&r));
        self.bus.eviction.note(maxmemory)
    }

    /// With `result`, the answer carries the result value too.
    async fn lookup(&self, key: &Digest, result: bool) -> Result<Option<Vec<u8>>, StorageError> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha
            .arg(LOOKUP.get_hash())
            .arg(1)
            .arg(self.key('c', key))
            .arg(&self.bus.value_head)
            .arg(if result { "1" } else { "0" })
            .arg(if self.may_evict().await { "1" } else { "0" });
        self.script(&LOOKUP, &evalsha).await
    }
}

#[cfg(test)]
mod tests {
    use super::call_end;

    #[test]
    fn a_lookup_answer_splits_at_the_stored_call_length() {
        assert_eq!(call_end(b"\0\0\0\x03abcVALUE"), Some(7));
        assert_eq!(call_end(b"\0\0\0\x03abc"), Some(7));
        assert_eq!(call_end(b"\0\0\0\0"), Some(4));
        assert_eq!(call_end(b"\0\0\0\x09abc"), None, "shorter than it says");
        assert_eq!(call_end(b"\0\0\x03"), None, "no whole length");
        assert_eq!(call_end(b""), None);
    }
}
