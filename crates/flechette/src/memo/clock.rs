//! The clock lifespans are judged by, as instants of the current runtime
//! (see [`flechette_core::clock`], which storage judges expiry by too).

use std::time::Duration;

use flechette_core::clock::wall_at;
use flechette_core::{Lifespan, Timestamp};
use tokio::time::Instant;

use super::policy::Deadlines;

/// The wall-clock time of lifespans, now, on the current runtime's clock.
pub(crate) fn lifespan_now() -> Timestamp {
    flechette_core::clock::now()
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
