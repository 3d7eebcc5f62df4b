//! Short digests: hex prefixes that stand for a full digest in a cache.

use std::fmt;
use std::str::FromStr;

use crate::Digest;

/// The fewest characters a prefix may have.
pub const MIN_PREFIX: usize = 4;

/// A digest prefix of 4 to 64 lowercase hex characters.
///
/// Expand it against a cache with [`Cache::expand`](crate::Cache::expand).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DigestPrefix(String);

/// A string that is not a usable digest prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// Fewer than 4 characters.
    #[error("digest prefix {0:?} is too short: give at least 4 hex characters")]
    TooShort(String),
    /// More than 64 characters.
    #[error("digest prefix is {0} characters long: a digest has 64")]
    TooLong(usize),
    /// A character outside `0-9a-fA-F`.
    #[error("digest prefix {0:?} is not hex: use 0-9 and a-f only")]
    NotHex(String),
}

/// A digest prefix from `hex`: `D("60079f79")`.
///
/// # Errors
///
/// Fails unless `hex` has 4 to 64 hex characters.
#[allow(non_snake_case)]
pub fn D(hex: &str) -> Result<DigestPrefix, PrefixError> {
    hex.parse()
}

impl DigestPrefix {
    /// The prefix characters, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `digest` starts with this prefix.
    pub fn matches(&self, digest: &Digest) -> bool {
        let bytes = digest.as_bytes();
        self.0.as_bytes().iter().enumerate().all(|(i, c)| {
            let nibble = if i % 2 == 0 {
                bytes[i / 2] >> 4
            } else {
                bytes[i / 2] & 0xf
            };
            hex_value(*c) == Some(nibble)
        })
    }

    /// The full digest, when the prefix has all 64 characters.
    pub fn as_full(&self) -> Option<Digest> {
        self.0.parse().ok()
    }

    /// The directory shard (first two characters) every match lives under.
    pub fn shard(&self) -> &str {
        &self.0[..2]
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl FromStr for DigestPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(PrefixError::NotHex(s.chars().take(80).collect()));
        }
        if s.len() < MIN_PREFIX {
            return Err(PrefixError::TooShort(s.to_owned()));
        }
        if s.len() > 64 {
            return Err(PrefixError::TooLong(s.len()));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

impl From<Digest> for DigestPrefix {
    fn from(digest: Digest) -> Self {
        Self(digest.to_hex())
    }
}

impl fmt::Display for DigestPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DigestPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "D({:?})", self.0)
    }
}

/// The shortest prefix of `digest`, at least [`MIN_PREFIX`] long, that no
/// digest in `others` shares.
pub(crate) fn shortest_unique<'a>(
    digest: &Digest,
    others: impl IntoIterator<Item = &'a Digest>,
) -> DigestPrefix {
    let hex = digest.to_hex();
    let mut need = MIN_PREFIX;
    for other in others {
        if other == digest {
            continue;
        }
        let common = common_hex_len(digest, other);
        need = need.max(common + 1);
    }
    DigestPrefix(hex[..need.min(64)].to_owned())
}

/// How many leading hex characters two digests share.
pub(crate) fn common_hex_len(a: &Digest, b: &Digest) -> usize {
    for (i, (x, y)) in a.as_bytes().iter().zip(b.as_bytes()).enumerate() {
        if x != y {
            return i * 2 + usize::from(x >> 4 == y >> 4);
        }
    }
    64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_prefixes_say_what_is_wrong() {
        assert_eq!(D("abc"), Err(PrefixError::TooShort("abc".into())));
        assert!(matches!(D("abcg"), Err(PrefixError::NotHex(_))));
        assert!(matches!(D(&"a".repeat(65)), Err(PrefixError::TooLong(65))));
        assert!(matches!(D("../etc"), Err(PrefixError::NotHex(_))));
        assert!(D("ABCD").is_ok());
    }

    #[test]
    fn prefix_matches_its_digest() {
        let d = crate::digest(&"x").unwrap();
        let hex = d.to_hex();
        for n in 4..=64 {
            assert!(D(&hex[..n]).unwrap().matches(&d));
        }
        let mut other = hex.clone().into_bytes();
        other[4] = if other[4] == b'0' { b'1' } else { b'0' };
        let other = String::from_utf8(other).unwrap();
        assert!(!D(&other[..5]).unwrap().matches(&d));
    }

    #[test]
    fn shortest_unique_grows_past_shared_characters() {
        let a: Digest = format!("abcdef{}", "0".repeat(58)).parse().unwrap();
        let b: Digest = format!("abcdee{}", "0".repeat(58)).parse().unwrap();
        assert_eq!(shortest_unique(&a, [&b]).as_str(), "abcdef");
        assert_eq!(shortest_unique(&a, []).as_str(), "abcd");
    }
}
