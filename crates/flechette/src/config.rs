//! `flechette.toml`: named caches and the process default.
//!
//! ```toml
//! default = "tiered"
//!
//! [caches.local]
//! kind = "memory"
//!
//! [caches.disk]
//! kind = "file"
//! dir = "cache"            # relative to this file
//! max_bytes = 1073741824   # optional: evicts least recently read calls beyond 1 GiB
//!
//! [caches.db]
//! kind = "sqlite"          # needs the `sqlite` feature
//! path = "cache.sqlite"
//! max_bytes = 1073741824   # optional, as for files
//! write_queue = 10000      # calls queued behind callers (file, sqlite, redis)
//! write_queue_bytes = 67108864
//!
//! [caches.shared]
//! kind = "redis"           # needs the `redis` feature
//! url = "redis://127.0.0.1:6379/"
//! prefix = "myapp"         # default "flechette"
//!
//! [caches.tiered]
//! kind = "stack"
//! levels = ["local", "disk"]
//! ```
//!
//! The file is found in the current directory or its parents, or named by
//! `FLECHETTE_CONFIG`. Without one, the default is an in-memory cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flechette_core::{Cache, CacheStack, WriteBehind};
use serde::Deserialize;
use toml::Spanned;

/// The file name searched for.
pub const FILE_NAME: &str = "flechette.toml";
/// The environment variable that names the file.
pub const ENV_VAR: &str = "FLECHETTE_CONFIG";

/// A configuration that could not be read or used. Every variant names the
/// file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or not the shape of a configuration.
    #[error("{}: {message}", at(path, *line))]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line (1-based), 0 when unknown.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A name that no `[caches.<name>]` defines.
    #[error("{}: unknown cache {name:?}; defined: {known}", at(path, *line))]
    UnknownCache {
        /// The file.
        path: PathBuf,
        /// The line (1-based) of the reference, 0 for a name asked in code.
        line: usize,
        /// The name.
        name: String,
        /// The names the file defines.
        known: String,
    },
    /// A cache whose kind this build cannot make, or a bad setting.
    #[error("{}: cache {name:?}: {message}", at(path, *line))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line (1-based) of the cache's table.
        line: usize,
        /// The cache.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A cache could not be opened.
    #[error("{}: cache {name:?} cannot be opened: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cache.
        name: String,
        /// Why.
        #[source]
        source: flechette_core::storage::StorageError,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<Spanned<String>>,
    #[serde(default)]
    caches: BTreeMap<String, Spanned<Entry>>,
}

/// One `[caches.<name>]` table as written; [`Entry::kind`] checks it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kind: Spanned<String>,
    dir: Option<String>,
    path: Option<String>,
    url: Option<Spanned<String>>,
    prefix: Option<String>,
    levels: Option<Vec<Spanned<String>>>,
    /// The bounds of the write-behind queue, in calls and bytes.
    write_queue: Option<usize>,
    write_queue_bytes: Option<usize>,
    /// The bound of a memory cache (bytes of stored calls and values), of a
    /// file cache (bytes of disk its files take) or of a SQLite file (bytes
    /// of its pages in use).
    max_bytes: Option<usize>,
}

/// What a cache is, once its table is checked.
enum Kind<'a> {
    Memory,
    File(&'a str),
    Sqlite(&'a str),
    Redis(&'a Spanned<String>, Option<&'a str>),
    Stack(&'a [Spanned<String>]),
}

impl Entry {
    /// The kind and its settings, or what is missing or misplaced.
    fn kind(&self) -> Result<Kind<'_>, String> {
        let allowed: &[&str] = match self.kind.get_ref().as_str() {
            "memory" => &["max_bytes"],
            "file" => &["dir", "write_queue", "write_queue_bytes", "max_bytes"],
            "sqlite" => &["path", "write_queue", "write_queue_bytes", "max_bytes"],
            "redis" => &["url", "prefix", "write_queue", "write_queue_bytes"],
            "stack" => &["levels"],
            other => {
                return Err(format!(
                    "unknown kind {other:?}: expected memory, file, sqlite, redis or stack"
                ));
            }
        };
        let present = [
            ("dir", self.dir.is_some()),
            ("path", self.path.is_some()),
            ("url", self.url.is_some()),
            ("prefix", self.prefix.is_some()),
            ("levels", self.levels.is_some()),
            ("write_queue", self.write_queue.is_some()),
            ("write_queue_bytes", self.write_queue_bytes.is_some()),
            ("max_bytes", self.max_bytes.is_some()),
        ];
        if let Some((field, _)) = present.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(format!(
                "`{field}` does not apply to {} caches",
                self.kind.get_ref()
            ));
        }
        let need = |field: &str| format!("{} caches need `{field}`", self.kind.get_ref());
        Ok(match self.kind.get_ref().as_str() {
            "memory" => Kind::Memory,
            "file" => Kind::File(self.dir.as_deref().ok_or_else(|| need("dir"))?),
            "sqlite" => Kind::Sqlite(self.path.as_deref().ok_or_else(|| need("path"))?),
            "redis" => Kind::Redis(
                self.url.as_ref().ok_or_else(|| need("url"))?,
                self.prefix.as_deref(),
            ),
            _ => Kind::Stack(self.levels.as_deref().ok_or_else(|| need("levels"))?),
        })
    }
}

/// A parsed `flechette.toml`.
#[derive(Debug)]
pub struct Config {
    path: PathBuf,
    text: String,
    file: File,
}

impl Config {
    /// Reads the configuration file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] or [`ConfigError::Malformed`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(text, path)
    }

    /// Parses configuration text as if read from `path` (relative paths in
    /// it resolve against `path`'s directory).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Malformed`].
    pub fn parse(text: impl Into<String>, path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let (text, path) = (text.into(), path.into());
        let file: File = toml::from_str(&text).map_err(|e| ConfigError::Malformed {
            line: e.span().map_or(0, |s| line_of(&text, s.start)),
            message: e.message().trim().to_owned(),
            path: path.clone(),
        })?;
        let config = Self { path, text, file };
        config.check()?;
        Ok(config)
    }

    /// The configuration `FLECHETTE_CONFIG` names, or the first
    /// `flechette.toml` in the current directory or its parents; `None`
    /// when there is none.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), for the file found.
    pub fn discover() -> Result<Option<Self>, ConfigError> {
        if let Some(path) = std::env::var_os(ENV_VAR) {
            return Self::load(PathBuf::from(path)).map(Some);
        }
        let Ok(mut dir) = std::env::current_dir() else {
            return Ok(None);
        };
        loop {
            let candidate = dir.join(FILE_NAME);
            if candidate.is_file() {
                return Self::load(candidate).map(Some);
            }
            if !dir.pop() {
                return Ok(None);
            }
        }
    }

    /// The file the configuration came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the caches it defines.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.file.caches.keys().map(String::as_str)
    }

    /// Builds the cache called `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownCache`], [`ConfigError::Invalid`] or
    /// [`ConfigError::Open`].
    pub fn cache(&self, name: &str) -> Result<Cache, ConfigError> {
        self.build(name, 0, &mut Vec::new())
    }

    /// Builds the default cache: the one `default = "..."` names, an
    /// in-memory cache when it names none.
    ///
    /// # Errors
    ///
    /// As [`cache`](Self::cache).
    pub fn default_cache(&self) -> Result<Cache, ConfigError> {
        match &self.file.default {
            Some(name) => self.build(
                name.get_ref(),
                self.line(name.span().start),
                &mut Vec::new(),
            ),
            None => Ok(Cache::memory()),
        }
    }

    fn line(&self, offset: usize) -> usize {
        line_of(&self.text, offset)
    }

    fn unknown(&self, name: &str, line: usize) -> ConfigError {
        ConfigError::UnknownCache {
            path: self.path.clone(),
            line,
            name: name.to_owned(),
            known: match self.names().collect::<Vec<_>>().join(", ") {
                none if none.is_empty() => "(none)".to_owned(),
                names => names,
            },
        }
    }

    /// Checks every reference and setting without opening anything.
    fn check(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.file.default
            && !self.file.caches.contains_key(name.get_ref())
        {
            return Err(self.unknown(name.get_ref(), self.line(name.span().start)));
        }
        for (name, entry) in &self.file.caches {
            let invalid = |line: usize, message: String| ConfigError::Invalid {
                path: self.path.clone(),
                line,
                name: name.clone(),
                message,
            };
            let table_line = self.line(entry.span().start);
            match entry.get_ref().kind().map_err(|m| invalid(table_line, m))? {
                Kind::Stack(levels) => {
                    if levels.is_empty() {
                        return Err(invalid(
                            table_line,
                            "a stack needs at least one level".into(),
                        ));
                    }
                    for level in levels {
                        if !self.file.caches.contains_key(level.get_ref()) {
                            return Err(
                                self.unknown(level.get_ref(), self.line(level.span().start))
                            );
                        }
                    }
                }
                Kind::Redis(url, _) => {
                    let u = url.get_ref();
                    if !(u.starts_with("redis://")
                        || u.starts_with("rediss://")
                        || u.starts_with("unix://"))
                    {
                        return Err(invalid(
                            self.line(url.span().start),
                            format!("{u:?} is not a Redis URL (redis://host:port/db)"),
                        ));
                    }
                }
                Kind::Memory | Kind::File(_) | Kind::Sqlite(_) => {}
            }
        }
        Ok(())
    }

    fn resolve(&self, relative: &str) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        base.join(relative)
    }

    fn build(
        &self,
        name: &str,
        line: usize,
        building: &mut Vec<String>,
    ) -> Result<Cache, ConfigError> {
        let entry = self
            .file
            .caches
            .get(name)
            .ok_or_else(|| self.unknown(name, line))?;
        let invalid = |message: String| ConfigError::Invalid {
            path: self.path.clone(),
            line: self.line(entry.span().start),
            name: name.to_owned(),
            message,
        };
        if building.iter().any(|b| b == name) {
            return Err(invalid(format!(
                "stacks refer to each other: {} -> {name}",
                building.join(" -> ")
            )));
        }
        let open = |source| ConfigError::Open {
            path: self.path.clone(),
            name: name.to_owned(),
            source,
        };
        let cache = match entry.get_ref().kind().map_err(&invalid)? {
            Kind::Memory => Ok(match entry.get_ref().max_bytes {
                Some(bytes) => Cache::in_memory(
                    &flechette_core::storage::MemoryStore::builder()
                        .max_bytes(bytes)
                        .build(),
                ),
                None => Cache::memory(),
            }),
            Kind::File(dir) => {
                let mut store = flechette_core::storage::FileStore::builder(self.resolve(dir));
                if let Some(bytes) = entry.get_ref().max_bytes {
                    store = store.max_bytes(u64::try_from(bytes).unwrap_or(u64::MAX));
                }
                store
                    .open()
                    .map(|store| Cache::new(store.values(), store.calls()))
                    .map_err(open)
            }
            #[cfg(feature = "sqlite")]
            Kind::Sqlite(path) => {
                let mut db = flechette_sqlite::Sqlite::builder(self.resolve(path));
                if let Some(bytes) = entry.get_ref().max_bytes {
                    db = db.max_bytes(u64::try_from(bytes).unwrap_or(u64::MAX));
                }
                db.open()
                    .map(|db| Cache::new(db.values(), db.calls()))
                    .map_err(open)
            }
            #[cfg(not(feature = "sqlite"))]
            Kind::Sqlite(path) => Err(invalid(format!(
                "sqlite cache at {path:?} needs flechette's `sqlite` feature, which this build does not have"
            ))),
            #[cfg(feature = "redis")]
            Kind::Redis(url, prefix) => {
                flechette_redis::open(url.get_ref(), prefix.unwrap_or("flechette")).map_err(open)
            }
            #[cfg(not(feature = "redis"))]
            Kind::Redis(url, prefix) => Err(invalid(format!(
                "redis cache at {:?} (prefix {prefix:?}) needs flechette's `redis` feature, which this build does not have",
                url.get_ref()
            ))),
            Kind::Stack(levels) => {
                building.push(name.to_owned());
                let mut stack = CacheStack::new();
                for level in levels {
                    let line = self.line(level.span().start);
                    stack = stack.push(self.build(level.get_ref(), line, building)?);
                }
                building.pop();
                Ok(stack.build())
            }
        }?;
        let entry = entry.get_ref();
        if entry.write_queue.is_none() && entry.write_queue_bytes.is_none() {
            return Ok(cache);
        }
        let default = WriteBehind::default();
        Ok(cache.with_write_behind(WriteBehind::new(
            entry.write_queue.unwrap_or(default.max_entries),
            entry.write_queue_bytes.unwrap_or(default.max_bytes),
        )))
    }
}

/// `file:line`, or `file` when there is no line (a name asked in code).
fn at(path: &Path, line: usize) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Makes the process default cache the one the discovered configuration
/// names (see [`Config::discover`]); without a configuration, keeps the
/// in-memory default and says so once at debug level.
///
/// # Errors
///
/// Any [`ConfigError`] of the file found: a bad configuration is never
/// silently replaced by memory.
pub fn configure() -> Result<Option<PathBuf>, ConfigError> {
    match Config::discover()? {
        Some(config) => {
            crate::set_default_cache(config.default_cache()?);
            tracing::debug!(path = ?config.path(), "flechette: default cache from configuration");
            Ok(Some(config.path().to_path_buf()))
        }
        None => {
            tracing::debug!("flechette: no {FILE_NAME} found; the default cache is in memory");
            Ok(None)
        }
    }
}
