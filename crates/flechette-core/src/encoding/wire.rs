//! MessagePack headers and scalars in their shortest canonical form.

use super::sink::Sink;

/// The one NaN the encoding knows: the quiet NaN with an empty payload.
pub(crate) const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

pub(crate) fn nil(out: &mut impl Sink) {
    out.put_u8(0xc0);
}

pub(crate) fn boolean(out: &mut impl Sink, v: bool) {
    out.put_u8(if v { 0xc3 } else { 0xc2 });
}

#[inline]
pub(crate) fn unsigned(out: &mut impl Sink, v: u64) {
    if v < 0x80 {
        out.put_u8(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.put(&[0xcc, v as u8]);
    } else if v <= u64::from(u16::MAX) {
        let b = (v as u16).to_be_bytes();
        out.put(&[0xcd, b[0], b[1]]);
    } else if v <= u64::from(u32::MAX) {
        let mut buf = [0xce, 0, 0, 0, 0];
        buf[1..].copy_from_slice(&(v as u32).to_be_bytes());
        out.put(&buf);
    } else {
        let mut buf = [0xcf, 0, 0, 0, 0, 0, 0, 0, 0];
        buf[1..].copy_from_slice(&v.to_be_bytes());
        out.put(&buf);
    }
}

#[inline]
pub(crate) fn signed(out: &mut impl Sink, v: i64) {
    if v >= 0 {
        unsigned(out, v as u64);
    } else if v >= -32 {
        out.put_u8(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.put(&[0xd0, v as i8 as u8]);
    } else if v >= i64::from(i16::MIN) {
        let b = (v as i16).to_be_bytes();
        out.put(&[0xd1, b[0], b[1]]);
    } else if v >= i64::from(i32::MIN) {
        let mut buf = [0xd2, 0, 0, 0, 0];
        buf[1..].copy_from_slice(&(v as i32).to_be_bytes());
        out.put(&buf);
    } else {
        let mut buf = [0xd3, 0, 0, 0, 0, 0, 0, 0, 0];
        buf[1..].copy_from_slice(&v.to_be_bytes());
        out.put(&buf);
    }
}

/// Every float is written as a float 64; NaN is written as [`CANONICAL_NAN`].
pub(crate) fn float(out: &mut impl Sink, v: f64) {
    let bits = if v.is_nan() {
        CANONICAL_NAN
    } else {
        v.to_bits()
    };
    let mut buf = [0xcb, 0, 0, 0, 0, 0, 0, 0, 0];
    buf[1..].copy_from_slice(&bits.to_be_bytes());
    out.put(&buf);
}

fn header(out: &mut impl Sink, len: usize, fix: Option<(u8, usize)>, markers: [u8; 3]) {
    match fix {
        Some((base, max)) if len <= max => out.put_u8(base | len as u8),
        _ if len <= usize::from(u8::MAX) && markers[0] != 0 => out.put(&[markers[0], len as u8]),
        _ if len <= usize::from(u16::MAX) => {
            let b = (len as u16).to_be_bytes();
            out.put(&[markers[1], b[0], b[1]]);
        }
        _ => {
            let mut buf = [markers[2], 0, 0, 0, 0];
            buf[1..].copy_from_slice(&(len as u32).to_be_bytes());
            out.put(&buf);
        }
    }
}

pub(crate) fn str_header(out: &mut impl Sink, len: usize) {
    header(out, len, Some((0xa0, 31)), [0xd9, 0xda, 0xdb]);
}

pub(crate) fn bin_header(out: &mut impl Sink, len: usize) {
    header(out, len, None, [0xc4, 0xc5, 0xc6]);
}

pub(crate) fn array_header(out: &mut impl Sink, len: usize) {
    header(out, len, Some((0x90, 15)), [0, 0xdc, 0xdd]);
}

pub(crate) fn map_header(out: &mut impl Sink, len: usize) {
    header(out, len, Some((0x80, 15)), [0, 0xde, 0xdf]);
}

pub(crate) fn string(out: &mut impl Sink, v: &str) {
    str_header(out, v.len());
    out.put(v.as_bytes());
}

pub(crate) fn bytes(out: &mut impl Sink, v: &[u8]) {
    bin_header(out, v.len());
    out.put(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn integers_take_their_shortest_form() {
        assert_eq!(enc(|o| unsigned(o, 5)), [5]);
        assert_eq!(enc(|o| unsigned(o, 200)), [0xcc, 200]);
        assert_eq!(enc(|o| unsigned(o, 256)), [0xcd, 1, 0]);
        assert_eq!(enc(|o| signed(o, 5)), [5]);
        assert_eq!(enc(|o| signed(o, -1)), [0xff]);
        assert_eq!(enc(|o| signed(o, -33)), [0xd0, 0xdf]);
        assert_eq!(enc(|o| signed(o, -129)), [0xd1, 0xff, 0x7f]);
        assert_eq!(enc(|o| signed(o, i64::MIN))[0], 0xd3);
        assert_eq!(enc(|o| unsigned(o, u64::MAX))[0], 0xcf);
    }

    #[test]
    fn headers_switch_width_at_the_limits() {
        assert_eq!(enc(|o| str_header(o, 31)), [0xbf]);
        assert_eq!(enc(|o| str_header(o, 32)), [0xd9, 32]);
        assert_eq!(enc(|o| array_header(o, 15)), [0x9f]);
        assert_eq!(enc(|o| array_header(o, 16)), [0xdc, 0, 16]);
        assert_eq!(enc(|o| map_header(o, 70_000)), [0xdf, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(|o| bin_header(o, 0)), [0xc4, 0]);
    }

    #[test]
    fn every_nan_is_one_nan() {
        let a = enc(|o| float(o, f64::NAN));
        let b = enc(|o| float(o, f64::from_bits(0x7ff8_dead_beef_0001)));
        let c = enc(|o| float(o, -f64::NAN));
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
}
