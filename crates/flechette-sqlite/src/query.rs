//! [`CallQuery`] as SQL over the index tables.

use flechette_core::{CallQuery, DigestPrefix};

/// A `WHERE` clause being built, with its parameters.
struct Sql {
    text: String,
    args: Vec<String>,
}

impl Sql {
    fn and<const N: usize>(&mut self, clause: &str, args: [&str; N]) {
        self.text.push_str(" AND ");
        self.text.push_str(clause);
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
    }
}

/// The query as one `SELECT key, record FROM calls ...` with its parameters.
pub(crate) fn to_sql(query: &CallQuery) -> (String, Vec<String>) {
    let mut sql = Sql {
        text: String::from("SELECT key, record FROM calls WHERE 1 = 1"),
        args: Vec::new(),
    };
    // Hex digits sort below 'g': [prefix, prefix + "g") is every digest
    // with that prefix, an index range.
    let upper = |p: &DigestPrefix| format!("{}g", p.as_str());
    if let Some(name) = &query.name {
        sql.and("name = ?", [name]);
    }
    if let Some(module) = &query.module {
        sql.and("module = ?", [module]);
    }
    if let Some(version) = &query.version {
        sql.and("version = ?", [version]);
    }
    if let Some(result) = &query.result {
        sql.and(
            "result >= ? AND result < ?",
            [result.as_str(), &upper(result)],
        );
    }
    for (name, prefix) in &query.arguments {
        sql.and(
            "key IN (SELECT key FROM arguments WHERE name = ? AND digest >= ? AND digest < ?)",
            [name, prefix.as_str(), &upper(prefix)],
        );
    }
    for tag in &query.has_tags {
        sql.and("key IN (SELECT key FROM tags WHERE tag = ?)", [tag]);
    }
    for (tag, value) in &query.tags {
        sql.and(
            "key IN (SELECT key FROM tags WHERE tag = ? AND value = ?)",
            [tag, value],
        );
    }
    for entry in &query.has_metadata {
        match entry.as_str() {
            "runtime" => sql.and("has_runtime = 1", []),
            "lifespan" => sql.and("has_lifespan = 1", []),
            "tags" => sql.and("key IN (SELECT key FROM tags)", []),
            _ => sql.and("key IN (SELECT key FROM metadata WHERE entry = ?)", [entry]),
        }
    }
    for (entry, value) in &query.metadata {
        sql.and(
            "key IN (SELECT key FROM metadata WHERE entry = ? AND value = ?)",
            [entry, &value.to_string()],
        );
    }
    (sql.text, sql.args)
}
