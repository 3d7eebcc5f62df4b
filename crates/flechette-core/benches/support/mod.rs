//! Reads criterion's own estimates back, so benches can print ratios of
//! measurements taken in the same run.

#![allow(dead_code)]

use std::path::PathBuf;

/// `target/criterion`, found from the bench executable's location
/// (`target/<profile>/deps/<bench>`), unless `CRITERION_HOME` names it.
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?;
    Some(target.join("criterion"))
}

/// The median (ns) criterion estimated for `group/id` in this run.
pub(crate) fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_home()?
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints `ratio <label> = X.XX` for two measurements of one group.
pub(crate) fn print_ratio(label: &str, group: &str, numerator: &str, denominator: &str) {
    match (median_ns(group, numerator), median_ns(group, denominator)) {
        (Some(a), Some(b)) if b > 0.0 => println!("ratio {label} = {:.2}", a / b),
        _ => println!("ratio {label} = unavailable (run the whole group)"),
    }
}

/// The median of some wall times.
pub(crate) fn median(mut times: Vec<std::time::Duration>) -> std::time::Duration {
    times.sort();
    times[times.len() / 2]
}

/// A runtime with two workers, like the machine's two cores.
pub(crate) fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
