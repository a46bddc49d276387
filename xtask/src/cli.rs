//! The command line, declared with `clap`'s derive: a subcommand followed by its flags.
//!
//! Each type's doc comment is its `--help` text: the first line is the one-line summary that
//! `cargo xtask --help` lists, the rest is shown by `cargo xtask <COMMAND> --help`.

use clap::{Args, Parser, Subcommand};

/// What `--help` prints after the commands: the environment variables xtask reads.
const ENVIRONMENT: &str = "\
Environment:
  LOOM_MAX_PREEMPTIONS          Loom's preemption bound when --preemptions is not given
  RUSTFLAGS                     Kept; the loom run appends `--cfg ferroc_loom` to it
  CRITERION_HOME                Where criterion writes (`bench`); default target/criterion
  FERROC_BENCH_CLOCK            `cpu`: the benches measure process CPU time (`bench --cpu-time` sets it)
  FERROC_SETUP_PRETEND_MISSING  Commands (or `rustfmt`, `clippy`) that `setup` treats as missing,
                                comma-separated: to try the install path with `setup --dry-run`";

/// Ferroc's developer tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", after_help = ENVIRONMENT)]
pub struct Cli {
    /// The task; none prints this help.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A subcommand and its options.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// The project test command (what CI runs): setup, fmt, clippy, tests, loom, feature builds
    ///
    /// First installs what the tests need and the machine lacks (`cargo xtask setup`), then
    /// runs, in order and stopping at the first failure:
    ///   fmt       cargo fmt --all -- --check
    ///   clippy    cargo clippy --workspace --all-targets --all-features -- -D warnings
    ///   test      cargo test --workspace, then with --all-features
    ///   loom      every loom model (as `test-loom`)
    ///   features  the feature-combination builds listed in xtask/src/test.rs
    #[command(verbatim_doc_comment)]
    Test(TestOptions),
    /// Run every loom model of the workspace (crates with a `loom_tests` module)
    ///
    /// In release mode with `--cfg ferroc_loom`, in target/loom.
    #[command(verbatim_doc_comment)]
    TestLoom(LoomOptions),
    /// Install the Debian packages and rustup components `test` needs and the machine lacks
    ///
    /// Installs with `apt-get` when run as root; otherwise stops and prints the `sudo apt-get`
    /// command to run. `test` runs this first (unless `--no-setup`).
    #[command(verbatim_doc_comment)]
    Setup(SetupOptions),
    /// Build the C libraries, header and pkg-config file
    ///
    /// target/ferroc-capi/lib/libferroc.so (replaces malloc and operator new), libferroc.a (the
    /// fe_* API), libferroc-override.a (both), include/ferroc.h and lib/pkgconfig/ferroc.pc.
    #[command(verbatim_doc_comment)]
    Capi(CapiOptions),
    /// Run the workload programs of benches/workloads/ with each allocator, write tables and charts
    ///
    /// With glibc, Ferroc (LD_PRELOAD of libferroc.so), mimalloc, jemalloc and tcmalloc (Debian's
    /// libraries, where installed); writes tables and charts to target/ferroc-suite/.
    #[command(verbatim_doc_comment)]
    Suite(SuiteOptions),
    /// Run the tests of ferroc-base, -arena, -heap and -global under ThreadSanitizer
    ///
    /// Needs a nightly toolchain (skipped without one); builds in target/tsan; fails on reports
    /// in Ferroc's code.
    #[command(verbatim_doc_comment)]
    Tsan,
    /// Run the criterion benches of benches/ and print a markdown table of the medians
    ///
    /// `rust_workloads` runs once per process allocator (ferroc, system, mimalloc, jemalloc).
    /// The table has one row per case and a column per allocator, with ratios to Ferroc; it is
    /// also saved in target/criterion/ferroc-bench.md, beside criterion's HTML report
    /// (target/criterion/report/index.html).
    #[command(verbatim_doc_comment)]
    Bench(BenchOptions),
}

/// A positive integer option.
fn positive() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..)
}

/// The flags of `cargo xtask test-loom` (also taken by `test`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct LoomOptions {
    /// Loom's preemption bound (LOOM_MAX_PREEMPTIONS); default: the LOOM_MAX_PREEMPTIONS
    /// environment variable, else 2
    #[arg(long, value_name = "N", value_parser = positive())]
    pub preemptions: Option<u32>,
}

/// The flags of `cargo xtask test`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct TestOptions {
    /// Skip the fmt and clippy steps (local use only)
    #[arg(long)]
    pub skip_lints: bool,
    /// Skip the loom models (local use only)
    #[arg(long)]
    pub skip_loom: bool,
    /// Do not install missing packages first (`cargo xtask setup`)
    #[arg(long)]
    pub no_setup: bool,
    /// As for `test-loom`.
    #[command(flatten)]
    pub loom: LoomOptions,
}

/// The flags of `cargo xtask setup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct SetupOptions {
    /// Only print what is missing and the commands that would install it
    #[arg(long)]
    pub dry_run: bool,
}

/// The flags of `cargo xtask capi`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct CapiOptions {
    /// Install there instead of target/ferroc-capi
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<String>,
    /// Extra features of ferroc-capi (e.g. stat)
    #[arg(long, value_name = "LIST")]
    pub features: Option<String>,
}

/// The flags of `cargo xtask suite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct SuiteOptions {
    /// Repetitions per cell, whose median is kept (default 5; 1 with --quick)
    #[arg(long, value_name = "N", value_parser = positive())]
    pub reps: Option<u32>,
    /// Threads of the multi-threaded workloads (default: the machine's cores)
    #[arg(long, value_name = "N", value_parser = positive())]
    pub threads: Option<u32>,
    /// Small sizes, for a fast pass over the plumbing
    #[arg(long)]
    pub quick: bool,
    /// apt-get install the missing peer allocators and the chart font
    #[arg(long)]
    pub install: bool,
    /// Also copy the charts there (the README's are in assets/)
    #[arg(long, value_name = "DIR")]
    pub assets: Option<String>,
    /// Kill a run after this long (default 300; 60 with --quick)
    #[arg(long, value_name = "SECS", value_parser = positive())]
    pub timeout: Option<u32>,
    /// Only these allocators (glibc,ferroc,mimalloc,jemalloc,tcmalloc)
    #[arg(long = "alloc", value_name = "LIST")]
    pub allocators: Option<String>,
    /// Only the workloads whose name contains one of these
    #[arg(value_name = "WORKLOAD")]
    pub filters: Vec<String>,
}

/// The flags of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct BenchOptions {
    /// Shorter measurements (criterion's --warm-up-time 1 --measurement-time 2 --sample-size 10)
    #[arg(long)]
    pub quick: bool,
    /// Measure the process's CPU time (all threads, user and system) instead of wall time
    /// (FERROC_BENCH_CLOCK=cpu): steadier on a busy machine
    #[arg(long)]
    pub cpu_time: bool,
    /// Only the benchmarks whose `group/allocator/size` id matches a FILTER (criterion's regular
    /// expressions; several are joined with `|`)
    #[arg(value_name = "FILTER")]
    pub filters: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    use clap::error::ErrorKind;

    /// The command of `cargo xtask <line>`, or the kind of clap's error (help included).
    fn parse(line: &str) -> Result<Option<Command>, ErrorKind> {
        let args = std::iter::once("xtask").chain(line.split_whitespace());
        Cli::try_parse_from(args)
            .map(|cli| cli.command)
            .map_err(|e| e.kind())
    }

    fn command(line: &str) -> Command {
        match parse(line) {
            Ok(Some(command)) => command,
            other => panic!("`{line}` parsed as {other:?}"),
        }
    }

    #[test]
    fn declaration() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(
            command("test-loom"),
            Command::TestLoom(LoomOptions::default())
        );
        assert_eq!(command("test"), Command::Test(TestOptions::default()));
        assert_eq!(command("tsan"), Command::Tsan);
        assert_eq!(
            command("setup --dry-run"),
            Command::Setup(SetupOptions { dry_run: true })
        );
        for help in ["help", "--help", "-h", "test --help", "help suite"] {
            assert_eq!(parse(help), Err(ErrorKind::DisplayHelp), "{help}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "tset",
            "tsan x",
            "test-loom --preemptions",
            "test-loom --preemptions 0",
            "test-loom --preemptions x",
            "test-loom --skip-loom",
            "test --skip-loom=yes",
            "test extra",
            "suite --reps 0",
            "suite --assets",
            "suite --fast",
            "suite --quick=1",
            "bench --quick=1",
            "bench --slow",
        ] {
            let kind = parse(bad).expect_err(bad);
            assert_ne!(kind, ErrorKind::DisplayHelp, "{bad}");
        }
    }

    #[test]
    fn flags() {
        let loom = |n| LoomOptions {
            preemptions: Some(n),
        };
        assert_eq!(
            command("test-loom --preemptions 3"),
            Command::TestLoom(loom(3))
        );
        assert_eq!(
            command("test-loom --preemptions=4"),
            Command::TestLoom(loom(4))
        );
        assert_eq!(
            command("test --skip-loom --skip-lints --no-setup --preemptions 1"),
            Command::Test(TestOptions {
                skip_lints: true,
                skip_loom: true,
                no_setup: true,
                loom: loom(1),
            })
        );
        assert_eq!(
            command("capi --prefix /opt/f --features=stat"),
            Command::Capi(CapiOptions {
                prefix: Some("/opt/f".to_owned()),
                features: Some("stat".to_owned()),
            })
        );
        assert_eq!(command("suite"), Command::Suite(SuiteOptions::default()));
        assert_eq!(
            command(
                "suite --quick --reps=3 --threads 8 larson --install churn --assets assets \
                 --alloc glibc,ferroc --timeout 9"
            ),
            Command::Suite(SuiteOptions {
                reps: Some(3),
                threads: Some(8),
                quick: true,
                install: true,
                assets: Some("assets".to_owned()),
                timeout: Some(9),
                allocators: Some("glibc,ferroc".to_owned()),
                filters: vec!["larson".to_owned(), "churn".to_owned()],
            })
        );
        assert_eq!(command("bench"), Command::Bench(BenchOptions::default()));
        assert_eq!(
            command("bench pair --quick batch_10k --cpu-time"),
            Command::Bench(BenchOptions {
                quick: true,
                cpu_time: true,
                filters: vec!["pair".to_owned(), "batch_10k".to_owned()],
            })
        );
    }
}
