//! The canonical MessagePack serializer.

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::sink::Sink;
use super::wire;
use super::{EncodeError, UNORDERED};

/// Serializes into a [`Sink`] in canonical form.
pub(crate) struct Canonical<'a, S> {
    out: &'a mut S,
    /// The value is wrapped in [`UNORDERED`]: its sequence is a set.
    unordered: bool,
}

impl<'a, S: Sink> Canonical<'a, S> {
    pub(crate) fn new(out: &'a mut S) -> Self {
        Self {
            out,
            unordered: false,
        }
    }
}

/// Encodes `value` canonically into a fresh buffer.
fn encode_to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::new();
    value.serialize(Canonical::new(&mut buf))?;
    Ok(buf)
}

/// Whether a type name names a set whose iteration order is not canonical.
fn is_set_type(name: &str) -> bool {
    let name = name.trim_start_matches('&');
    let name = name.split('<').next().unwrap_or(name);
    name.ends_with("::HashSet") || name.ends_with("::BTreeSet") || name.ends_with("::IndexSet")
}

/// Accepts a `u8` and nothing else; tells byte sequences from other sequences.
struct OnlyU8;

#[derive(Debug)]
struct NotU8;

impl std::fmt::Display for NotU8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a u8")
    }
}

impl std::error::Error for NotU8 {}

impl ser::Error for NotU8 {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        NotU8
    }
}

macro_rules! reject {
    ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ret, NotU8> { Err(NotU8) })*
    };
}

impl ser::Serializer for OnlyU8 {
    type Ok = u8;
    type Error = NotU8;
    type SerializeSeq = Impossible<u8, NotU8>;
    type SerializeTuple = Impossible<u8, NotU8>;
    type SerializeTupleStruct = Impossible<u8, NotU8>;
    type SerializeTupleVariant = Impossible<u8, NotU8>;
    type SerializeMap = Impossible<u8, NotU8>;
    type SerializeStruct = Impossible<u8, NotU8>;
    type SerializeStructVariant = Impossible<u8, NotU8>;

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<u8, NotU8> {
        Ok(v)
    }

    reject! {
        serialize_bool(bool) -> u8;
        serialize_i8(i8) -> u8;
        serialize_i16(i16) -> u8;
        serialize_i32(i32) -> u8;
        serialize_i64(i64) -> u8;
        serialize_u16(u16) -> u8;
        serialize_u32(u32) -> u8;
        serialize_u64(u64) -> u8;
        serialize_f32(f32) -> u8;
        serialize_f64(f64) -> u8;
        serialize_char(char) -> u8;
        serialize_str(&str) -> u8;
        serialize_bytes(&[u8]) -> u8;
        serialize_none() -> u8;
        serialize_unit() -> u8;
        serialize_unit_struct(&'static str) -> u8;
        serialize_unit_variant(&'static str, u32, &'static str) -> u8;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u8, NotU8> {
        Err(NotU8)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<u8, NotU8> {
        Err(NotU8)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, NotU8> {
        Err(NotU8)
    }
}

/// How a sequence is being written.
enum Mode {
    /// Nothing written yet; the first element decides between bytes and array.
    Start(usize),
    /// An array of known length, header written.
    Array,
    /// A byte string of known length, header written.
    Bytes,
    /// Length unknown: elements are kept until the end. `raw` holds the
    /// bytes of a byte sequence, `items` the encodings of anything else.
    Unsized {
        items: Vec<Vec<u8>>,
        raw: Option<Vec<u8>>,
    },
    /// An unordered collection: encodings are sorted and written at the end.
    Sorted(Vec<Vec<u8>>),
}

/// A sequence being written.
pub(crate) struct Seq<'a, S> {
    out: &'a mut S,
    mode: Mode,
}

impl<'a, S: Sink> Seq<'a, S> {
    fn new(out: &'a mut S, len: Option<usize>, sort: bool) -> Self {
        let mode = match len {
            _ if sort => Mode::Sorted(Vec::with_capacity(len.unwrap_or(0))),
            Some(len) => Mode::Start(len),
            None => Mode::Unsized {
                items: Vec::new(),
                raw: None,
            },
        };
        Self { out, mode }
    }
}

fn only_u8<T: Serialize + ?Sized>(value: &T) -> Result<u8, EncodeError> {
    value.serialize(OnlyU8).map_err(|_| EncodeError::MixedBytes)
}

impl<S: Sink> ser::SerializeSeq for Seq<'_, S> {
    type Ok = ();
    type Error = EncodeError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        match &mut self.mode {
            Mode::Bytes => self.out.put_u8(only_u8(value)?),
            Mode::Array => value.serialize(Canonical::new(&mut *self.out))?,
            Mode::Sorted(items) => items.push(encode_to_vec(value)?),
            Mode::Unsized { raw: Some(raw), .. } => raw.push(only_u8(value)?),
            Mode::Unsized { items, raw } => {
                if items.is_empty()
                    && let Ok(byte) = value.serialize(OnlyU8)
                {
                    *raw = Some(vec![byte]);
                    return Ok(());
                }
                items.push(encode_to_vec(value)?);
            }
            Mode::Start(len) => {
                if let Ok(byte) = value.serialize(OnlyU8) {
                    wire::bin_header(self.out, *len);
                    self.out.put_u8(byte);
                    self.mode = Mode::Bytes;
                } else {
                    wire::array_header(self.out, *len);
                    self.mode = Mode::Array;
                    value.serialize(Canonical::new(&mut *self.out))?;
                }
            }
        }
        Ok(())
    }

    fn end(self) -> Result<(), EncodeError> {
        let items = match self.mode {
            Mode::Start(len) => {
                wire::array_header(self.out, len);
                return Ok(());
            }
            Mode::Array | Mode::Bytes => return Ok(()),
            Mode::Unsized { raw: Some(raw), .. } => {
                wire::bytes(self.out, &raw);
                return Ok(());
            }
            Mode::Unsized { items, raw: None } => items,
            Mode::Sorted(mut items) => {
                items.sort_unstable();
                items
            }
        };
        wire::array_header(self.out, items.len());
        for item in &items {
            self.out.put(item);
        }
        Ok(())
    }
}

macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {
        $(impl<S: Sink> ser::$trait for Seq<'_, S> {
            type Ok = ();
            type Error = EncodeError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                value.serialize(Canonical::new(&mut *self.out))
            }

            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        })*
    };
}

seq_like!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// A map, struct or struct variant being written: entries are encoded apart,
/// sorted by their encoded key bytes and written at the end.
pub(crate) struct Map<'a, S> {
    out: &'a mut S,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    key: Option<Vec<u8>>,
}

impl<'a, S: Sink> Map<'a, S> {
    fn new(out: &'a mut S, len: Option<usize>) -> Self {
        Self {
            out,
            entries: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        }
    }

    fn finish(self) -> Result<(), EncodeError> {
        let mut entries = self.entries;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if entries.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(EncodeError::DuplicateKey);
        }
        wire::map_header(self.out, entries.len());
        for (key, value) in &entries {
            self.out.put(key);
            self.out.put(value);
        }
        Ok(())
    }
}

impl<S: Sink> ser::SerializeMap for Map<'_, S> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.key = Some(encode_to_vec(key)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        let key = self.key.take().ok_or(EncodeError::ValueWithoutKey)?;
        self.entries.push((key, encode_to_vec(value)?));
        Ok(())
    }

    fn end(self) -> Result<(), EncodeError> {
        self.finish()
    }
}

macro_rules! struct_like {
    ($($trait:ident),*) => {
        $(impl<S: Sink> ser::$trait for Map<'_, S> {
            type Ok = ();
            type Error = EncodeError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), EncodeError> {
                let mut key = Vec::with_capacity(name.len() + 1);
                wire::string(&mut key, name);
                self.entries.push((key, encode_to_vec(value)?));
                Ok(())
            }

            fn end(self) -> Result<(), EncodeError> {
                self.finish()
            }
        })*
    };
}

struct_like!(SerializeStruct, SerializeStructVariant);

fn exact_len<I: Iterator>(iter: &I) -> Option<usize> {
    match iter.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo),
        _ => None,
    }
}

impl<'a, S: Sink> ser::Serializer for Canonical<'a, S> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Seq<'a, S>;
    type SerializeTuple = Seq<'a, S>;
    type SerializeTupleStruct = Seq<'a, S>;
    type SerializeTupleVariant = Seq<'a, S>;
    type SerializeMap = Map<'a, S>;
    type SerializeStruct = Map<'a, S>;
    type SerializeStructVariant = Map<'a, S>;

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        wire::boolean(self.out, v);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        wire::signed(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        if let Ok(v) = i64::try_from(v) {
            self.serialize_i64(v)
        } else {
            let v = u64::try_from(v).map_err(|_| EncodeError::IntegerRange)?;
            self.serialize_u64(v)
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        wire::unsigned(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        let v = u64::try_from(v).map_err(|_| EncodeError::IntegerRange)?;
        self.serialize_u64(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        wire::float(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        wire::string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        wire::bytes(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        wire::nil(self.out);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        let unordered = name == UNORDERED;
        value.serialize(Canonical {
            out: self.out,
            unordered,
        })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        wire::map_header(self.out, 1);
        wire::string(self.out, variant);
        value.serialize(Canonical::new(self.out))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a, S>, EncodeError> {
        Ok(Seq::new(self.out, len, self.unordered))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a, S>, EncodeError> {
        wire::array_header(self.out, len);
        Ok(Seq {
            out: self.out,
            mode: Mode::Array,
        })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Seq<'a, S>, EncodeError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a, S>, EncodeError> {
        wire::map_header(self.out, 1);
        wire::string(self.out, variant);
        Canonical::new(self.out).serialize_tuple(len)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Map<'a, S>, EncodeError> {
        Ok(Map::new(self.out, len))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Map<'a, S>, EncodeError> {
        Ok(Map::new(self.out, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Map<'a, S>, EncodeError> {
        wire::map_header(self.out, 1);
        wire::string(self.out, variant);
        Ok(Map::new(self.out, Some(len)))
    }

    fn collect_seq<I>(self, iter: I) -> Result<(), EncodeError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let sort = self.unordered || is_set_type(std::any::type_name::<I>());
        let mut iter = iter.into_iter();
        let mut seq = Seq::new(self.out, exact_len(&iter), sort);
        let Some(first) = iter.next() else {
            return ser::SerializeSeq::end(seq);
        };
        ser::SerializeSeq::serialize_element(&mut seq, &first)?;
        if matches!(seq.mode, Mode::Bytes) {
            // The hot loop of large byte vectors: fill whole chunks, then
            // hand each to the sink in one write.
            let mut chunk = [0u8; 2048];
            loop {
                let mut used = 0;
                for (slot, item) in chunk.iter_mut().zip(iter.by_ref()) {
                    match item.serialize(OnlyU8) {
                        Ok(byte) => *slot = byte,
                        Err(NotU8) => return Err(EncodeError::MixedBytes),
                    }
                    used += 1;
                }
                seq.out.put(&chunk[..used]);
                if used < chunk.len() {
                    return Ok(());
                }
            }
        }
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
