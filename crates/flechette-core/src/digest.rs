//! SHA-256 digests of values and calls.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::encoding::{self, EncodeError, HashSink};

/// Domain prefix of value digests.
pub(crate) const VALUE_DOMAIN: &[u8] = b"flechette/value/1\0";
/// Domain prefix of call keys.
pub(crate) const CALL_DOMAIN: &[u8] = b"flechette/call/1\0";

/// A SHA-256 digest: 32 bytes, shown as 64 lowercase hex characters.
///
/// Value digests and call keys are both `Digest`s; they are domain-separated,
/// so a value never has the digest of a call.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// A digest from its raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The value digest of bytes that are already canonically encoded.
    pub fn of_encoded(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(VALUE_DOMAIN);
        hasher.update(bytes);
        Self(hasher.finalize().into())
    }
}

/// The digest of `value`: SHA-256 over the value domain and the canonical
/// MessagePack encoding of `value`, streamed into the hasher.
///
/// Equal values digest equal in every process: a `HashMap` and a `BTreeMap`
/// with the same entries, `5u8` and `5u64`, `f32` and `f64` of one number.
///
/// ```
/// use std::collections::{BTreeMap, HashMap};
/// let a: HashMap<&str, u8> = [("x", 1), ("y", 2)].into();
/// let b: BTreeMap<String, u64> = [("y".into(), 2), ("x".into(), 1)].into();
/// assert_eq!(flechette_core::digest(&a)?, flechette_core::digest(&b)?);
/// # Ok::<(), flechette_core::encoding::EncodeError>(())
/// ```
///
/// # Errors
///
/// Fails when the value cannot be encoded (see [`EncodeError`]).
pub fn digest<T: Serialize + ?Sized>(value: &T) -> Result<Digest, EncodeError> {
    let mut sink = HashSink::new(VALUE_DOMAIN);
    encoding::write_to(value, &mut sink)?;
    Ok(Digest(sink.finish()))
}

/// The key of a call: SHA-256 over the call domain and the canonical encoding
/// of `value`, which holds the call's identity.
pub(crate) fn call_digest<T: Serialize + ?Sized>(value: &T) -> Result<Digest, EncodeError> {
    let mut sink = HashSink::new(CALL_DOMAIN);
    encoding::write_to(value, &mut sink)?;
    Ok(Digest(sink.finish()))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the input.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A string that is not a 64-character hex digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a digest: {input:?} (want 64 hex characters)")]
pub struct ParseDigestError {
    input: String,
}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDigestError {
            input: s.chars().take(80).collect(),
        };
        if s.len() != 64 {
            return Err(err());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| err())?;
        Ok(Self(bytes))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let d = digest(&42u64).unwrap();
        let s = d.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert_eq!(s.to_uppercase().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn bad_strings_are_errors() {
        assert!("abc".parse::<Digest>().is_err());
        assert!("z".repeat(64).parse::<Digest>().is_err());
        assert!("é".repeat(32).parse::<Digest>().is_err());
    }

    #[test]
    fn value_and_call_domains_differ() {
        assert_ne!(digest(&1u8).unwrap(), call_digest(&1u8).unwrap());
    }

    #[test]
    fn encoded_digest_matches_streamed_digest() {
        let value = ("a", vec![1u32, 2, 3]);
        let bytes = encoding::to_vec(&value).unwrap();
        assert_eq!(Digest::of_encoded(&bytes), digest(&value).unwrap());
    }
}
