//! A cached function that calls itself (or comes back to itself through
//! another cached function) with the key it is computing gets
//! `CallError::Cycle` instead of waiting on itself forever. Recursion on
//! other keys works as before.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flechette::{Cache, CachedFn, CallError};

type Fallible = CachedFn<(u32,), u32, String>;

fn describe<E>(e: &CallError<E>) -> String {
    e.to_string()
}

#[tokio::test(start_paused = true)]
async fn a_function_calling_itself_with_its_own_key_is_a_cycle() {
    static SELF: OnceLock<Fallible> = OnceLock::new();
    let f = SELF.get_or_init(|| {
        CachedFn::builder("ouroboros")
            .args(["n"])
            .cache(Cache::memory())
            .build_fallible(|(n,): (u32,)| async move {
                match SELF.get().unwrap().call((n,)).await {
                    Ok(v) => Ok(v + 1),
                    Err(CallError::Cycle { .. }) => Err("cycle seen".to_owned()),
                    Err(e) => Err(format!("unexpected: {}", describe(&e))),
                }
            })
    });
    let outcome = tokio::time::timeout(Duration::from_secs(5), f.call((3,))).await;
    let e = outcome.expect("no deadlock").unwrap_err();
    assert_eq!(e.failure().map(String::as_str), Some("cycle seen"));
}

#[tokio::test(start_paused = true)]
async fn a_cycle_through_two_functions_is_seen_too() {
    static A: OnceLock<Fallible> = OnceLock::new();
    static B: OnceLock<Fallible> = OnceLock::new();
    let a = A.get_or_init(|| {
        CachedFn::builder("ping")
            .args(["n"])
            .cache(Cache::memory())
            .build_fallible(|(n,): (u32,)| async move {
                B.get().unwrap().call((n,)).await.map_err(|e| match e {
                    CallError::Failed(inner) => (*inner).clone(),
                    other => describe(&other),
                })
            })
    });
    B.get_or_init(|| {
        CachedFn::builder("pong")
            .args(["n"])
            .cache(Cache::memory())
            .build_fallible(|(n,): (u32,)| async move {
                match A.get().unwrap().call((n,)).await {
                    Err(e @ CallError::Cycle { .. }) => Err(describe(&e)),
                    other => Ok(other.map_err(|e| describe(&e))? + 1),
                }
            })
    });
    let outcome = tokio::time::timeout(Duration::from_secs(5), a.call((1,))).await;
    let message = outcome
        .expect("no deadlock")
        .unwrap_err()
        .failure()
        .cloned()
        .unwrap();
    assert!(message.contains("ping"), "names the function: {message}");
    assert!(message.contains("cycle"), "{message}");
}

#[tokio::test]
async fn recursion_on_other_keys_still_works() {
    static SUM: OnceLock<CachedFn<(u64,), u64>> = OnceLock::new();
    let sum = SUM.get_or_init(|| {
        CachedFn::builder("sum_to")
            .args(["n"])
            .cache(Cache::memory())
            .build(|(n,): (u64,)| async move {
                if n == 0 {
                    0
                } else {
                    let below = Box::pin(SUM.get().unwrap().call((n - 1,))).await.unwrap();
                    below + n
                }
            })
    });
    let depth = 3_000u64;
    let total = sum.call((depth,)).await.unwrap();
    assert_eq!(total, depth * (depth + 1) / 2);
    let _ = Arc::new(());
}

#[tokio::test(start_paused = true)]
async fn a_rerun_calling_itself_is_a_cycle_not_an_endless_rerun() {
    static RERUN: OnceLock<Fallible> = OnceLock::new();
    let f = RERUN.get_or_init(|| {
        CachedFn::builder("rerun_ouroboros")
            .args(["n"])
            .cache(Cache::memory())
            .build_fallible(|(n,): (u32,)| async move {
                match RERUN.get().unwrap().call((n,)).await {
                    Err(CallError::Cycle { .. }) => Ok(n),
                    other => other.map_err(|e| describe(&e)),
                }
            })
    });
    let outcome = tokio::time::timeout(Duration::from_secs(5), f.rerun((4,))).await;
    assert_eq!(outcome.expect("no endless rerun").unwrap(), 4);
    assert_eq!(f.stats().computations, 1);
}
