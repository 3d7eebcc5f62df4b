//! The flechette workspace package: it owns the runnable examples in
//! `examples/` and the cross-crate tests in `tests/`, and publishes nothing.
//! The README and the guide are compiled here as doctests.

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
