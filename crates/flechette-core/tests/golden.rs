//! Golden vectors of the canonical encoding and of value digests, as
//! specified in docs/digests.md. A change here is a change of the format.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use flechette_core::encoding::{EncodeError, to_vec};
use flechette_core::{Digest, digest};
use serde::Serialize;

#[derive(Serialize)]
struct Point {
    y: i32,
    x: i32,
}

#[derive(Serialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: u8, h: u8 },
}

fn check<T: Serialize + ?Sized>(value: &T, encoding: &str, digest_hex: &str) {
    let bytes = to_vec(value).unwrap();
    assert_eq!(
        hex::encode(&bytes),
        encoding,
        "encoding of {}",
        std::any::type_name::<T>()
    );
    assert_eq!(
        digest(value).unwrap().to_string(),
        digest_hex,
        "digest of {encoding}"
    );
}

macro_rules! golden {
    ($($name:ident: $value:expr => $enc:literal, $dig:literal;)*) => {
        $(#[test] fn $name() { check(&$value, $enc, $dig); })*
        /// Prints every vector (run with --nocapture to regenerate the table).
        #[test]
        fn print_table() {
            $(println!("| `{}` | `{}` | `{}` |", stringify!($value), hex::encode(to_vec(&$value).unwrap()), digest(&$value).unwrap());)*
        }
    };
}

golden! {
    unit: () => "c0", "c8451ffbcb3c9c2c8a59b5e5c9ec8da86c18b84bdb41f22598deebd74288cbbc";
    boolean: true => "c3", "a1d13d912dee463d894fc558e26d5c3ce442d7a4fec1768eadb24ce287acf0d1";
    small_int: 5u8 => "05", "e5eae453a757760cf2fa4c28e304a2e42db766eab5d4f3782c218d730fde9107";
    wide_int_same_as_small: 5u64 => "05", "e5eae453a757760cf2fa4c28e304a2e42db766eab5d4f3782c218d730fde9107";
    negative: -1i64 => "ff", "f53f9091d2693ec6b5ed6f8b715ea5c81c1c5b55b3b095033f0861e91dea13b2";
    negative_two: -2i32 => "fe", "27fa2fb4308cd08cc1614ba7b1acf02c3b0af34da7e41b24bb91b97e0d033b78";
    float_minus_one: -1.0f64 => "cbbff0000000000000", "267b635a702f91afab998ee6164f320714183726923d1aef7e8d171bba62e55c";
    float32_widened: 1.5f32 => "cb3ff8000000000000", "d4865ade68b2bbb5e405931da3367c8f2ba32fd99c4a90c2e39114db2df24d30";
    nan: f64::NAN => "cb7ff8000000000000", "38360e1e3c266832dc138b8753ab764b7155086b79a0ac95f72218eac2282ab1";
    big: 300u32 => "cd012c", "fcd0ca6c9b3fbec0cb38147ca9369d14f4385996c1544ea05b1bc81f0591722d";
    string: "fib" => "a3666962", "b99d273c1dd4ec3392934a1dc3d8669af1431f554ff33b97fc3cffb9e8e4e639";
    bytes: vec![1u8, 2, 255] => "c4030102ff", "d01fc3f879b6ae3727ae6788bf6f3f19465d8fc398f44f042111c981216f00d2";
    list: vec![1u16, 2, 300] => "930102cd012c", "8c2d20bd4470f8ced5c74cae80a4d8e89e47394501bf9ced630feaf00feced4a";
    tuple: (10u64, "a") => "920aa161", "8ac2587952b17bb2451c943864ad6dc403a74c2c856567ce0bc010ff9745027a";
    none: Option::<u8>::None => "c0", "c8451ffbcb3c9c2c8a59b5e5c9ec8da86c18b84bdb41f22598deebd74288cbbc";
    some: Some(7u8) => "07", "4629077bc712748708256b3ef49a5e0f464c9613e7a8e709b4cbb14e00a525aa";
    map_sorted: BTreeMap::from([("b", 2u8), ("a", 1)]) => "82a16101a16202", "346829a2f2092184cc701390e10821e045098725d9ff18c08bcda1eb6a4733db";
    struct_sorted: Point { y: 2, x: 1 } => "82a17801a17902", "a759b2430fd00ebcb00381cecae68b9075baaa00b5e10af66c0ca48d2811e7e1";
    set_sorted: BTreeSet::from([300u32, 1, 2]) => "930102cd012c", "8c2d20bd4470f8ced5c74cae80a4d8e89e47394501bf9ced630feaf00feced4a";
    unit_variant: Shape::Empty => "a5456d707479", "201c518e942bd52648ac398a83b91308d5c2ab73f59e7c54fbd291fdaf744fda";
    newtype_variant: Shape::Circle(0.5) => "81a6436972636c65cb3fe0000000000000", "71247e33ed4ddf00d58d2587047b7599d59b9ac99abe26976e5d1ed06cc5a8b2";
    struct_variant: Shape::Rect { w: 3, h: 4 } => "81a45265637482a16804a17703", "769d35e5469bffe3edd43ffb024b9cc27b9f757074b22a0a6c63ecde4bb25d49";
}

#[test]
fn maps_digest_the_same_whatever_their_type() {
    let h: HashMap<String, u32> = (0..100).map(|i| (format!("k{i}"), i)).collect();
    let b: BTreeMap<&str, u64> = h.iter().map(|(k, v)| (k.as_str(), u64::from(*v))).collect();
    assert_eq!(digest(&h).unwrap(), digest(&b).unwrap());
}

#[test]
fn sets_digest_the_same_whatever_their_type() {
    let h: HashSet<i64> = (-50..50).collect();
    let b: BTreeSet<i64> = (-50..50).rev().collect();
    assert_eq!(digest(&h).unwrap(), digest(&b).unwrap());
}

#[test]
fn floats_never_collide_with_integers() {
    assert_ne!(digest(&-1.0f64).unwrap(), digest(&-2i64).unwrap());
    assert_ne!(digest(&2.0f64).unwrap(), digest(&2i64).unwrap());
}

#[test]
fn a_value_and_its_digest_do_not_share_a_digest() {
    let d: Digest = digest(&5u8).unwrap();
    assert_ne!(digest(&d).unwrap(), d);
}

#[test]
fn out_of_range_integers_are_errors() {
    assert_eq!(to_vec(&u128::MAX), Err(EncodeError::IntegerRange));
    assert_eq!(to_vec(&(u64::MAX as u128)).unwrap()[0], 0xcf);
}

#[test]
fn large_byte_vectors_encode_as_one_byte_string() {
    let v = vec![7u8; 70_000];
    let bytes = to_vec(&v).unwrap();
    assert_eq!(&bytes[..5], &[0xc6, 0, 1, 0x11, 0x70]);
    assert_eq!(bytes.len(), 70_005);
}

/// Call keys name stored calls in every backend: a change of this vector
/// orphans every cache written before it.
#[test]
fn call_keys_are_stable() {
    let x = digest(&42u64).unwrap();
    let s = digest("fib").unwrap();
    let key = flechette_core::call_key("fib", "app::math", None, &[("n", x), ("label", s)]);
    assert_eq!(
        key.to_string(),
        "b1cd9b01d5f88a8a77ec3b8f5a20a310ef3a8b9998ee1354bab220616c7b1166"
    );
    let versioned = flechette_core::call_key("fib", "app::math", Some("2"), &[("n", x)]);
    assert_eq!(
        versioned.to_string(),
        "21537def2264358d07cbf7344b55461cc1ef9dc8ee51090b019953dbc001623e"
    );
    let none: [(&str, Digest); 0] = [];
    let bare = flechette_core::call_key("now", "app", None, &none);
    assert_eq!(
        bare.to_string(),
        "93c3eb55b6ec87928d86e48db12763e0624820b9a6633a5fbe66bc32e98fe956"
    );
}
