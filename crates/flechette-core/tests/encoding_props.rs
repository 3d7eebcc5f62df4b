//! Properties of the canonical encoding: equal content digests equal, and
//! encoded values decode back.

use std::collections::{BTreeMap, HashMap};

use flechette_core::digest;
use flechette_core::encoding::{from_slice, to_vec};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Leaf {
    Unit,
    Int(i64),
    Text(String),
    Pair { a: u32, b: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Nested {
    name: String,
    scores: BTreeMap<String, Vec<i64>>,
    leaves: Vec<Leaf>,
    flag: Option<bool>,
    ratio: f64,
    raw: Vec<u8>,
    pair: (u16, String),
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        Just(Leaf::Unit),
        any::<i64>().prop_map(Leaf::Int),
        ".{0,40}".prop_map(Leaf::Text),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(a, b)| Leaf::Pair { a, b }),
    ]
}

fn nested() -> impl Strategy<Value = Nested> {
    (
        ".{0,20}",
        proptest::collection::btree_map(
            ".{0,8}",
            proptest::collection::vec(any::<i64>(), 0..5),
            0..6,
        ),
        proptest::collection::vec(leaf(), 0..6),
        any::<Option<bool>>(),
        any::<f64>().prop_filter("NaN has one encoding only", |f| !f.is_nan()),
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<u16>(), ".{0,10}"),
    )
        .prop_map(|(name, scores, leaves, flag, ratio, raw, pair)| Nested {
            name,
            scores,
            leaves,
            flag,
            ratio,
            raw,
            pair,
        })
}

proptest! {
    #[test]
    fn equal_maps_digest_equal_whatever_their_type_or_order(
        entries in proptest::collection::vec((any::<u32>(), ".{0,12}"), 0..40)
    ) {
        let forward: HashMap<u32, String> = entries.iter().cloned().collect();
        let mut backward: HashMap<u64, String> = HashMap::with_capacity(1);
        for (k, v) in entries.iter().rev() {
            // The same last-write-wins content as `forward`.
            if forward.get(k) == Some(v) {
                backward.insert(u64::from(*k), v.clone());
            }
        }
        let tree: BTreeMap<u64, &str> = forward.iter().map(|(k, v)| (u64::from(*k), v.as_str())).collect();
        prop_assert_eq!(digest(&forward).unwrap(), digest(&backward).unwrap());
        prop_assert_eq!(digest(&forward).unwrap(), digest(&tree).unwrap());
    }

    #[test]
    fn nested_values_round_trip(value in nested()) {
        let bytes = to_vec(&value).unwrap();
        let back: Nested = from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &value);
        prop_assert_eq!(to_vec(&back).unwrap(), bytes);
    }

    #[test]
    fn integers_digest_equal_across_widths(v in any::<u32>()) {
        prop_assert_eq!(digest(&v).unwrap(), digest(&u64::from(v)).unwrap());
        prop_assert_eq!(digest(&v).unwrap(), digest(&i64::from(v)).unwrap());
    }
}
