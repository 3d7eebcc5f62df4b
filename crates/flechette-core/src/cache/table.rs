//! Calls as a table: aligned text, CSV or JSON.

use std::collections::BTreeSet;
use std::fmt;

use comfy_table::presets::ASCII_MARKDOWN;
use serde_json::Value;

use super::Cache;
use crate::prefix::shortest_unique;
use crate::{CacheError, CallQuery};

/// Which value columns [`Cache::table`] adds.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct TableOptions {
    arguments: Vec<String>,
    result: bool,
}

impl TableOptions {
    /// No value columns: identity and metadata only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A column for each named argument, loaded and shown as JSON.
    pub fn arguments<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.arguments = names.into_iter().map(Into::into).collect();
        self
    }

    /// A column with the result, loaded and shown as JSON.
    pub fn result(mut self, yes: bool) -> Self {
        self.result = yes;
        self
    }
}

/// Rows of calls with named columns. `Display` renders aligned text.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names; the first is `call`, the call key shrunk to a unique prefix.
    pub columns: Vec<String>,
    /// One row per call, one JSON cell per column (`null` where empty).
    pub rows: Vec<Vec<Value>>,
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.6}", n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

const MAX_CELL: usize = 48;

fn clip(s: String) -> String {
    if s.chars().count() <= MAX_CELL {
        return s;
    }
    let mut out: String = s.chars().take(MAX_CELL - 1).collect();
    out.push('…');
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl Table {
    /// CSV with a header line (RFC 4180 quoting); cells are not clipped.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut line = |cells: Vec<String>| {
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        };
        line(self.columns.iter().map(|c| csv_field(c)).collect());
        for row in &self.rows {
            line(row.iter().map(|v| csv_field(&cell_text(v))).collect());
        }
        out
    }

    /// A JSON array with one object per row.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    Value::Object(
                        self.columns
                            .iter()
                            .cloned()
                            .zip(row.iter().cloned())
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = comfy_table::Table::new();
        table.load_style(ASCII_MARKDOWN);
        table.set_header(self.columns.clone());
        for row in &self.rows {
            table.add_row(row.iter().map(|v| clip(cell_text(v))));
        }
        write!(f, "{table}")
    }
}

/// A value cell: `null` for an absent argument, or (with a warning) for a
/// value that is missing or does not decode; storage failures are errors.
fn shown(value: Result<Value, CacheError>, key: &crate::Digest) -> Result<Value, CacheError> {
    match value {
        Ok(v) => Ok(v),
        Err(CacheError::NoSuchArgument(_)) => Ok(Value::Null),
        Err(e @ (CacheError::MissingValue(_) | CacheError::Decode(_))) => {
            tracing::warn!(%key, error = %e, "table: a value cannot be shown");
            Ok(Value::Null)
        }
        Err(e) => Err(e),
    }
}

impl Cache {
    /// The calls matching `query` as a table: the call key shrunk to a unique
    /// prefix, name, module, the chosen argument columns, optionally the
    /// result, then `timestart`, `walltime` and one column per tag key. An
    /// argument named like a metadata column is shown as `a_<name>`, a tag
    /// named like a fixed column as `tag_<key>`; a value that is missing or
    /// damaged is shown as `null`.
    ///
    /// # Errors
    ///
    /// As [`Cache::query`], plus errors loading the shown values.
    pub async fn table(
        &self,
        query: &CallQuery,
        options: &TableOptions,
    ) -> Result<Table, CacheError> {
        let calls = self.query(query).await?;
        let tag_keys: BTreeSet<&str> = calls
            .iter()
            .flat_map(|c| c.metadata().tags.keys().map(String::as_str))
            .collect();
        let mut fixed: BTreeSet<&str> = ["call", "name", "module", "timestart", "walltime"].into();
        if options.result {
            fixed.insert("result");
        }
        // A tag named like a fixed column is shown as `tag_<key>`.
        let tag_columns: Vec<String> = tag_keys
            .iter()
            .map(|k| {
                if fixed.contains(k) {
                    format!("tag_{k}")
                } else {
                    (*k).to_owned()
                }
            })
            .collect();
        fixed.extend(tag_columns.iter().map(String::as_str));

        let mut columns: Vec<String> = vec!["call".into(), "name".into(), "module".into()];
        for arg in &options.arguments {
            columns.push(if fixed.contains(arg.as_str()) {
                format!("a_{arg}")
            } else {
                arg.clone()
            });
        }
        if options.result {
            columns.push("result".into());
        }
        columns.extend(["timestart".into(), "walltime".into()]);
        columns.extend(tag_columns.iter().cloned());

        let mut known = Vec::new();
        for level in self.level_list() {
            known.extend(level.calls.list(None).await?);
            known.extend(level.values.list(None).await?);
        }
        known.sort_unstable();
        known.dedup();

        let mut rows = Vec::with_capacity(calls.len());
        for call in &calls {
            let key = call.digest();
            let neighbours = match known.binary_search(&key) {
                Ok(at) => [at.checked_sub(1), Some(at + 1)],
                Err(at) => [at.checked_sub(1), Some(at)],
            }
            .into_iter()
            .flatten()
            .filter_map(|i| known.get(i));
            let mut row = vec![
                Value::String(shortest_unique(&key, neighbours).to_string()),
                Value::String(call.name().to_owned()),
                Value::String(call.module().to_owned()),
            ];
            for arg in &options.arguments {
                row.push(shown(call.arguments().get_value(arg).await, &key)?);
            }
            if options.result {
                row.push(shown(call.result_value().await, &key)?);
            }
            let runtime = call.metadata().runtime.as_ref();
            row.push(runtime.map_or(Value::Null, |r| Value::String(r.timestart.to_string())));
            row.push(runtime.map_or(Value::Null, |r| Value::from(r.walltime)));
            for k in &tag_keys {
                row.push(
                    call.metadata()
                        .tags
                        .get(*k)
                        .map_or(Value::Null, |v| Value::from(v.clone())),
                );
            }
            rows.push(row);
        }
        Ok(Table { columns, rows })
    }
}
