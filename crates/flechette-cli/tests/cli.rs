//! The flechette command against a populated SQLite cache.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

use flechette::{CachedFn, tags};

/// A SQLite cache with `square(x)` for x in 1..=3 (tagged project=p1 for
/// x = 1) and `label(x)` for x in 1..=2.
async fn populate(dir: &Path) -> PathBuf {
    let path = dir.join("cache.sqlite");
    let cache = flechette::sqlite::open(&path).unwrap();
    let square = CachedFn::builder("square")
        .module("cli_tests")
        .args(["x"])
        .cache(cache.clone())
        .build(|(x,): (u64,)| async move { x * x });
    let label = CachedFn::builder("label")
        .module("cli_tests")
        .args(["x"])
        .cache(cache.clone())
        .build(|(x,): (u64,)| async move { format!("item-{x}") });
    tags([("project", "p1")])
        .scope(square.call((1,)))
        .await
        .unwrap();
    for x in 2..=3 {
        square.call((x,)).await.unwrap();
    }
    for x in 1..=2 {
        label.call((x,)).await.unwrap();
    }
    cache.save_value(&"orphan").await.unwrap();
    // Results are written behind the callers: a process flushes before it
    // exits, so that the next one sees them.
    cache.flush().await;
    path
}

fn flechette(db: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("flechette")
        .unwrap()
        .arg("--cache")
        .arg(format!("sqlite:{}", db.display()))
        .args(args)
        .assert()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out: Output = flechette(db, args).success().get_output().clone();
    String::from_utf8(out.stdout).unwrap()
}

fn fails(db: &Path, args: &[&str]) -> String {
    let out = flechette(db, args).failure().code(1).get_output().clone();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        !err.contains("panicked"),
        "no panic reaches the user: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(err.starts_with("flechette: error: "), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_query_and_table_filter_and_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = populate(dir.path()).await;
    let all = ok(&db, &["ls"]);
    assert_eq!(all.matches("square").count(), 3, "{all}");
    assert_eq!(all.matches("label").count(), 2, "{all}");
    let one = ok(&db, &["query", "--name", "square", "--arg", "x=2"]);
    assert_eq!(one.matches("square").count(), 1, "{one}");
    let tagged = ok(&db, &["query", "--tag", "project=p1"]);
    assert_eq!(tagged.matches("square").count(), 1, "{tagged}");
    assert!(ok(&db, &["query", "--tag", "project"]).contains("p1"));
    assert_eq!(ok(&db, &["query", "--name", "nothing"]).trim(), "no calls");

    let csv = ok(
        &db,
        &[
            "table", "--name", "square", "--args", "x", "--result", "--format", "csv",
        ],
    );
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "call,name,module,x,result,timestart,walltime,project"
    );
    assert_eq!(lines.count(), 3);
    let json: serde_json::Value = serde_json::from_str(&ok(
        &db,
        &[
            "table", "--name", "label", "--args", "x", "--result", "--format", "json",
        ],
    ))
    .unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r["result"] == "item-2" && r["x"] == 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn show_expand_rm_gc_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let db = populate(dir.path()).await;
    let csv = ok(
        &db,
        &[
            "table", "--name", "square", "--args", "x", "--format", "csv",
        ],
    );
    let row = csv.lines().find(|l| l.contains(",3,")).unwrap();
    let prefix = row.split(',').next().unwrap().to_owned();

    let full = ok(&db, &["expand", &prefix]);
    assert_eq!(full.trim().len(), 64);
    let shown: serde_json::Value = serde_json::from_str(&ok(&db, &["show", &prefix])).unwrap();
    assert_eq!(shown["name"], "square");
    assert_eq!(shown["arguments"]["x"], 3);
    assert_eq!(shown["result"], 9);
    assert!(shown["metadata"]["runtime"]["walltime"].is_number());

    let stats = ok(&db, &["stats"]);
    assert!(stats.contains("calls: 5"), "{stats}");
    assert!(stats.contains("calls of cli_tests::square: 3"), "{stats}");

    assert!(ok(&db, &["rm", &prefix]).starts_with("removed "));
    let err = fails(&db, &["show", &prefix]);
    assert!(err.contains("no value or call"), "{err}");
    assert_eq!(
        ok(&db, &["rm", "--name", "label"]).trim(),
        "removed 2 calls of label"
    );
    let gc = ok(&db, &["gc"]);
    assert!(
        gc.starts_with("kept 3 values, removed 0\n"),
        "the removed calls' values went with them; the orphan was written within the grace period: {gc}"
    );
    assert!(
        gc.contains("kept 1 values no record refers to"),
        "the orphan is young: {gc}"
    );
    assert!(gc.contains("removed 0 expired calls"), "{gc}");
    let gc = ok(&db, &["gc", "--grace", "0"]);
    assert!(
        gc.starts_with("kept 3 values, removed 1\n"),
        "without a grace period the orphan goes: {gc}"
    );
    assert!(
        gc.contains("removed 0 damaged files set aside, 0 temporary files"),
        "{gc}"
    );
    assert!(ok(&db, &["stats"]).contains("calls: 2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = populate(dir.path()).await;
    assert!(fails(&db, &["expand", "abc"]).contains("too short"));
    assert!(fails(&db, &["expand", "zzzz"]).contains("not hex"));
    assert!(fails(&db, &["expand", "0000000000"]).contains("no value or call"));
    assert!(fails(&db, &["query", "--arg", "x"]).contains("name=JSON"));
    assert!(fails(&db, &["query", "--arg", "x=ada"]).contains("not JSON"));
    let missing = dir.path().join("absent.sqlite");
    assert!(fails(&missing, &["ls"]).contains("not a SQLite cache file"));
    Command::cargo_bin("flechette")
        .unwrap()
        .args(["--cache", "ftp://x", "ls"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("not a cache URL"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_named_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let db = populate(dir.path()).await;
    std::fs::write(
        dir.path().join("flechette.toml"),
        "default = \"main\"\n[caches.main]\nkind = \"sqlite\"\npath = \"cache.sqlite\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::cargo_bin("flechette")
            .unwrap()
            .current_dir(dir.path())
            .args(args)
            .assert()
    };
    let by_default = run(&["ls", "--name", "square"]).success();
    assert_eq!(
        String::from_utf8_lossy(&by_default.get_output().stdout)
            .matches("square")
            .count(),
        3
    );
    run(&["--cache", "main", "stats"])
        .success()
        .stdout(predicates::str::contains("calls: 5"));
    run(&["--cache", "nope", "ls"])
        .failure()
        .stderr(predicates::str::contains("unknown cache \"nope\""));
    let _ = db;
}
