//! Whether the server may evict keys: a Redis with a `maxmemory` bound
//! evicts by its policy, and then a stored call names its arguments in its
//! header and a lookup touches every value of the call it reads, so that
//! the calls that are read keep their values (see the lookup script). A
//! server without a bound is spared the longer headers and the touches. Redis
//! is asked (`CONFIG GET maxmemory`) on the first lookup and again a minute
//! after each answer, so a bound set later is seen; a server that does not
//! answer (`CONFIG` disabled, as on some managed services) is taken to be
//! bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an answer holds.
const RECHECK: Duration = Duration::from_secs(60);

const UNKNOWN: u64 = 0;
const BOUNDED: u64 = 1;
const UNBOUNDED: u64 = 2;

pub(crate) struct Eviction {
    /// The answer in the low two bits; above them, when it was had, in
    /// milliseconds since `since`.
    state: AtomicU64,
    since: Instant,
}

impl Eviction {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(UNKNOWN),
            since: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX >> 2)
    }

    /// The last answer if it still holds.
    pub(crate) fn known(&self) -> Option<bool> {
        let state = self.state.load(Ordering::Relaxed);
        let at = state >> 2;
        match state & 3 {
            UNKNOWN => None,
            _ if self.now_ms().saturating_sub(at) > RECHECK.as_millis() as u64 => None,
            answer => Some(answer == BOUNDED),
        }
    }

    /// Notes Redis's answer: `maxmemory`, or `None` when it gave none.
    pub(crate) fn note(&self, maxmemory: Option<u64>) -> bool {
        let bounded = maxmemory != Some(0);
        let answer = if bounded { BOUNDED } else { UNBOUNDED };
        self.state
            .store((self.now_ms() << 2) | answer, Ordering::Relaxed);
        bounded
    }
}

/// `maxmemory` from a `CONFIG GET maxmemory` reply.
pub(crate) fn maxmemory(reply: &[String]) -> Option<u64> {
    match reply {
        [name, value] if name == "maxmemory" => value.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_holds_and_no_bound_means_no_touches() {
        let e = Eviction::new();
        assert_eq!(e.known(), None);
        assert!(!e.note(Some(0)));
        assert_eq!(e.known(), Some(false));
        assert!(e.note(Some(1 << 20)));
        assert_eq!(e.known(), Some(true));
        assert!(e.note(None), "no answer: taken to be bounded");
    }

    #[test]
    fn the_reply_is_read_by_name() {
        let reply = |a: &str, b: &str| vec![a.to_owned(), b.to_owned()];
        assert_eq!(maxmemory(&reply("maxmemory", "2097152")), Some(2_097_152));
        assert_eq!(maxmemory(&reply("maxmemory", "0")), Some(0));
        assert_eq!(maxmemory(&reply("other", "0")), None);
        assert_eq!(maxmemory(&[]), None);
    }
}
