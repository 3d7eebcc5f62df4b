//! Queries over call records.

use serde::Serialize;

use crate::encoding::EncodeError;
use crate::{CallRecord, Digest, DigestPrefix, digest};

/// A filter over call records; every field left unset matches anything.
///
/// Argument and result values are compared by digest, so a query never
/// loads a value. Storage backends receive the whole query and may push it
/// down into an index.
///
/// ```
/// use flechette_core::CallQuery;
/// let q = CallQuery::new().name("fib").argument("n", &10u64).tag("project", "p1");
/// # let _ = q;
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct CallQuery {
    /// The function name to match.
    pub name: Option<String>,
    /// The module to match.
    pub module: Option<String>,
    /// The version to match.
    pub version: Option<String>,
    /// Arguments (by name) whose digest must start with the prefix.
    pub arguments: Vec<(String, DigestPrefix)>,
    /// A prefix the result digest must start with.
    pub result: Option<DigestPrefix>,
    /// Tag keys that must be present.
    pub has_tags: Vec<String>,
    /// Tag key and value pairs that must be present.
    pub tags: Vec<(String, String)>,
    /// Metadata keys that must be present (`runtime`, `lifespan`, `tags` or
    /// a key of the open map).
    pub has_metadata: Vec<String>,
    /// Open-map metadata entries that must equal the value.
    pub metadata: Vec<(String, serde_json::Value)>,
    /// An argument or result value that failed to encode.
    pub(crate) error: Option<EncodeError>,
}

impl CallQuery {
    /// A query that matches every call.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only calls of the function `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only calls of functions in `module`.
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.module = Some(module.into());
        self
    }

    /// Only calls of this function version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Only calls whose argument `name` equals `value`.
    pub fn argument<T: Serialize + ?Sized>(self, name: impl Into<String>, value: &T) -> Self {
        match digest(value) {
            Ok(d) => self.argument_digest(name, d),
            Err(e) => self.failed(e),
        }
    }

    /// Only calls whose argument `name` has a digest starting with `prefix`
    /// (a full [`Digest`] or a short one).
    pub fn argument_digest(
        mut self,
        name: impl Into<String>,
        prefix: impl Into<DigestPrefix>,
    ) -> Self {
        self.arguments.push((name.into(), prefix.into()));
        self
    }

    /// Only calls whose result equals `value`.
    pub fn result<T: Serialize + ?Sized>(self, value: &T) -> Self {
        match digest(value) {
            Ok(d) => self.result_digest(d),
            Err(e) => self.failed(e),
        }
    }

    /// Only calls whose result digest starts with `prefix`.
    pub fn result_digest(mut self, prefix: impl Into<DigestPrefix>) -> Self {
        self.result = Some(prefix.into());
        self
    }

    /// Only calls tagged with `key`, whatever the value.
    pub fn has_tag(mut self, key: impl Into<String>) -> Self {
        self.has_tags.push(key.into());
        self
    }

    /// Only calls tagged `key = value`.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Only calls whose metadata has `key`.
    pub fn has_metadata(mut self, key: impl Into<String>) -> Self {
        self.has_metadata.push(key.into());
        self
    }

    /// Only calls whose open metadata map has `key` equal to `value`.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    fn failed(mut self, e: EncodeError) -> Self {
        self.error.get_or_insert(e);
        self
    }

    /// The encoding error of a value given to the builder, if any.
    pub fn error(&self) -> Option<&EncodeError> {
        self.error.as_ref()
    }

    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &CallRecord) -> bool {
        let meta = &record.metadata;
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == have)
        };
        let prefix_ok = |p: &DigestPrefix, d: Option<&Digest>| d.is_some_and(|d| p.matches(d));
        eq(&self.name, Some(&record.name))
            && eq(&self.module, Some(&record.module))
            && eq(&self.version, record.version.as_deref())
            && self
                .arguments
                .iter()
                .all(|(n, p)| prefix_ok(p, record.argument(n)))
            && self
                .result
                .as_ref()
                .is_none_or(|p| p.matches(&record.result))
            && self.has_tags.iter().all(|k| meta.tags.contains_key(k))
            && self.tags.iter().all(|(k, v)| meta.tags.get(k) == Some(v))
            && self.has_metadata.iter().all(|k| match k.as_str() {
                "runtime" => meta.runtime.is_some(),
                "lifespan" => meta.lifespan.is_some(),
                "tags" => !meta.tags.is_empty(),
                other => meta.extra.contains_key(other),
            })
            && self
                .metadata
                .iter()
                .all(|(k, v)| meta.extra.get(k) == Some(v))
    }
}
