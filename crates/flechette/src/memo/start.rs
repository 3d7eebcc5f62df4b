//! The synchronous start of a call: the probe of the in-process tier with
//! the arguments borrowed (a fresh hit moves only its value), and what a
//! call does after it: answer, start one refresh, or hand on to a flight.

use super::*;

/// What the hot tier holds for a call.
pub(crate) enum Probe<T> {
    /// A fresh value: the answer.
    Fresh(T),
    /// A stale value: the answer, while one refresh starts.
    Stale(T),
    /// Nothing usable (an expired entry is removed).
    Absent,
    /// The caller is in rerun mode: the tier is not read.
    Rerun,
}

/// What the synchronous start of a call decided.
pub(crate) enum Step<A, T, E> {
    /// Answered from the hot tier.
    Done(T),
    /// To be answered by a flight (running the given body, if any).
    Fly(HotKey, A, Kind, Option<Job<A, T, E>>),
}

impl<A, T, E> Memo<A, T, E>
where
    A: Args,
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// The hot tier's answer for `args`, whose canonical bytes are written
    /// into `bytes` on the way. Takes the arguments by reference, so that a
    /// fresh hit moves nothing but its value.
    #[inline]
    pub(crate) fn probe(&self, args: &A, bytes: &mut ArgBytes) -> Result<Probe<T>, CallError<E>> {
        encoding::write_to(args, &mut Buf(bytes))?;
        if scope::rerunning() {
            return Ok(Probe::Rerun);
        }
        let key = HotKeyRef {
            cache: self.cache_id(),
            args: bytes,
        };
        let Some(entry) = self.hot.get(key) else {
            return Ok(Probe::Absent);
        };
        let age = if entry.deadlines.never() {
            Age::Fresh
        } else {
            entry.deadlines.age(Instant::now())
        };
        Ok(match age {
            Age::Fresh => {
                self.counters.hits.incr();
                Probe::Fresh(entry.value)
            }
            Age::Stale => Probe::Stale(entry.value),
            Age::Expired => {
                self.hot.remove(key);
                Probe::Absent
            }
        })
    }

    /// The synchronous start of a call: answered from the hot tier (fresh,
    /// or stale while one refresh starts), or handed on to a flight.
    #[inline]
    pub(crate) fn start<B: Body<A, T, E>>(
        self: &Arc<Self>,
        args: A,
        body: B,
    ) -> Result<Step<A, T, E>, CallError<E>> {
        let mut bytes = ArgBytes::new();
        let probe = self.probe(&args, &mut bytes)?;
        Ok(self.after_probe(probe, &bytes, args, body))
    }

    /// What a call does after its probe of the hot tier, `bytes` its
    /// argument bytes.
    pub(crate) fn after_probe<B: Body<A, T, E>>(
        self: &Arc<Self>,
        probe: Probe<T>,
        bytes: &[u8],
        args: A,
        body: B,
    ) -> Step<A, T, E> {
        let key = HotKey {
            cache: self.cache_id(),
            args: bytes.into(),
        };
        match probe {
            Probe::Fresh(value) => Step::Done(value),
            Probe::Stale(value) => {
                self.counters.stale_hits.incr();
                self.refresh(key, args, body.into_job());
                Step::Done(value)
            }
            Probe::Rerun => Step::Fly(key, args, Kind::Force, body.into_job()),
            Probe::Absent => {
                self.counters.misses.incr();
                Step::Fly(key, args, Kind::Load, body.into_job())
            }
        }
    }
}
