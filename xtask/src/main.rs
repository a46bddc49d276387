//! # xtask: Ferroc's developer tasks
//!
//! Run through the cargo alias in `.cargo/config.toml` (`xtask = run --quiet --package xtask --`):
//!
//! - `cargo xtask test`: **the** project test command (the README and CI run it). In order, and
//!   stopping at the first failure: `cargo fmt --check`, `cargo clippy -D warnings`,
//!   `cargo test --workspace` with default and with all features, every loom model, and the feature-combination
//!   builds listed in [`test::FEATURE_CHECKS`]. Ends with a summary of each step's time.
//! - `cargo xtask test-loom`: only the loom models (see [`loom`]).
//! - `cargo xtask capi`: the C libraries, header and pkg-config file (see [`capi`]).
//! - `cargo xtask suite`: the workload programs with each allocator, tables and charts (see
//!   [`suite`]).
//! - `cargo xtask bench [--quick] [FILTER]...`: the criterion benches of `benches/`, Ferroc
//!   beside the system allocator, mimalloc and jemalloc, and a markdown table of the medians
//!   (see [`bench`]).
//! - `cargo xtask tsan`: the threaded tests under ThreadSanitizer (see [`tsan`]).
//! - `cargo xtask help`: usage.
//!
//! The arguments are parsed by hand ([`cli`]), criterion's JSON is read by a small reader
//! ([`json`]), and every child is a `std::process::Command` run from the workspace root
//! ([`workspace`]). Beyond `std`, the crate uses `libc` (`wait4` for the suite's peak memory)
//! and `plotters` (the suite's charts).

mod bench;
mod capi;
mod cli;
mod json;
mod loom;
mod run;
mod suite;
mod test;
mod tsan;
mod workspace;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("Run `cargo xtask help` for usage.");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        cli::Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        cli::Command::TestLoom { preemptions } => loom::run(preemptions).map(|_| ()),
        cli::Command::Test(options) => test::run(&options),
        cli::Command::Suite(options) => suite::run(&options),
        cli::Command::Tsan => tsan::run(),
        cli::Command::Capi { prefix, features } => {
            capi::run(prefix.as_deref(), features.as_deref())
        }
        cli::Command::Bench(options) => bench::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
