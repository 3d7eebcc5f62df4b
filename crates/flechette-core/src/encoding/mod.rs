//! The canonical MessagePack encoding that values are digested and stored in.
//!
//! The rules (specified with golden vectors in `docs/digests.md`):
//!
//! * integers take their shortest MessagePack form, whatever their Rust type;
//! * every float is a float 64 and every NaN is the one quiet NaN;
//! * map and struct entries are ordered by their encoded key bytes;
//! * sets (`HashSet`, `BTreeSet`, or anything wrapped in [`Unordered`]) are
//!   arrays ordered by their encoded element bytes;
//! * a sequence of `u8` is a byte string, as are `serde_bytes` values;
//! * unit, `None` and unit structs are nil; newtype structs are their content;
//!   enums are a variant-name string or a one-entry map from it.
//!
//! Decoding uses `rmp_serde`: everything this module writes is ordinary
//! MessagePack.

mod ser;
mod sink;
mod split;
pub(crate) mod wire;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

pub(crate) use sink::HashSink;
pub use sink::Sink;
pub use split::array_elements;

/// The newtype-struct name that marks a sequence as unordered.
pub(crate) const UNORDERED: &str = "$flechette::unordered";

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value's own `Serialize` implementation failed.
    #[error("the value failed to serialize: {0}")]
    Custom(String),
    /// An integer outside the 64-bit range.
    #[error("integer does not fit in 64 bits")]
    IntegerRange,
    /// A sequence that starts with `u8` elements contains something else.
    #[error("a sequence mixes u8 elements with other types")]
    MixedBytes,
    /// Two map keys encode to the same bytes.
    #[error("two map keys encode to the same bytes")]
    DuplicateKey,
    /// A `Serialize` implementation wrote a map value before its key.
    #[error("a map value was serialized without a key")]
    ValueWithoutKey,
}

impl serde::ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Custom(msg.to_string())
    }
}

/// Why stored bytes could not be decoded into the asked type.
#[derive(Debug, thiserror::Error)]
#[error("stored bytes do not decode as {type_name}: {source}")]
pub struct DecodeError {
    type_name: &'static str,
    #[source]
    source: rmp_serde::decode::Error,
}

/// Encodes `value` in canonical MessagePack.
///
/// # Errors
///
/// Fails when the value's `Serialize` implementation fails, or the value is
/// outside what the encoding can say (see [`EncodeError`]).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    value.serialize(ser::Canonical::new(&mut out))?;
    Ok(out)
}

/// Streams the canonical encoding of `value` into `sink` (a `Vec<u8>`, or a
/// buffer of your own that implements [`Sink`]), with no buffer in between.
///
/// # Errors
///
/// As [`to_vec`].
pub fn write_to<T: Serialize + ?Sized, S: Sink>(
    value: &T,
    sink: &mut S,
) -> Result<(), EncodeError> {
    value.serialize(ser::Canonical::new(sink))
}

/// Decodes MessagePack bytes into a `T`.
///
/// # Errors
///
/// Fails when the bytes are not MessagePack or do not have the shape of `T`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|source| DecodeError {
        type_name: std::any::type_name::<T>(),
        source,
    })
}

/// Marks a collection as unordered, so it is encoded like a set: elements
/// ordered by their encoded bytes.
///
/// `HashSet` and `BTreeSet` are recognised on their own; use this for other
/// set types, or with `#[serde(serialize_with = "flechette_core::encoding::unordered")]`.
#[derive(Debug, Clone, Copy)]
pub struct Unordered<T>(pub T);

impl<T: Serialize> Serialize for Unordered<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(UNORDERED, &self.0)
    }
}

/// Serializes a field as an unordered collection; see [`Unordered`].
///
/// # Errors
///
/// Whatever the serializer reports.
pub fn unordered<T: Serialize, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    Unordered(value).serialize(serializer)
}
