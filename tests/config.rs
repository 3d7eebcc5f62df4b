//! flechette.toml: discovery, relative paths, stacks, and clear errors.

use flechette::config::{Config, ConfigError, ENV_VAR, FILE_NAME};
use flechette::{CachedFn, configure, default_cache};

const FULL: &str = r#"
default = "tiered"

[caches.local]
kind = "memory"

[caches.disk]
kind = "file"
dir = "data/files"

[caches.db]
kind = "sqlite"
path = "data/cache.sqlite"

[caches.tiered]
kind = "stack"
levels = ["local", "disk", "db"]
"#;

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join(FILE_NAME);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn relative_paths_resolve_against_the_file_and_stacks_build() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let config = Config::load(write(dir.path(), FULL)).unwrap();
    assert_eq!(
        config.names().collect::<Vec<_>>(),
        ["db", "disk", "local", "tiered"]
    );
    let tiered = config.default_cache().unwrap();
    assert_eq!(tiered.depth(), 3);
    let d = tiered.save_value(&"through the stack").await.unwrap();
    assert!(tiered.load_value::<String>(&d).await.is_ok());
    let disk = config.cache("disk").unwrap();
    disk.save_value(&1u8).await.unwrap();
    assert!(
        dir.path().join("data/files/values").is_dir(),
        "file caches live next to the config"
    );
    config.cache("db").unwrap().save_value(&2u8).await.unwrap();
    assert!(dir.path().join("data/cache.sqlite").is_file());
}

fn err(text: &str) -> ConfigError {
    Config::parse(text, "/etc/app/flechette.toml").unwrap_err()
}

#[test]
fn an_unknown_default_names_the_file_and_line() {
    let e = err("\n\ndefault = \"nope\"\n[caches.a]\nkind = \"memory\"\n");
    let text = e.to_string();
    assert!(
        matches!(&e, ConfigError::UnknownCache { line: 3, name, .. } if name == "nope"),
        "{text}"
    );
    assert!(text.starts_with("/etc/app/flechette.toml:3:"), "{text}");
    assert!(text.contains("defined: a"), "{text}");
}

#[test]
fn a_file_without_caches_says_none_are_defined() {
    let e = err("default = \"nowhere\"\n");
    assert!(e.to_string().ends_with("defined: (none)"), "{e}");
}

#[test]
fn an_unknown_stack_level_names_its_line() {
    let e = err("[caches.s]\nkind = \"stack\"\nlevels = [\n  \"ghost\",\n]\n");
    assert!(
        matches!(&e, ConfigError::UnknownCache { line: 4, .. }),
        "{e}"
    );
}

#[test]
fn malformed_files_are_errors_with_a_line() {
    let e = err("[caches.a]\nkind = \"memory\"\n[caches.b\n");
    assert!(matches!(&e, ConfigError::Malformed { line: 3, .. }), "{e}");
    let e = err("[caches.a]\nkind = \"tape\"\n");
    assert!(matches!(&e, ConfigError::Invalid { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("unknown kind \"tape\""), "{e}");
    let e = err("[caches.a]\nkind = \"memory\"\ndir = \"x\"\n");
    assert!(e.to_string().contains("`dir` does not apply"), "{e}");
    let e = err("[caches.a]\nkind = \"file\"\n");
    assert!(
        e.to_string().contains("dir"),
        "a missing setting is named: {e}"
    );
    let e = err("colour = \"blue\"\n");
    assert!(matches!(&e, ConfigError::Malformed { line: 1, .. }), "{e}");
}

#[test]
fn a_bad_redis_url_is_an_error() {
    let e = err("[caches.r]\nkind = \"redis\"\nurl = \"http://example\"\n");
    assert!(matches!(&e, ConfigError::Invalid { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("not a Redis URL"), "{e}");
}

#[test]
fn stacks_may_not_contain_themselves() {
    let config = Config::parse(
        "[caches.a]\nkind = \"stack\"\nlevels = [\"b\"]\n[caches.b]\nkind = \"stack\"\nlevels = [\"a\"]\n",
        "/tmp/flechette.toml",
    )
    .unwrap();
    let e = config.cache("a").unwrap_err();
    assert!(e.to_string().contains("refer to each other"), "{e}");
}

#[test]
fn asking_for_an_undefined_cache_is_an_error() {
    let config = Config::parse("[caches.a]\nkind = \"memory\"\n", "/tmp/flechette.toml").unwrap();
    assert!(matches!(
        config.cache("b"),
        Err(ConfigError::UnknownCache { .. })
    ));
}

/// Discovery reads the working directory, which is process-wide: one test
/// does it all, in order.
#[tokio::test]
async fn discovery_finds_the_file_in_a_parent_directory() {
    let root = tempfile::tempdir().unwrap();
    let nested = root.path().join("a/b/c");
    std::fs::create_dir_all(&nested).unwrap();
    let file = write(
        root.path(),
        "default = \"disk\"\n[caches.disk]\nkind = \"file\"\ndir = \"store\"\n",
    );
    let before = std::env::current_dir().unwrap();
    std::env::set_current_dir(&nested).unwrap();
    let found = Config::discover();
    let configured = configure();
    std::env::set_current_dir(before).unwrap();

    let found = found.unwrap().expect("found in a parent");
    assert_eq!(
        found.path().canonicalize().unwrap(),
        file.canonicalize().unwrap()
    );
    assert!(configured.unwrap().is_some());
    let f = CachedFn::builder("configured").build(|(x,): (u8,)| async move { x });
    f.call((1,)).await.unwrap();
    assert!(
        root.path().join("store/calls").is_dir(),
        "the default cache is the configured one"
    );
    assert!(
        default_cache()
            .contains(&f.digest(&(1,)).unwrap())
            .await
            .unwrap()
    );
}

const CHILD: &str = "FLECHETTE_CONFIG_TEST_CHILD";

/// The environment variable wins; setting it needs a process of its own.
#[test]
fn the_environment_variable_names_the_file() {
    if let Ok(expect) = std::env::var(CHILD) {
        match expect.as_str() {
            "broken" => assert!(
                matches!(configure(), Err(ConfigError::Malformed { .. })),
                "a bad file is never silently replaced by memory"
            ),
            path => assert_eq!(
                Config::discover().unwrap().unwrap().path(),
                std::path::Path::new(path)
            ),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let named = dir.path().join("elsewhere.toml");
    std::fs::write(&named, "[caches.m]\nkind = \"memory\"\n").unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "default = \n").unwrap();
    for (file, expect) in [(&named, named.to_str().unwrap()), (&broken, "broken")] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "the_environment_variable_names_the_file",
                "--exact",
                "--quiet",
            ])
            .env(ENV_VAR, file)
            .env(CHILD, expect)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the child checking {expect} failed");
    }
}

#[tokio::test]
async fn a_write_queue_is_configured_per_cache_and_only_where_it_applies() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[caches.disk]\nkind = \"file\"\ndir = \"files\"\nwrite_queue = 2\nwrite_queue_bytes = 4096\n",
    );
    let config = Config::load(&path).unwrap();
    let disk = config.cache("disk").unwrap();
    let f = CachedFn::builder("queued")
        .args(["x"])
        .cache(disk.clone())
        .build(|(x,): (u64,)| async move { x + 1 });
    for x in 0..5 {
        assert_eq!(f.call((x,)).await.unwrap(), x + 1);
    }
    disk.flush().await;
    let other = flechette::Cache::open(dir.path().join("files")).unwrap();
    for x in 0..5 {
        assert!(other.contains(&f.digest(&(x,)).unwrap()).await.unwrap());
    }
    let message = err("[caches.m]\nkind = \"memory\"\nwrite_queue = 5\n").to_string();
    assert!(
        message.contains("`write_queue` does not apply to memory caches"),
        "{message}"
    );
}

#[tokio::test]
async fn a_memory_cache_takes_its_bound_from_the_file() {
    let config = Config::parse(
        "[caches.small]\nkind = \"memory\"\nmax_bytes = 65536\n",
        "/etc/app/flechette.toml",
    )
    .unwrap();
    let small = config.cache("small").unwrap();
    let f = CachedFn::builder("bounded")
        .args(["x"])
        .capacity(1)
        .cache(small.clone())
        .build(|(x,): (u64,)| async move { vec![0u8; 1024 + x as usize] });
    for x in 0..1_000 {
        f.call((x,)).await.unwrap();
    }
    let stored = small.query(&Default::default()).await.unwrap().len();
    assert!(
        stored > 10 && stored < 64,
        "64 KiB hold a few dozen 1 KiB calls: {stored}"
    );
    let message = err("[caches.d]\nkind = \"stack\"\nlevels = []\nmax_bytes = 5\n").to_string();
    assert!(
        message.contains("`max_bytes` does not apply to stack caches"),
        "{message}"
    );
}

#[tokio::test]
async fn sqlite_and_file_caches_take_their_bound_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "[caches.db]\nkind = \"sqlite\"\npath = \"c.sqlite\"\nmax_bytes = 262144\n\
         [caches.disk]\nkind = \"file\"\ndir = \"files\"\nmax_bytes = 262144\n",
    );
    let config = Config::load(&path).unwrap();
    for name in ["db", "disk"] {
        holds_a_few_dozen(config.cache(name).unwrap()).await;
    }
}

/// 256 KiB hold a few dozen calls of 1 KiB.
async fn holds_a_few_dozen(db: flechette::Cache) {
    let f = CachedFn::builder("bounded")
        .args(["x"])
        .capacity(1)
        .cache(db.clone())
        .build(|(x,): (u64,)| async move { vec![1u8; 1024 + x as usize] });
    for x in 0..1_000 {
        f.call((x,)).await.unwrap();
    }
    db.flush().await;
    let stored = db.query(&Default::default()).await.unwrap().len();
    assert!(
        stored > 10 && stored < 256,
        "256 KiB hold a few dozen 1 KiB calls: {stored}"
    );
}
