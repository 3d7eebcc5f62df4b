//! Call records: what one cached call was, with its metadata.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Digest;

/// A point in wall-clock time: microseconds since the Unix epoch.
///
/// Stored in records so that lifespans hold across restarts and processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// This time plus `d` (saturating).
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// Seconds since the epoch, as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Self(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }
}

impl std::fmt::Display for Timestamp {
    /// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// When a call ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// When the computation started.
    pub timestart: Timestamp,
    /// When it returned.
    pub timestop: Timestamp,
    /// Its duration in seconds, measured on a monotonic clock.
    pub walltime: f64,
}

/// How long a cached result stays fresh, in absolute times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifespan {
    /// When the result was stored.
    pub created: Timestamp,
    /// After this, a read serves the value and refreshes it in the background.
    pub update_after: Option<Timestamp>,
    /// After this, a read waits for a fresh value.
    pub expire_after: Option<Timestamp>,
}

/// What is known about a call besides its identity and result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Timings of the computation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    /// Tags of the enclosing tags scope.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Freshness of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifespan: Option<Lifespan>,
    /// Anything else, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The record of one call: its identity, the digests of its arguments and
/// result, and its metadata.
///
/// The values themselves live in value storage under those digests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The function's name.
    pub name: String,
    /// The module (or crate path) the function belongs to.
    pub module: String,
    /// The function's version; changing it gives new keys.
    #[serde(default)]
    pub version: Option<String>,
    /// Argument name and value digest, in parameter order.
    pub arguments: Vec<(String, Digest)>,
    /// The digest of the result value.
    pub result: Digest,
    /// Runtime, tags, lifespan and more.
    #[serde(default)]
    pub metadata: Metadata,
}

impl CallRecord {
    /// Whether the call is past its `expire_after` at `now`; never for a
    /// record without one.
    pub fn expired_at(&self, now: Timestamp) -> bool {
        self.metadata
            .lifespan
            .as_ref()
            .and_then(|l| l.expire_after)
            .is_some_and(|at| at <= now)
    }

    /// The call key: covers name, module, version and argument digests —
    /// never metadata or result.
    pub fn key(&self) -> Digest {
        call_key(
            &self.name,
            &self.module,
            self.version.as_deref(),
            &self.arguments,
        )
    }

    /// The digest of the argument called `name`.
    pub fn argument(&self, name: &str) -> Option<&Digest> {
        self.arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
    }

    /// Every value digest the record refers to: arguments and result.
    pub fn value_digests(&self) -> impl Iterator<Item = &Digest> {
        self.arguments
            .iter()
            .map(|(_, d)| d)
            .chain(std::iter::once(&self.result))
    }
}

/// The key of a call from its identity.
///
/// The identity is hashed as the canonical encoding of the map `{name,
/// module, version, arguments}` (arguments as `[name, digest]` pairs),
/// written straight into the hasher in canonical order: fields sorted by
/// their encoded names, which puts the shorter names first.
pub fn call_key<N: AsRef<str>>(
    name: &str,
    module: &str,
    version: Option<&str>,
    arguments: &[(N, Digest)],
) -> Digest {
    use crate::encoding::wire;
    let mut sink = crate::encoding::HashSink::new(crate::digest::CALL_DOMAIN);
    wire::map_header(&mut sink, 4);
    wire::string(&mut sink, "name");
    wire::string(&mut sink, name);
    wire::string(&mut sink, "module");
    wire::string(&mut sink, module);
    wire::string(&mut sink, "version");
    match version {
        Some(v) => wire::string(&mut sink, v),
        None => wire::nil(&mut sink),
    }
    wire::string(&mut sink, "arguments");
    wire::array_header(&mut sink, arguments.len());
    for (n, d) in arguments {
        wire::array_header(&mut sink, 2);
        wire::string(&mut sink, n.as_ref());
        wire::string(&mut sink, d.hex().as_str());
    }
    Digest::from_bytes(sink.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written encoding in `call_key` is the canonical encoding
    /// of the identity struct.
    #[test]
    fn call_key_is_the_canonical_identity() {
        #[derive(Serialize)]
        struct Identity<'a> {
            name: &'a str,
            module: &'a str,
            version: Option<&'a str>,
            arguments: Vec<(&'a str, &'a Digest)>,
        }
        let x = crate::digest(&1u8).unwrap();
        let long = "n".repeat(40);
        let many: Vec<(String, Digest)> = (0..20).map(|i| (format!("a{i}"), x)).collect();
        type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<(String, Digest)>);
        let cases: [Case<'_>; 4] = [
            ("f", "m", None, vec![]),
            ("f", "m", Some("2"), vec![("x".into(), x)]),
            (
                &long,
                "app::deep::module",
                Some(""),
                vec![(long.clone(), x)],
            ),
            ("g", "", None, many),
        ];
        for (name, module, version, arguments) in &cases {
            let identity = Identity {
                name,
                module,
                version: *version,
                arguments: arguments.iter().map(|(n, d)| (n.as_str(), d)).collect(),
            };
            assert_eq!(
                call_key(name, module, *version, arguments),
                crate::digest::call_digest(&identity).unwrap(),
                "{name} {module} {version:?} {}",
                arguments.len()
            );
        }
    }

    fn record() -> CallRecord {
        CallRecord {
            name: "f".into(),
            module: "m".into(),
            version: None,
            arguments: vec![("x".into(), crate::digest(&1).unwrap())],
            result: crate::digest(&2).unwrap(),
            metadata: Metadata::default(),
        }
    }

    #[test]
    fn key_ignores_metadata_and_result() {
        let a = record();
        let mut b = record();
        b.result = crate::digest(&3).unwrap();
        b.metadata.tags.insert("t".into(), "v".into());
        assert_eq!(a.key(), b.key());
        b.version = Some("2".into());
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00:00.000000");
        assert_eq!(
            Timestamp(951_782_400_000_001).to_string(),
            "2000-02-29 00:00:00.000001"
        );
    }
}
