//! The clock lifespans are judged by.
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

use flechette_core::{Lifespan, Timestamp};
use tokio::time::Instant;

use super::policy::Deadlines;

/// The real wall clock and the real monotonic clock, read together once.
fn real_clocks() -> (Timestamp, std::time::Instant) {
    static REAL: OnceLock<(Timestamp, std::time::Instant)> = OnceLock::new();
    *REAL.get_or_init(|| (Timestamp::now(), std::time::Instant::now()))
}

/// The wall-clock time at `now`, an instant of the current runtime's clock,
/// in whole microseconds rounded down, so that instants a whole number of
/// microseconds apart are exactly that far apart.
fn wall_at(now: Instant) -> Timestamp {
    let (wall, real) = real_clocks();
    let now = now.into_std();
    let nanos = match now.checked_duration_since(real) {
        Some(after) => signed_nanos(after),
        None => -signed_nanos(real.saturating_duration_since(now)),
    };
    let micros = i64::try_from(nanos.div_euclid(1_000)).unwrap_or(i64::MAX);
    Timestamp(wall.0.saturating_add(micros))
}

fn signed_nanos(d: Duration) -> i128 {
    i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)
}

/// The wall-clock time of lifespans, now, on the current runtime's clock.
pub(crate) fn lifespan_now() -> Timestamp {
    wall_at(Instant::now())
}

/// Converts absolute lifespan deadlines into instants of the current
/// runtime's clock. A deadline too far ahead to represent is no deadline; one
/// in the past is now.
pub(crate) fn to_instants(lifespan: &Lifespan) -> Deadlines<Instant> {
    let now = Instant::now();
    let now_wall = wall_at(now);
    let at = |t: Timestamp| {
        let ahead = u64::try_from(t.0.saturating_sub(now_wall.0)).unwrap_or(0);
        now.checked_add(Duration::from_micros(ahead))
    };
    Deadlines {
        update_at: lifespan.update_after.and_then(at),
        expire_at: lifespan.expire_after.and_then(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_moves_lifespans_exactly_as_far_as_it_moves() {
        let before = lifespan_now();
        tokio::time::advance(Duration::from_secs(3_600)).await;
        let after = lifespan_now();
        assert_eq!(after.0 - before.0, 3_600_000_000, "exactly the hour");
        assert_eq!(lifespan_now(), after, "and not a microsecond more");
    }

    #[test]
    fn a_runtime_paused_before_the_first_reading_is_not_frozen() {
        // Its clock starts before the real clocks are first read.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let before = lifespan_now();
            tokio::time::advance(Duration::from_secs(5)).await;
            assert_eq!(lifespan_now().0 - before.0, 5_000_000);
        });
    }

    #[test]
    fn outside_a_runtime_it_is_the_wall_clock() {
        let ours = lifespan_now();
        let wall = Timestamp::now();
        assert!(
            (wall.0 - ours.0).abs() < 1_000_000,
            "{} vs {}",
            ours.0,
            wall.0
        );
    }
}
