//! The elements of an encoded array, found by reading markers and lengths
//! only: how a call's argument values come out of the bytes it was looked
//! up by, without encoding each argument again.

/// The encodings of the elements of `bytes`, one MessagePack array and
/// nothing after it, as slices of it in order; `None` when `bytes` is
/// anything else (another value, truncated, trailing bytes).
///
/// An element of an array that [`write_to`](super::write_to) wrote is
/// byte for byte the element's own encoding.
///
/// ```
/// use flechette_core::encoding::{array_elements, to_vec};
/// let bytes = to_vec(&(7u64, "seven", vec![1.5f64])).unwrap();
/// let parts = array_elements(&bytes).unwrap();
/// assert_eq!(parts, [to_vec(&7u64).unwrap(), to_vec(&"seven").unwrap(), to_vec(&vec![1.5f64]).unwrap()]);
/// ```
pub fn array_elements(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let (len, mut at) = match *bytes.first()? {
        m @ 0x90..=0x9f => (usize::from(m & 0x0f), 1),
        0xdc => (be(bytes, 1, 2)?, 3),
        0xdd => (be(bytes, 1, 4)?, 5),
        _ => return None,
    };
    let mut out = Vec::with_capacity(len.min(bytes.len()));
    for _ in 0..len {
        let end = value_end(bytes, at)?;
        out.push(&bytes[at..end]);
        at = end;
    }
    (at == bytes.len()).then_some(out)
}

/// The big-endian number in the `n` bytes of `b` at `at`.
fn be(b: &[u8], at: usize, n: usize) -> Option<usize> {
    let digits = b.get(at..at.checked_add(n)?)?;
    Some(digits.iter().fold(0, |v, &d| (v << 8) | usize::from(d)))
}

/// Where the value starting at `at` ends. Nested values are counted, not
/// recursed into, so no input can exhaust the stack; each takes at least
/// one byte, so no input loops for longer than its length.
fn value_end(b: &[u8], mut at: usize) -> Option<usize> {
    let mut pending: usize = 1;
    while pending > 0 {
        pending -= 1;
        let m = *b.get(at)?;
        let len = |n| be(b, at + 1, n);
        // (marker and length bytes, payload bytes, nested values)
        let (head, body, nested) = match m {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (1, 0, 0),
            0x80..=0x8f => (1, 0, 2 * usize::from(m & 0x0f)),
            0x90..=0x9f => (1, 0, usize::from(m & 0x0f)),
            0xa0..=0xbf => (1, usize::from(m & 0x1f), 0),
            0xc4 | 0xd9 => (2, len(1)?, 0),
            0xc5 | 0xda => (3, len(2)?, 0),
            0xc6 | 0xdb => (5, len(4)?, 0),
            0xc7 => (3, len(1)?, 0),
            0xc8 => (4, len(2)?, 0),
            0xc9 => (6, len(4)?, 0),
            0xca | 0xce | 0xd2 => (1, 4, 0),
            0xcb | 0xcf | 0xd3 => (1, 8, 0),
            0xcc | 0xd0 => (1, 1, 0),
            0xcd | 0xd1 => (1, 2, 0),
            0xd4 => (2, 1, 0),
            0xd5 => (2, 2, 0),
            0xd6 => (2, 4, 0),
            0xd7 => (2, 8, 0),
            0xd8 => (2, 16, 0),
            0xdc => (3, 0, len(2)?),
            0xdd => (5, 0, len(4)?),
            0xde => (3, 0, 2 * len(2)?),
            0xdf => (5, 0, len(4)?.checked_mul(2)?),
            0xc1 => return None,
        };
        at = at.checked_add(head)?.checked_add(body)?;
        if at > b.len() {
            return None;
        }
        pending = pending.checked_add(nested)?;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;
    use crate::encoding::to_vec;

    #[derive(serde::Serialize)]
    struct Point {
        x: i64,
        label: Option<String>,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Dot,
        Circle(f64),
    }

    /// Each element of an encoded tuple is the element's own encoding, for
    /// every kind of value and every length form.
    #[test]
    fn the_elements_of_an_encoded_tuple_are_their_own_encodings() {
        let long = "x".repeat(70_000);
        let bin = vec![7u8; 300]; // a byte string
        let map: BTreeMap<String, u8> = (0..20).map(|i| (format!("k{i}"), i)).collect();
        let set: HashSet<u16> = (0..40).collect();
        let parts = [
            to_vec(&0u64),
            to_vec(&u64::MAX),
            to_vec(&-1i8),
            to_vec(&i64::MIN),
            to_vec(&300u16),
            to_vec(&70_000u32),
            to_vec(&1.5f32),
            to_vec(&f64::NAN),
            to_vec(&""),
            to_vec(&"a".repeat(31)),
            to_vec(&"a".repeat(32)),
            to_vec(&"a".repeat(256)),
            to_vec(&long),
            to_vec(&bin),
            to_vec(&()),
            to_vec(&true),
            to_vec(&None::<u8>),
            to_vec(&vec![vec![1u8, 2], vec![]]),
            to_vec(&(0..20).collect::<Vec<u32>>()),
            to_vec(&map),
            to_vec(&set),
            to_vec(&Point {
                x: -5,
                label: Some("p".into()),
            }),
            to_vec(&Shape::Dot),
            to_vec(&Shape::Circle(2.0)),
        ]
        .map(Result::unwrap);
        let tuple = to_vec(&(
            (
                0u64,
                u64::MAX,
                -1i8,
                i64::MIN,
                300u16,
                70_000u32,
                1.5f32,
                f64::NAN,
            ),
            (
                "",
                "a".repeat(31),
                "a".repeat(32),
                "a".repeat(256),
                &long,
                &bin,
            ),
            ((), true, None::<u8>, vec![vec![1u8, 2], vec![]]),
            ((0..20).collect::<Vec<u32>>(), &map, &set),
            (
                Point {
                    x: -5,
                    label: Some("p".into()),
                },
                Shape::Dot,
                Shape::Circle(2.0),
            ),
        ))
        .unwrap();
        let groups = array_elements(&tuple).unwrap();
        let found: Vec<&[u8]> = groups
            .iter()
            .flat_map(|g| array_elements(g).unwrap())
            .collect();
        assert_eq!(found.len(), parts.len());
        for (i, (got, want)) in found.iter().zip(&parts).enumerate() {
            assert_eq!(*got, &want[..], "element {i}");
        }
        let sixteen =
            to_vec(&vec![1u8; 16].into_iter().map(u32::from).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            array_elements(&sixteen).unwrap().len(),
            16,
            "an array16 header"
        );
    }

    #[test]
    fn anything_but_one_whole_array_is_none() {
        let pair = to_vec(&(1u8, "two")).unwrap();
        assert!(array_elements(&pair).is_some());
        for bad in [
            &pair[..pair.len() - 1],               // truncated
            &[&pair[..], &[0x01]].concat(),        // trailing bytes
            &[0x92, 0x01],                         // fewer elements than its header
            &[0x91, 0xc1],                         // a reserved marker
            &[0x91, 0xdb, 0xff, 0xff, 0xff, 0xff], // a string longer than the input
            &[0x91, 0xdd, 0xff, 0xff, 0xff, 0xff], // an array longer than the input
            &to_vec(&7u64).unwrap(),               // not an array
            &[],
        ] {
            assert_eq!(array_elements(bad), None, "{bad:?}");
        }
    }
}
