//! # xtask: Ferroc's developer tasks
//!
//! Run through the cargo alias in `.cargo/config.toml` (`xtask = run --quiet --package xtask --`):
//!
//! - `cargo xtask test`: **the** project test command (the README and CI run it). First
//!   `setup` (below), then in order, stopping at the first failure: `cargo fmt --check`,
//!   `cargo clippy -D warnings`, `cargo test --workspace` with default and with all features,
//!   every loom model, and the feature-combination builds listed in [`test::FEATURE_CHECKS`].
//!   Ends with a summary of each step's time.
//! - `cargo xtask setup [--dry-run]`: installs the Debian packages and rustup components the
//!   tests need and the machine lacks (see [`setup`]).
//! - `cargo xtask test-loom`: only the loom models (see [`loom`]).
//! - `cargo xtask capi`: the C libraries, header and pkg-config file (see [`capi`]).
//! - `cargo xtask suite`: the workload programs with each allocator, tables and charts (see
//!   [`suite`]).
//! - `cargo xtask bench [--quick] [FILTER]...`: the criterion benches of `benches/`, Ferroc
//!   beside the system allocator, mimalloc and jemalloc, and a markdown table of the medians
//!   (see [`bench`](mod@bench)).
//! - `cargo xtask tsan`: the threaded tests under ThreadSanitizer (see [`tsan`]).
//! - `cargo xtask --help` (or `help`, or no command): usage; `cargo xtask <COMMAND> --help`:
//!   a command's options.
//!
//! Every child is a `std::process::Command` run from the workspace root ([`workspace`]). The
//! crates beyond `std`, each for one job: `clap` parses the arguments ([`cli`]),
//! `cargo_metadata` lists the workspace's members, `serde_json` (with `serde`'s derive) reads
//! criterion's JSON and writes the suite's, `libc` gives `wait4` (the suite's peak memory) and
//! `geteuid`, and `plotters` draws the suite's charts.

mod bench;
mod capi;
mod cli;
mod loom;
mod run;
mod setup;
mod suite;
mod test;
mod tsan;
mod workspace;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // Usage errors exit with status 2 and `--help` with 0, both from clap.
    let cli = cli::Cli::parse();
    let result = match cli.command {
        None => cli::Cli::command()
            .print_help()
            .map_err(|e| format!("cannot print the help: {e}")),
        Some(cli::Command::TestLoom(options)) => loom::run(options.preemptions).map(|_| ()),
        Some(cli::Command::Test(options)) => test::run(&options),
        Some(cli::Command::Setup(options)) => setup::run(&options, true),
        Some(cli::Command::Suite(options)) => suite::run(&options),
        Some(cli::Command::Tsan) => tsan::run(),
        Some(cli::Command::Capi(options)) => {
            capi::run(options.prefix.as_deref(), options.features.as_deref())
        }
        Some(cli::Command::Bench(options)) => bench::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
