//! `flechette`: browse, query and collect a flechette cache.
//!
//! The cache is `--cache URL` (`memory:`, `file:DIR`, `sqlite:PATH`,
//! `redis://HOST:PORT/`) or `--cache NAME` of a cache in flechette.toml
//! (default: the file's default cache).

mod commands;
mod open;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Browse, query and collect a flechette cache.
#[derive(Debug, Parser)]
#[command(name = "flechette", version, about)]
struct Cli {
    /// The cache: a URL (memory:, file:DIR, sqlite:PATH, or
    /// redis://HOST:PORT/ with keys under the prefix "flechette"), or the
    /// name of a cache in flechette.toml (found in this directory or its
    /// parents, or named by FLECHETTE_CONFIG). Default: the file's default.
    #[arg(long, global = true)]
    cache: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists calls matching the filters.
    Ls(Filters),
    /// Lists calls matching the filters (the same as `ls`).
    Query(Filters),
    /// Shows calls as a table with chosen argument columns and the result.
    Table {
        #[command(flatten)]
        filters: Filters,
        /// Argument columns, comma separated.
        #[arg(long, value_delimiter = ',')]
        args: Vec<String>,
        /// Add the result column.
        #[arg(long)]
        result: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Shows one call (by digest prefix) with its arguments and result as JSON.
    Show {
        /// A digest prefix of the call (4 to 64 hex characters).
        prefix: String,
    },
    /// Prints the full digest of a prefix.
    Expand {
        /// A digest prefix (4 to 64 hex characters).
        prefix: String,
    },
    /// Removes calls: one by digest prefix, or every call of a function.
    Rm {
        /// A digest prefix of the call.
        #[arg(required_unless_present = "name", conflicts_with = "name")]
        prefix: Option<String>,
        /// Remove every call of the function with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Removes expired calls, the values no call refers to (unless written
    /// within the grace period), damaged files set aside and temporary
    /// files; safe while services write.
    Gc {
        /// Seconds a value no call refers to is kept after it was written.
        #[arg(long, default_value_t = 300)]
        grace: u64,
    },
    /// Counts calls and values, bytes, and calls by function.
    Stats,
}

/// Filters shared by `ls`, `query` and `table`.
#[derive(Debug, Args)]
struct Filters {
    /// Function name.
    #[arg(long)]
    name: Option<String>,
    /// Module.
    #[arg(long)]
    module: Option<String>,
    /// An argument equal to a JSON value: `x=5`, `name="ada"`.
    #[arg(long = "arg")]
    arguments: Vec<String>,
    /// A tag, present (`key`) or equal (`key=value`).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

/// Output formats of `table`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Csv,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flechette: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flechette: error: {message}");
            ExitCode::FAILURE
        }
    }
}
