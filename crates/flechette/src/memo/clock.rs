//! The clock lifespans are judged by.
//!
//! Lifespans are stored as absolute wall-clock times, so that a persistent
//! cache honours them after a restart and across processes. They are judged
//! against the clock of the runtime the call runs on: the wall clock, moved
//! by exactly as much as that runtime's clock has moved from the monotonic
//! clock. On a normal runtime the two move together, so this is the wall
//! clock; on a runtime whose clock is paused (tokio's test clock), time
//! moves only when that runtime's clock does. Nothing is kept between
//! calls, so runtimes in one process never see each other's time.

use std::time::Duration;

use flechette_core::{Lifespan, Timestamp};
use tokio::time::Instant;

use super::policy::Deadlines;

/// The wall-clock time at `now`, an instant of the current runtime's clock.
fn wall_at(now: Instant) -> Timestamp {
    let wall = Timestamp::now();
    let real = std::time::Instant::now();
    let now = now.into_std();
    // How far this runtime's clock is ahead of (or behind) the real one.
    match now.checked_duration_since(real) {
        Some(ahead) => wall.plus(ahead),
        None => {
            let behind = real.saturating_duration_since(now);
            Timestamp(wall.0.saturating_sub(micros(behind)))
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
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
        let moved = after.0 - before.0;
        // The wall clock is read twice; the real time between the reads is
        // not counted on a paused clock.
        assert!((moved - 3_600_000_000).abs() < 1_000_000, "{moved}");
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
