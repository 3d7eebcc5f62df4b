//! The guide's example outputs are what the examples print today.
//!
//! In README.md and docs/*.md, a block of example output is marked:
//!
//! ````text
//! <!-- output: EXAMPLE [ARGS…] -->
//! ```text
//! what the example prints
//! ```
//! ````
//!
//! This test runs every marked example (built by `cargo test`) in a fresh
//! temporary directory and compares its standard output with the block.
//! In the block, `[..]` matches any text within a line (a timing, a
//! timestamp) and a line `...` matches any number of lines. The argument
//! `{redis}` becomes the URL of a `redis-server` this test starts on a free
//! loopback port. Every example the guide names (`--example NAME`) must
//! have at least one marked block.
//!
//! `FLECHETTE_BLESS=1 cargo test --test guide` rewrites blocks that do not
//! match with what the examples print (then put `[..]` back where the
//! output varies).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Block {
    file: PathBuf,
    /// Line index of the first line inside the fence.
    start: usize,
    /// Line index of the closing fence.
    end: usize,
    example: String,
    args: Vec<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn guide_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn blocks(file: &Path, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(spec) = line
            .trim()
            .strip_prefix("<!-- output:")
            .and_then(|s| s.strip_suffix("-->"))
        else {
            continue;
        };
        let mut words = spec.split_whitespace().map(str::to_owned);
        let example = words.next().expect("an example name after `output:`");
        assert_eq!(
            lines.get(i + 1).map(|l| l.trim()),
            Some("```text"),
            "{}:{}: an output marker is followed by a ```text block",
            file.display(),
            i + 1
        );
        let end = (i + 2..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .unwrap_or_else(|| panic!("{}:{}: unclosed block", file.display(), i + 2));
        out.push(Block {
            file: file.to_owned(),
            start: i + 2,
            end,
            example,
            args: words.collect(),
        });
    }
    out
}

/// Examples named as `--example NAME` in the text.
fn named_examples(text: &str) -> BTreeSet<String> {
    text.split("--example ")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Whether `actual` lines match `expected` lines (`[..]`, `...`).
fn matches(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
        Some((line, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(line, a) && matches(rest, more)),
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let expected = expected.trim_end();
    let actual = actual.trim_end();
    let mut parts = expected.split("[..]");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (k, part) in parts.iter().enumerate() {
        if k + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps")
        .join("examples")
        .join(name)
}

#[path = "../crates/flechette-redis/tests/support/server.rs"]
mod redis_server;
use redis_server::RedisServer as Redis;

fn run(block: &Block, redis: &mut Option<Redis>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = block
        .args
        .iter()
        .map(|a| {
            if a == "{redis}" {
                redis.get_or_insert_with(Redis::start).url()
            } else {
                a.clone()
            }
        })
        .collect();
    let out = Command::new(example_binary(&block.example))
        .args(&args)
        .current_dir(dir.path())
        .env_remove("FLECHETTE_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("example {} does not run: {e}", block.example));
    assert!(
        out.status.success(),
        "example {} {:?} failed: {}",
        block.example,
        block.args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_guide_shows_what_the_examples_print() {
    let bless = std::env::var_os("FLECHETTE_BLESS").is_some();
    let mut redis = None;
    let mut failures = Vec::new();
    let mut shown = BTreeSet::new();
    let mut named = BTreeSet::new();
    for file in guide_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        named.extend(named_examples(&text).into_iter().map(|n| (n, file.clone())));
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // From the last block up, so a rewrite keeps earlier indexes.
        let found = blocks(&file, &text);
        let mut changed = false;
        for block in found.iter().rev() {
            shown.insert(block.example.clone());
            let actual = run(block, &mut redis);
            let actual_lines: Vec<&str> = actual.lines().collect();
            let expected: Vec<&str> = lines[block.start..block.end]
                .iter()
                .map(String::as_str)
                .collect();
            if matches(&expected, &actual_lines) {
                continue;
            }
            if bless {
                lines.splice(
                    block.start..block.end,
                    actual_lines.iter().map(|l| l.trim_end().to_owned()),
                );
                changed = true;
            } else {
                failures.push(format!(
                    "{}:{}: `{} {}` printed:\n{actual}\n--- but the guide shows:\n{}\n",
                    block.file.display(),
                    block.start,
                    block.example,
                    block.args.join(" "),
                    expected.join("\n")
                ));
            }
        }
        if changed {
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        }
    }
    for (name, file) in &named {
        assert!(
            root().join("examples").join(format!("{name}.rs")).exists(),
            "{} names a missing example {name}",
            file.display()
        );
        if !shown.contains(name) {
            failures.push(format!(
                "{} names example {name}, but no `<!-- output: {name} -->` block shows its output",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_matcher_understands_wildcards() {
    assert!(line_matches("took [..] s", "took 0.30 s"));
    assert!(line_matches("[..]", "anything"));
    assert!(line_matches("a [..] b [..] c", "a 1 b 2 c"));
    assert!(!line_matches("took [..] s", "took 0.30 ms!"));
    assert!(!line_matches("exact", "exact!"));
    assert!(matches(&["a", "...", "d"], &["a", "b", "c", "d"]));
    assert!(matches(&["a", "...", "b"], &["a", "b"]));
    assert!(!matches(&["a", "b"], &["a", "b", "c"]));
}
