//! A computation running longer than `warn_after` is reported once, with a
//! `tracing` warning naming the function.
//!
//! One subscriber is installed for the whole binary (thread-local ones race
//! with callsite registration when tests run in parallel); each test looks
//! only at the warnings naming its own function.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use flechette::{Cache, CachedFn};
use tokio::time::sleep;

/// Every `tracing` warning of this process, as `field=value` text.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text<'a>(&'a mut String);
        impl tracing::field::Visit for Text<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut Text(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The warnings so far that name `function`.
fn warnings_of(function: &str) -> Vec<String> {
    static ALL: OnceLock<Warnings> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let warnings = Warnings::default();
        tracing::subscriber::set_global_default(warnings.clone()).unwrap();
        warnings
    });
    let needle = format!("function={function} ");
    all.0
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(&needle))
        .cloned()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_computation_running_past_warn_after_is_reported_once() {
    assert!(warnings_of("slowpoke").is_empty());
    let slow = CachedFn::builder("slowpoke")
        .cache(Cache::memory())
        .warn_after(Duration::from_secs(5))
        .build(|(): ()| async {
            sleep(Duration::from_secs(12)).await;
            1u8
        });
    let quick = CachedFn::builder("quick")
        .cache(Cache::memory())
        .warn_after(Duration::from_secs(5))
        .build(|(): ()| async {
            sleep(Duration::from_secs(4)).await;
            1u8
        });
    assert_eq!(quick.call(()).await.unwrap(), 1);
    assert!(warnings_of("quick").is_empty(), "4 s is under 5 s");
    assert_eq!(slow.call(()).await.unwrap(), 1);
    let seen = warnings_of("slowpoke");
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn the_default_warn_after_is_thirty_seconds() {
    assert!(warnings_of("defaults").is_empty());
    let f = CachedFn::builder("defaults")
        .cache(Cache::memory())
        .build(|(): ()| async {
            sleep(Duration::from_secs(29)).await;
            1u8
        });
    assert_eq!(f.call(()).await.unwrap(), 1);
    assert!(warnings_of("defaults").is_empty(), "29 s is under 30 s");
    assert_eq!(f.rerun(()).await.unwrap(), 1);
    let g = CachedFn::builder("defaults_slow")
        .cache(Cache::memory())
        .build(|(): ()| async {
            sleep(Duration::from_secs(31)).await;
            1u8
        });
    assert_eq!(g.call(()).await.unwrap(), 1);
    assert_eq!(warnings_of("defaults_slow").len(), 1);
}

#[test]
fn a_computation_ready_at_once_sets_no_timer_and_needs_no_time_driver() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let f: flechette::CachedFn<(u8,), u8> = flechette::CachedFn::builder("instant")
        .args(["k"])
        .cache(flechette::Cache::memory())
        .build(|(k,): (u8,)| async move { k + 1 });
    runtime.block_on(async {
        assert_eq!(
            f.call((1,)).await.unwrap(),
            2,
            "computed on a runtime without timers"
        );
    });
}
