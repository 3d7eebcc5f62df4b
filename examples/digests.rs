//! The canonical encoding and digests, printed: what bytes a value encodes
//! to, the SHA-256 value digest of those bytes, and a call key. Every line
//! is the same on every machine; `docs/digests.md` shows the output.
//!
//! ```text
//! cargo run --example digests
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use flechette::{D, call_key, digest, encoding};
use serde::Serialize;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn show<T: Serialize + ?Sized>(label: &str, value: &T) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = encoding::to_vec(value)?;
    println!("{label:<22} {:<24} {}", hex(&bytes), digest(value)?);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== Values: canonical MessagePack bytes, then the value digest");
    show("42u64", &42u64)?;
    show("42i32", &42i32)?;
    show("-1i64", &-1i64)?;
    show("1.5f64", &1.5f64)?;
    show("\"hi\"", "hi")?;
    show("true", &true)?;
    show("None::<u8>", &None::<u8>)?;
    show("(1u8, \"a\")", &(1u8, "a"))?;
    show("vec![1u8, 2, 3]", &vec![1u8, 2, 3])?;
    show("vec![1u16, 2, 3]", &vec![1u16, 2, 3])?;

    println!();
    println!("== Maps and sets are ordered by their encoded entries");
    let btree: BTreeMap<&str, u8> = [("b", 2), ("a", 1)].into();
    let hash: HashMap<&str, u8> = [("b", 2), ("a", 1)].into();
    show("{\"a\": 1, \"b\": 2}", &btree)?;
    println!(
        "HashMap digest equals BTreeMap digest: {}",
        digest(&hash)? == digest(&btree)?
    );
    let set: HashSet<u8> = [3, 1, 2].into();
    show("HashSet {3, 1, 2}", &set)?;

    println!();
    println!("== A call key: name, module, version and argument digests");
    let n = digest(&10u64)?;
    let key = call_key("fib", "", None, &[("n", n)]);
    println!("fib(n = 10):              {key}");
    println!(
        "with version \"2\":         {}",
        call_key("fib", "", Some("2"), &[("n", n)])
    );
    println!(
        "argument renamed to m:    {}",
        call_key("fib", "", None, &[("m", n)])
    );

    println!();
    println!("== Short digests");
    let short = D(&key.to_hex()[..6])?;
    println!(
        "D(\"{short}\") is a prefix of the key: {}",
        key.to_hex().starts_with(short.as_str())
    );
    match D("12xz") {
        Ok(_) => println!("D(\"12xz\") accepted"),
        Err(e) => println!("D(\"12xz\"): {e}"),
    }
    Ok(())
}
