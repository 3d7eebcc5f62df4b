//! Runs examples (built by `cargo test` with the other targets) and holds
//! them to what they claim: examples/dogpile.rs on tokio's paused clock (at
//! most the predicted 17 backend calls and at most one blocked batch, with
//! and without `expire_after`), and examples/processes.rs (every result of
//! the worker processes present, no key computed twice in one process).

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    profile_dir.join("examples").join(name)
}

/// What the example printed; fails the test if it failed.
fn output(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .expect("the example runs (cargo test builds it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn run(name: &str, args: &[&str]) -> Vec<(String, usize)> {
    output(name, args)
        .lines()
        .map(|line| {
            let (label, n) = line.rsplit_once(": ").expect("`label: number` lines");
            let n = n.split_whitespace().next().expect("a number");
            (label.to_owned(), n.parse().expect("a number"))
        })
        .collect()
}

fn check(args: &[&str]) {
    let lines = run("dogpile", args);
    let labels: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "flechette backend calls",
            "naive backend calls",
            "predicted backend calls",
            "flechette blocked batches"
        ]
    );
    let (flechette, naive, predicted, blocked) = (lines[0].1, lines[1].1, lines[2].1, lines[3].1);
    assert_eq!(predicted, 17);
    assert!(flechette <= predicted, "{flechette} backend calls");
    assert!(
        naive > flechette,
        "the naive cache dog-piles: {naive} calls"
    );
    assert!(blocked <= 1, "{blocked} blocked batches");
}

#[test]
fn dogpile_meets_its_targets_with_update_after() {
    check(&["--paused"]);
}

#[test]
fn dogpile_meets_its_targets_with_expire_after_too() {
    check(&["--paused", "--expire-after-ms", "400"]);
}

#[test]
fn processes_share_one_file_cache() {
    let lines = run("processes", &[]);
    let get = |label: &str| {
        lines
            .iter()
            .find(|(l, _)| l == label)
            .unwrap_or_else(|| panic!("no `{label}` line in {lines:?}"))
            .1
    };
    assert_eq!(get("keys: 36, results present"), 36);
    assert_eq!(get("most computations of one key in one process"), 1);
    let computed: usize = lines
        .iter()
        .filter(|(l, _)| l.starts_with("worker"))
        .map(|(_, n)| *n)
        .sum();
    assert!(
        (36..=60).contains(&computed),
        "{computed} computations for 36 keys"
    );
}

#[test]
fn concurrency_shows_what_each_section_claims() {
    let text = output("concurrency", &[]);
    for line in [
        "results: [1, 3, 5, 7]",
        "in my_cache: true",
        "in other_cache: true",
        "a second handle on the directory sees the call: true",
        "first call returns a handle at once; complete: false",
        "second call: a handle of the same type, complete: true",
        "result: 16, tasks spawned in all: 1",
        "second pass all complete at once: true",
        "executor: 4 answered without spawning, 4 started, 1 passed through",
        "stored under triple's own key: true",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}
