//! How long Redis keeps what flechette stores, so that Redis forgets what
//! nothing needs any more by itself and `volatile-*` eviction policies find
//! keys to evict.
//!
//! * A call whose lifespan has an `expire_after` expires then (`PXAT`).
//! * A value is stored with a time to live of the grace period
//!   ([`DEFAULT_GC_GRACE`]), and storing it again extends that (`PEXPIRE ..
//!   GT`): a value nothing refers to goes by itself, and a writer between
//!   saving its values and its record has that long.
//! * A record then holds its values: until its own expiry (`PEXPIREAT ..
//!   GT`, which never shortens a life), or, when it has none, for a
//!   century from now ([`FOREVER`]), which also tells `gc` when the value
//!   was last held. (Without any time to live, a value held by a record
//!   that is then removed could not be told from one a writer is about to
//!   refer to.)

use flechette_core::{CallRecord, DEFAULT_GC_GRACE, Digest, Timestamp};

/// The grace period in milliseconds.
fn grace_ms() -> u64 {
    u64::try_from(DEFAULT_GC_GRACE.as_millis()).unwrap_or(u64::MAX)
}

/// How long a record without a lifespan holds its values: a century, in
/// milliseconds.
pub(crate) const FOREVER: i64 = 100 * 365 * 24 * 3_600 * 1_000;

/// Milliseconds since the epoch of `at`, at least 1 (Redis refuses 0).
pub(crate) fn unix_ms(at: Timestamp) -> i64 {
    (at.0 / 1_000).max(1)
}

/// Stores a value unless present, and claims it anew either way.
pub(crate) fn put_value(pipe: &mut redis::Pipeline, key: &str, bytes: &[u8]) {
    pipe.cmd("SET")
        .arg(key)
        .arg(bytes)
        .arg("NX")
        .arg("PX")
        .arg(grace_ms())
        .ignore();
    pipe.cmd("PEXPIRE")
        .arg(key)
        .arg(grace_ms())
        .arg("GT")
        .ignore();
}

/// Makes the values of `record` live as long as it does.
pub(crate) fn hold_values(
    pipe: &mut redis::Pipeline,
    record: &CallRecord,
    key_of: impl Fn(&Digest) -> String,
) {
    let expires = record
        .metadata
        .lifespan
        .as_ref()
        .and_then(|l| l.expire_after);
    let until = expires.map_or_else(|| unix_ms(Timestamp::now()) + FOREVER, unix_ms);
    let mut digests: Vec<&Digest> = record.value_digests().collect();
    digests.sort_unstable();
    digests.dedup();
    for digest in digests {
        pipe.cmd("PEXPIREAT")
            .arg(key_of(digest))
            .arg(until)
            .arg("GT")
            .ignore();
    }
}

/// Deletes a value that nothing holds (`gc` asks, having found no record
/// that refers to it) unless it was last written or held at or after a
/// time, which its time to live tells (`ARGV[1]`: now, `ARGV[2]`: the grace
/// period, `ARGV[3]`: that time, `ARGV[4]`: [`FOREVER`], in milliseconds):
/// at most the grace period, it was written that much less than the grace
/// period ago; more than half a century, it was held by a record without a
/// lifespan that much less than a century ago; none, it was stored before
/// values had one. In between, an expiring call held it, and it goes by
/// itself when that call would have. 1 when deleted.
pub(crate) const DELETE_IF_WRITTEN_BEFORE: &str = "
local ttl = redis.call('PTTL', KEYS[1])
local now, grace, before, forever =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local written
if ttl == -2 then return 0
elseif ttl == -1 then written = 0
elseif ttl > forever / 2 then written = now + ttl - forever
elseif ttl <= grace then written = now + ttl - grace
else return 0 end
if written < before then return redis.call('DEL', KEYS[1]) end
return 0";

/// The arguments of [`DELETE_IF_WRITTEN_BEFORE`] for `before`.
pub(crate) fn written_before_args(before: Timestamp) -> [i64; 4] {
    let now = unix_ms(Timestamp::now());
    let grace = i64::try_from(grace_ms()).unwrap_or(i64::MAX);
    [now, grace, unix_ms(before), FOREVER]
}
