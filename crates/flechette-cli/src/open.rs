//! Which cache a command works on.

use flechette::Cache;
use flechette::config::Config;

/// The cache `--cache` names: a URL (it has a `:`), a cache of the
/// configuration, or the configuration's default. Errors are one line.
pub(crate) fn cache(given: Option<&str>) -> Result<Cache, String> {
    if let Some(url) = given.filter(|g| g.contains(':')) {
        return from_url(url);
    }
    let name = given;
    let config = Config::discover()
        .map_err(|e| e.to_string())?
        .ok_or("no cache given: use --cache URL, or write a flechette.toml")?;
    match name {
        Some(name) => config.cache(name),
        None => config.default_cache(),
    }
    .map_err(|e| e.to_string())
}

fn from_url(url: &str) -> Result<Cache, String> {
    let (scheme, rest) = url.split_once(':').ok_or_else(|| {
        format!("{url:?} is not a cache URL: use memory:, file:DIR or sqlite:PATH")
    })?;
    match scheme {
        "memory" => Ok(Cache::memory()),
        "file" if !rest.is_empty() => {
            let dir = std::path::Path::new(rest);
            if !dir.is_dir() {
                return Err(format!("{rest:?} is not a directory"));
            }
            Cache::open(dir).map_err(|e| e.to_string())
        }
        "sqlite" if !rest.is_empty() => {
            if !std::path::Path::new(rest).is_file() {
                return Err(format!("{rest:?} is not a SQLite cache file"));
            }
            flechette::sqlite::open(rest).map_err(|e| e.to_string())
        }
        "redis" | "rediss" => flechette::redis::open(url, "flechette").map_err(|e| e.to_string()),
        _ => Err(format!(
            "{url:?} is not a cache URL: use memory:, file:DIR, sqlite:PATH or redis://HOST:PORT/"
        )),
    }
}
