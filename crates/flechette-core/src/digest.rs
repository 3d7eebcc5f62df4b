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
        self.hex().as_str().to_owned()
    }

    /// Whether `hex` is this digest's lowercase hex form.
    pub fn is_hex(&self, hex: &[u8]) -> bool {
        hex == self.hex().0
    }

    /// The hex form in a buffer of its own, as a `&str` by [`Hex::as_str`].
    pub(crate) fn hex(&self) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        Hex(out)
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

/// SHA-256 over the call domain and the canonical encoding of `value`: the
/// generic form of [`call_key`](crate::call_key), which writes its one shape
/// by hand; tests hold the two equal.
#[cfg(test)]
pub(crate) fn call_digest<T: Serialize + ?Sized>(value: &T) -> Result<Digest, EncodeError> {
    let mut sink = HashSink::new(CALL_DOMAIN);
    encoding::write_to(value, &mut sink)?;
    Ok(Digest(sink.finish()))
}

/// 64 lowercase hex digits.
pub(crate) struct Hex([u8; 64]);

impl Hex {
    pub(crate) fn as_str(&self) -> &str {
        // Hex digits are ASCII: this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
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
        // Digit values, or 0x10 and up for a non-digit: OR-ing every value
        // finds a bad character with one test at the end.
        let mut bad = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let (hi, lo) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
            bad |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        if bad > 0x0f {
            return Err(err());
        }
        Ok(Self(bytes))
    }
}

/// The value of each byte as a hex digit (either case), 0xff for the rest.
const NIBBLES: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        table[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex().as_str())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(HexVisitor)
    }
}

/// Reads the hex form in place: decoding a record allocates nothing per
/// digest.
struct HexVisitor;

impl serde::de::Visitor<'_> for HexVisitor {
    type Value = Digest;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a digest as 64 hex characters")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Digest, E> {
        s.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_covers_every_byte() {
        for first in (0..=255u8).step_by(32) {
            let bytes: [u8; 32] = std::array::from_fn(|i| first.wrapping_add(i as u8));
            let d = Digest::from_bytes(bytes);
            assert_eq!(d.to_hex(), hex::encode(bytes));
            assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
            assert_eq!(hex::encode_upper(bytes).parse::<Digest>().unwrap(), d);
        }
    }

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
    fn deserializes_from_borrowed_and_owned_strings() {
        let d = digest(&42u64).unwrap();
        let packed = rmp_serde::to_vec(&d).unwrap();
        assert_eq!(rmp_serde::from_slice::<Digest>(&packed).unwrap(), d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        let value = serde_json::Value::String(d.to_hex());
        assert_eq!(serde_json::from_value::<Digest>(value).unwrap(), d);
        let err = serde_json::from_str::<Digest>("\"abc\"").unwrap_err();
        assert!(err.to_string().contains("not a digest"), "{err}");
        assert!(serde_json::from_str::<Digest>("7").is_err());
    }

    #[test]
    fn one_bad_character_anywhere_is_an_error() {
        let good = digest(&42u64).unwrap().to_hex();
        for at in 0..64 {
            for bad in ["g", "G", " ", ":", "/", "@", "`", "\u{7f}"] {
                let mut s = good.clone();
                s.replace_range(at..=at, bad);
                assert!(s.parse::<Digest>().is_err(), "{s}");
            }
        }
    }

    #[test]
    fn is_hex_compares_the_lowercase_form() {
        let d = digest(&42u64).unwrap();
        assert!(d.is_hex(d.to_hex().as_bytes()));
        assert!(!d.is_hex(d.to_hex().to_uppercase().as_bytes()));
        assert!(!d.is_hex(&d.to_hex().as_bytes()[..63]));
        assert!(!d.is_hex(digest(&43u64).unwrap().to_hex().as_bytes()));
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
