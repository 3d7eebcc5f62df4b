//! The clock lifespans are judged by, shared by storage and cached functions.
//!
//! Lifespans are stored as absolute wall-clock times, so that a persistent
//! cache honours them after a restart and across processes. They are judged
//! against the clock of the runtime the call runs on: an instant of that
//! runtime's clock is turned into wall-clock time by the offset between the
//! real wall clock and the real monotonic clock. That offset is a property
//! of the machine, not of any runtime: it is read once, from the real
//! clocks only (never from a runtime's clock, which may be paused or moved),
//! so it is the same for every runtime of the process, and converting twice
//! gives the same time to the microsecond (reading two clocks on every call
//! would not: a zero lifespan could then read as a microsecond fresh). On a
//! normal runtime this is the wall clock; on a paused one (tokio's test
//! clock), time moves exactly as far as that runtime's clock does, and
//! runtimes never see each other's time.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use crate::Timestamp;

/// The real wall clock and the real monotonic clock, read together once.
fn real_clocks() -> (Timestamp, std::time::Instant) {
    static REAL: OnceLock<(Timestamp, std::time::Instant)> = OnceLock::new();
    *REAL.get_or_init(|| (Timestamp::now(), std::time::Instant::now()))
}

/// The wall-clock time at `at`, an instant of the current runtime's clock,
/// in whole microseconds rounded down, so that instants a whole number of
/// microseconds apart are exactly that far apart.
pub fn wall_at(at: Instant) -> Timestamp {
    let (wall, real) = real_clocks();
    let at = at.into_std();
    let nanos = match at.checked_duration_since(real) {
        Some(after) => signed_nanos(after),
        None => -signed_nanos(real.saturating_duration_since(at)),
    };
    let micros = i64::try_from(nanos.div_euclid(1_000)).unwrap_or(i64::MAX);
    Timestamp(wall.0.saturating_add(micros))
}

fn signed_nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

/// The wall-clock time of lifespans, now, on the current runtime's clock
/// (the wall clock outside a runtime).
pub fn now() -> Timestamp {
    wall_at(Instant::now())
}
