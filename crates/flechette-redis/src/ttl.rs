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

use std::sync::LazyLock;

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

/// How many values or calls one script writes at most: Redis runs a
/// script alone, so a large batch goes as several.
pub(crate) const SCRIPT_BATCH: usize = 1_000;

/// Stores each value unless present, and claims a present one anew
/// (`KEYS`: the values' keys; `ARGV[1]`: the grace period in milliseconds,
/// `ARGV[2]`: [`FOREVER`], then the values' bytes): one command for a whole
/// batch. A present value that a record without a lifespan holds (or one
/// stored before values had a time to live) is held for a century from
/// now, which records this write for `gc`; another has its grace period
/// extended.
pub(crate) static PUT_VALUES: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local grace, forever = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  if not redis.call('SET', KEYS[i], ARGV[i + 2], 'NX', 'PX', grace) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl == -1 or ttl > forever / 2 then
      redis.call('PEXPIRE', KEYS[i], forever)
    else
      redis.call('PEXPIRE', KEYS[i], grace, 'GT')
    end
  end
end
return #KEYS",
    )
});

/// The `EVALSHA` of [`PUT_VALUES`] for `values` (keys and bytes).
pub(crate) fn put_values<'a>(
    values: impl ExactSizeIterator<Item = (String, &'a [u8])>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(PUT_VALUES.get_hash()).arg(values.len());
    let (keys, bytes): (Vec<String>, Vec<&[u8]>) = values.unzip();
    cmd.arg(keys).arg(grace_ms()).arg(FOREVER).arg(bytes);
    cmd
}

/// Stores records and makes their values live as long as they do
/// (`KEYS`: the records' keys, then the keys of each record's values in
/// turn; `ARGV`: for each record its stored bytes, its expiry in
/// milliseconds since the epoch or 0, how long its values live, how many
/// they are): one command for a whole batch.
pub(crate) static PUT_CALLS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local calls = #ARGV / 4
local v = calls
for i = 1, calls do
  local bytes, pxat, live, n = ARGV[4 * i - 3], tonumber(ARGV[4 * i - 2]), ARGV[4 * i - 1], tonumber(ARGV[4 * i])
  if pxat > 0 then
    redis.call('SET', KEYS[i], bytes, 'PXAT', pxat)
  else
    redis.call('SET', KEYS[i], bytes)
  end
  for j = 1, n do
    v = v + 1
    redis.call('PEXPIREAT', KEYS[v], live, 'GT')
  end
end
return calls",
    )
});

/// A record for [`put_calls`]: its key, stored bytes and itself.
pub(crate) struct CallWrite<'a> {
    pub(crate) key: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) record: &'a CallRecord,
}

/// The `EVALSHA` of [`PUT_CALLS`] for `calls`; `key_of` names a value.
pub(crate) fn put_calls(calls: &[CallWrite<'_>], key_of: impl Fn(&Digest) -> String) -> redis::Cmd {
    let forever = unix_ms(Timestamp::now()) + FOREVER;
    let mut keys: Vec<String> = calls.iter().map(|c| c.key.clone()).collect();
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(PUT_CALLS.get_hash());
    let mut args: Vec<(&[u8], i64, i64, usize)> = Vec::with_capacity(calls.len());
    for call in calls {
        let expires = call
            .record
            .metadata
            .lifespan
            .as_ref()
            .and_then(|l| l.expire_after)
            .map(unix_ms);
        let mut digests: Vec<&Digest> = call.record.value_digests().collect();
        digests.sort_unstable();
        digests.dedup();
        keys.extend(digests.iter().map(|d| key_of(d)));
        args.push((
            &call.bytes,
            expires.unwrap_or(0),
            expires.unwrap_or(forever),
            digests.len(),
        ));
    }
    cmd.arg(keys.len()).arg(keys);
    for (bytes, pxat, live, n) in args {
        cmd.arg(bytes).arg(pxat).arg(live).arg(n);
    }
    cmd
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
