//! The commands. Each returns a one-line error message on failure.

use std::collections::BTreeMap;

use flechette::{Cache, CallQuery, D, Digest, GcOptions, TableOptions};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::{Cli, Command, Filters, Format};

type Outcome = Result<(), String>;

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub(crate) async fn run(cli: Cli) -> Outcome {
    let cache = crate::open::cache(cli.cache.as_deref())?;
    let outcome = command(&cache, cli.command).await;
    // Whatever a command queued is written before the process exits.
    cache.flush().await;
    outcome
}

async fn command(cache: &flechette::Cache, command: Command) -> Outcome {
    let cache = cache.clone();
    match command {
        Command::Ls(filters) | Command::Query(filters) => {
            table(&cache, &filters, TableOptions::new(), Format::Text).await
        }
        Command::Table {
            filters,
            args,
            result,
            format,
        } => {
            let options = TableOptions::new().arguments(args).result(result);
            table(&cache, &filters, options, format).await
        }
        Command::Show { prefix } => show(&cache, &prefix).await,
        Command::Expand { prefix } => {
            println!("{}", expand(&cache, &prefix).await?);
            Ok(())
        }
        Command::Rm { prefix, name } => rm(&cache, prefix, name).await,
        Command::Gc { grace } => {
            let grace = std::time::Duration::from_secs(grace);
            gc(&cache, GcOptions::new().grace(grace)).await
        }
        Command::Stats => stats(&cache).await,
    }
}

fn query(filters: &Filters) -> Result<CallQuery, String> {
    let mut q = CallQuery::new();
    if let Some(name) = &filters.name {
        q = q.name(name.clone());
    }
    if let Some(module) = &filters.module {
        q = q.module(module.clone());
    }
    for arg in &filters.arguments {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("--arg {arg:?}: write name=JSON, e.g. x=5 or name=\"ada\""))?;
        let value: Value = serde_json::from_str(value).map_err(|e| {
            format!("--arg {arg:?}: the value is not JSON ({e}); quote strings: name='\"ada\"'")
        })?;
        q = q.argument(name, &value);
    }
    for tag in &filters.tags {
        q = match tag.split_once('=') {
            Some((key, value)) => q.tag(key, value),
            None => q.has_tag(tag.clone()),
        };
    }
    Ok(q)
}

async fn table(cache: &Cache, filters: &Filters, options: TableOptions, format: Format) -> Outcome {
    let table = cache
        .table(&query(filters)?, &options)
        .await
        .map_err(text)?;
    match format {
        Format::Text if table.rows.is_empty() => println!("no calls"),
        Format::Text => println!("{table}"),
        Format::Csv => print!("{}", table.to_csv()),
        Format::Json => println!("{}", table.to_json()),
    }
    Ok(())
}

async fn expand(cache: &Cache, prefix: &str) -> Result<Digest, String> {
    let prefix = D(prefix).map_err(text)?;
    cache.expand(&prefix).await.map_err(text)
}

/// A value as JSON, or `{"error": ...}` when it cannot be shown.
async fn value_json(cache: &Cache, digest: &Digest) -> Value {
    cache
        .load_json(digest)
        .await
        .unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

async fn show(cache: &Cache, prefix: &str) -> Outcome {
    let digest = expand(cache, prefix).await?;
    let Some(call) = cache.load(&digest).await.map_err(text)? else {
        // A value digest: show the value.
        let shown =
            json!({ "value": digest.to_hex(), "content": value_json(cache, &digest).await });
        println!("{}", serde_json::to_string_pretty(&shown).map_err(text)?);
        return Ok(());
    };
    let record = call.record();
    let mut arguments = serde_json::Map::new();
    for (name, d) in &record.arguments {
        arguments.insert(name.clone(), value_json(cache, d).await);
    }
    let shown = json!({
        "call": digest.to_hex(),
        "name": record.name,
        "module": record.module,
        "version": record.version,
        "arguments": arguments,
        "result": value_json(cache, &record.result).await,
        "result_digest": record.result.to_hex(),
        "metadata": serde_json::to_value(&record.metadata).map_err(text)?,
    });
    println!("{}", serde_json::to_string_pretty(&shown).map_err(text)?);
    Ok(())
}

async fn rm(cache: &Cache, prefix: Option<String>, function: Option<String>) -> Outcome {
    if let Some(prefix) = prefix {
        let key = expand(cache, &prefix).await?;
        if !cache.evict(&key).await.map_err(text)? {
            return Err(format!("{key} is not a call"));
        }
        println!("removed {key}");
        return Ok(());
    }
    let name = function.ok_or("give a digest prefix or --name NAME")?;
    let mut removed = 0;
    for call in cache
        .query(&CallQuery::new().name(name.clone()))
        .await
        .map_err(text)?
    {
        removed += usize::from(cache.evict(&call.digest()).await.map_err(text)?);
    }
    println!("removed {removed} calls of {name}");
    Ok(())
}

/// Values examined before a progress bar appears.
const LONG_RUN: usize = 1_000;

async fn gc(cache: &Cache, options: GcOptions) -> Outcome {
    let mut bar: Option<ProgressBar> = None;
    let report = cache
        .gc_with(options, |p| {
            if p.total < LONG_RUN {
                return;
            }
            let bar = bar.get_or_insert_with(|| {
                let bar = ProgressBar::new(p.total as u64);
                if let Ok(style) =
                    ProgressStyle::with_template("gc {bar:40} {pos}/{len} values ({eta}) {msg}")
                {
                    bar.set_style(style);
                }
                bar
            });
            bar.set_position(p.report.examined() as u64);
            bar.set_message(format!(
                "kept {}, removed {}, young {}",
                p.report.kept, p.report.removed, p.report.young
            ));
        })
        .await
        .map_err(text)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!("kept {} values, removed {}", report.kept, report.removed);
    println!(
        "kept {} values no record refers to, written within the grace period",
        report.young
    );
    println!(
        "removed {} expired calls, with {} values",
        report.expired, report.expired_values
    );
    println!(
        "removed {} damaged files set aside, {} temporary files",
        report.corrupt, report.temp
    );
    Ok(())
}

async fn stats(cache: &Cache) -> Outcome {
    let calls = cache.query(&CallQuery::new()).await.map_err(text)?;
    let mut by_function: BTreeMap<String, usize> = BTreeMap::new();
    for call in &calls {
        *by_function
            .entry(format!("{}::{}", call.module(), call.name()))
            .or_default() += 1;
    }
    let values = cache.value_digests().await.map_err(text)?;
    let mut bytes = 0;
    for d in &values {
        if let Some(b) = cache.load_encoded(d).await.map_err(text)? {
            bytes += b.len();
        }
    }
    println!("calls: {}", calls.len());
    println!("values: {}", values.len());
    println!("value bytes: {bytes}");
    for (function, n) in by_function {
        println!("calls of {function}: {n}");
    }
    Ok(())
}
