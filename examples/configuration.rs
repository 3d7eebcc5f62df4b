//! `flechette.toml` in action: a file with named caches (memory, file,
//! SQLite and a stack of them), read, used through its default cache, and
//! then three broken files and the errors they give. `docs/configuration.md`
//! shows the output.
//!
//! ```text
//! cargo run --example configuration
//! ```

use flechette::{CachedFn, Config, with_cache};

const FILE: &str = r#"default = "tiered"

[caches.local]
kind = "memory"

[caches.disk]
kind = "file"
dir = "cache"                      # relative to this file's directory

[caches.db]
kind = "sqlite"
path = "cache.sqlite"

[caches.tiered]
kind = "stack"
levels = ["local", "db"]
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("flechette.toml");
    std::fs::write(&path, FILE)?;
    // In a service, `flechette::configure()` finds the file (current
    // directory and its parents, or FLECHETTE_CONFIG) and sets the default.
    let config = Config::load(&path)?;

    println!("== The caches the file names");
    for name in config.names() {
        println!("{name}");
    }

    println!();
    println!("== The default cache: the stack of memory over SQLite");
    let cache = config.default_cache()?;
    println!("levels: {}", cache.depth());
    let square = CachedFn::builder("square")
        .module("configuration")
        .args(["x"])
        .build(|(x,): (u64,)| async move { x * x });
    with_cache(cache.clone(), async {
        println!("square(12) = {}", square.call((12,)).await.unwrap());
    })
    .await;
    println!(
        "cache.sqlite written next to the file: {}",
        dir.path().join("cache.sqlite").exists()
    );
    // New calls are written to level 0; the SQLite level fills from other
    // writers (see docs/cache-stacks.md).
    let key = square.digest(&(12,))?;
    let local = cache.level(0).expect("a stack has a level 0");
    println!(
        "level 0 (memory) has the call: {}",
        local.contains(&key).await?
    );
    println!(
        "the db cache has the call: {}",
        config.cache("db")?.contains(&key).await?
    );

    println!();
    println!("== Broken files are errors that name the file and the line");
    let broken = [
        "default = \"nowhere\"\n",
        "[caches.a]\nkind = \"memory\"\ndir = \"x\"\n",
        "[caches.r]\nkind = \"redis\"\nurl = \"http://localhost\"\n",
    ];
    for text in broken {
        match Config::parse(text, "flechette.toml") {
            Ok(_) => println!("accepted?"),
            Err(e) => println!("{e}"),
        }
    }
    Ok(())
}
