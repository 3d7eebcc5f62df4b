//! Errors keep their causes: every `CallError` that wraps another error
//! exposes it through `source()`, so error reports show the whole chain.

use std::error::Error;

use flechette::{Arg, Cache, CachedFn, CallError};

/// The function's own error, with a cause of its own.
#[derive(Debug, thiserror::Error)]
#[error("the upstream refused")]
struct Refused(#[source] std::io::Error);

/// The messages of `e` and its sources, outermost first.
fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut at = e.source();
    while let Some(cause) = at {
        out.push(cause.to_string());
        at = cause.source();
    }
    out
}

#[tokio::test]
async fn a_failed_computation_is_the_source_of_the_call_error() {
    let f = CachedFn::builder("refusing")
        .cache(Cache::memory())
        .build_fallible(|(): ()| async {
            Err::<u8, _>(Refused(std::io::Error::other("connection reset")))
        });
    let e = f.call(()).await.unwrap_err();
    assert!(matches!(e, CallError::Failed(_)));
    let source = e.source().expect("the function's error is the source");
    assert!(
        source.downcast_ref::<Refused>().is_some(),
        "the source is the function's own error type"
    );
    assert_eq!(
        chain(&e),
        [
            "cached function failed",
            "the upstream refused",
            "connection reset"
        ]
    );
}

#[tokio::test]
async fn a_storage_error_behind_an_argument_is_in_the_chain() {
    let cache = Cache::memory();
    let f = CachedFn::builder("double")
        .args(["x"])
        .cache(cache.clone())
        .build(|(x,): (u64,)| async move { x * 2 });
    // A prefix that names nothing in the cache.
    let e = f
        .call_with((Arg::<u64>::stored(flechette::D("0123abcd").unwrap()),))
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Argument(_)));
    let source = e.source().expect("the cache error is the source");
    assert!(source.downcast_ref::<flechette::CacheError>().is_some());
    let chain = chain(&e);
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert!(chain[1].contains("0123abcd"), "{chain:?}");
}

#[test]
fn the_macro_conversion_keeps_the_cause_too() {
    let e: CallError<Refused> = CallError::Argument(std::sync::Arc::new(
        flechette::CacheError::NoSuchArgument("x".into()),
    ));
    let failure = e.into_failed().unwrap_err();
    let source = failure.source().expect("the cache error is the source");
    assert!(source.to_string().contains("\"x\""), "{source}");
}
