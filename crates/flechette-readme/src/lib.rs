//! README.md's code blocks, compiled as doctests of a crate whose only
//! dependencies are flechette, tokio and axum — what a user's service has.
//! A snippet that needs anything else (a crate flechette's own tests happen
//! to depend on) fails here, so README drift fails the build.

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
