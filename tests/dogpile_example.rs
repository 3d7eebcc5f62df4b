//! Runs examples/dogpile.rs (built by `cargo test` with the other examples)
//! on tokio's paused clock and holds it to its targets: at most the
//! predicted 17 backend calls and at most one blocked batch, with and
//! without `expire_after`.

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

fn run(args: &[&str]) -> Vec<(String, usize)> {
    let out = Command::new(example("dogpile"))
        .args(args)
        .output()
        .expect("examples/dogpile runs (cargo test builds it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (label, n) = line.rsplit_once(": ").expect("`label: number` lines");
            (label.to_owned(), n.parse().expect("a number"))
        })
        .collect()
}

fn check(args: &[&str]) {
    let lines = run(args);
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
