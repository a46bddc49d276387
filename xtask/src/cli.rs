//! The hand-written argument parser: a subcommand followed by its flags.

/// What `cargo xtask help` prints.
pub const USAGE: &str = "\
Ferroc's developer tasks.

Usage: cargo xtask <COMMAND> [OPTIONS]

Commands:
  test        The project test command (what CI runs), in order, stopping at the first failure:
                fmt       cargo fmt --all -- --check
                clippy    cargo clippy --workspace --all-targets --all-features -- -D warnings
                test      cargo test --workspace, then with --all-features
                loom      every loom model (as `test-loom`)
                features  the feature-combination builds listed in xtask/src/test.rs
  test-loom   Run every loom model of the workspace (crates with a `loom_tests` module) in
              release mode with `--cfg ferroc_loom`, in target/loom
  capi        Build the C libraries: target/ferroc-capi/lib/libferroc.so (replaces malloc and
              operator new), libferroc.a (the fe_* API), libferroc-override.a (both),
              include/ferroc.h and lib/pkgconfig/ferroc.pc
  suite       Run the workload programs of benches/workloads/ with glibc, Ferroc (LD_PRELOAD
              of libferroc.so), mimalloc, jemalloc and tcmalloc (Debian's libraries, where
              installed); write tables and charts to target/ferroc-suite/
  tsan        Run the tests of ferroc-base, -arena, -heap and -global under ThreadSanitizer
              (nightly toolchain; skipped without one), in target/tsan; fail on reports in
              Ferroc's code
  bench       Run the criterion benches of benches/ (`rust_workloads` once per process
              allocator: ferroc, system, mimalloc, jemalloc), then print a markdown table of
              medians per case and allocator with ratios to Ferroc (also saved in
              target/criterion/ferroc-bench.md) and where criterion's HTML report is
              (target/criterion/report/index.html)
  help        Print this message

Options of `test`:
  --skip-lints         Skip the fmt and clippy steps (local use only)
  --skip-loom          Skip the loom models (local use only)
  --preemptions <N>    As for `test-loom`

Options of `capi`:
  --prefix <DIR>       Install there instead of target/ferroc-capi
  --features <LIST>    Extra features of ferroc-capi (e.g. stat)

Options of `suite`:
  [WORKLOAD...]        Only the workloads whose name contains one of these
  --reps <N>           Repetitions per cell, whose median is kept (default 5; 1 with --quick)
  --threads <N>        Threads of the multi-threaded workloads (default: the machine's cores)
  --quick              Small sizes, for a fast pass over the plumbing
  --alloc <LIST>       Only these allocators (glibc,ferroc,mimalloc,jemalloc,tcmalloc)
  --timeout <SECS>     Kill a run after this long (default 300; 60 with --quick)
  --install            apt-get install the missing peer allocators and the chart font
  --assets <DIR>       Also copy the charts there (the README's are in assets/)

Options of `bench`:
  --quick              Shorter measurements (criterion's --warm-up-time 1
                       --measurement-time 2 --sample-size 10)
  --cpu-time           Measure the process's CPU time (all threads, user and system)
                       instead of wall time (FERROC_BENCH_CLOCK=cpu): steadier on a busy
                       machine
  [FILTER]...          Only the benchmarks whose `group/allocator/size` id matches a FILTER
                       (criterion's regular expressions; several are joined with `|`)

Options of `test-loom`:
  --preemptions <N>    Loom's preemption bound (LOOM_MAX_PREEMPTIONS); default: the
                       LOOM_MAX_PREEMPTIONS environment variable, else 2

Environment:
  LOOM_MAX_PREEMPTIONS  Loom's preemption bound when --preemptions is not given
  RUSTFLAGS             Kept; the loom run appends `--cfg ferroc_loom` to it
  CRITERION_HOME        Where criterion writes (`bench`); default target/criterion
  FERROC_BENCH_CLOCK    `cpu`: the benches measure process CPU time (`bench --cpu-time` sets it)
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `cargo xtask help` (also `-h`, `--help`, or no command at all).
    Help,
    /// `cargo xtask test-loom`.
    TestLoom {
        /// `--preemptions N`, if given.
        preemptions: Option<u32>,
    },
    /// `cargo xtask test`.
    Test(TestOptions),
    /// `cargo xtask suite`.
    Suite(SuiteOptions),
    /// `cargo xtask tsan`.
    Tsan,
    /// `cargo xtask capi`.
    Capi {
        /// `--prefix DIR`, if given.
        prefix: Option<String>,
        /// `--features LIST`, if given.
        features: Option<String>,
    },
    /// `cargo xtask bench`.
    Bench(BenchOptions),
}

/// The flags of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BenchOptions {
    /// `--quick`: criterion's shorter measurement settings.
    pub quick: bool,
    /// `--cpu-time`: the benches measure process CPU time rather than wall time.
    pub cpu_time: bool,
    /// The filters (arguments that are not flags), passed to criterion.
    pub filters: Vec<String>,
}

/// The flags of `cargo xtask test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOptions {
    /// `--skip-lints`: no fmt and clippy steps.
    pub skip_lints: bool,
    /// `--skip-loom`: no loom models.
    pub skip_loom: bool,
    /// `--preemptions N`, if given.
    pub preemptions: Option<u32>,
}

/// The flags of `cargo xtask suite`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteOptions {
    /// `--reps N`.
    pub reps: Option<u32>,
    /// `--threads N`.
    pub threads: Option<u32>,
    /// `--quick`.
    pub quick: bool,
    /// `--install`.
    pub install: bool,
    /// `--assets DIR`.
    pub assets: Option<String>,
    /// `--timeout SECS`.
    pub timeout: Option<u32>,
    /// `--alloc LIST`.
    pub allocators: Option<String>,
    /// The workload filters.
    pub filters: Vec<String>,
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((name, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    if rest.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    let mut flags = Flags::new(rest);
    let command = match name.as_str() {
        "help" | "-h" | "--help" => Command::Help,
        "test-loom" => {
            let mut preemptions = None;
            while let Some(flag) = flags.next_flag()? {
                match flag.as_str() {
                    "--preemptions" => preemptions = Some(flags.number(&flag)?),
                    _ => return Err(unknown_flag(name, &flag)),
                }
            }
            Command::TestLoom { preemptions }
        }
        "test" => {
            let mut options = TestOptions::default();
            while let Some(flag) = flags.next_flag()? {
                match flag.as_str() {
                    "--skip-lints" => options.skip_lints = true,
                    "--skip-loom" => options.skip_loom = true,
                    "--preemptions" => options.preemptions = Some(flags.number(&flag)?),
                    _ => return Err(unknown_flag(name, &flag)),
                }
            }
            Command::Test(options)
        }
        "suite" => {
            let mut options = SuiteOptions::default();
            while let Some(flag) = flags.next_flag()? {
                match flag.as_str() {
                    "--reps" => options.reps = Some(flags.number(&flag)?),
                    "--threads" => options.threads = Some(flags.number(&flag)?),
                    "--timeout" => options.timeout = Some(flags.number(&flag)?),
                    "--quick" => options.quick = true,
                    "--install" => options.install = true,
                    "--assets" => options.assets = Some(flags.value(&flag)?),
                    "--alloc" => options.allocators = Some(flags.value(&flag)?),
                    _ if !flag.starts_with('-') => options.filters.push(flag),
                    _ => return Err(unknown_flag(name, &flag)),
                }
            }
            Command::Suite(options)
        }
        "tsan" => {
            if let Some(flag) = flags.next_flag()? {
                return Err(unknown_flag(name, &flag));
            }
            Command::Tsan
        }
        "capi" => {
            let (mut prefix, mut features) = (None, None);
            while let Some(flag) = flags.next_flag()? {
                match flag.as_str() {
                    "--prefix" => prefix = Some(flags.value(&flag)?),
                    "--features" => features = Some(flags.value(&flag)?),
                    _ => return Err(unknown_flag(name, &flag)),
                }
            }
            Command::Capi { prefix, features }
        }
        "bench" => {
            let mut options = BenchOptions::default();
            while let Some(arg) = flags.next_flag()? {
                match arg.as_str() {
                    "--quick" => options.quick = true,
                    "--cpu-time" => options.cpu_time = true,
                    _ if !arg.starts_with('-') => options.filters.push(arg),
                    _ => return Err(unknown_flag(name, &arg)),
                }
            }
            Command::Bench(options)
        }
        other => return Err(format!("unknown command `{other}`")),
    };
    flags.finish()?;
    Ok(command)
}

fn unknown_flag(command: &str, flag: &str) -> String {
    format!("unknown option `{flag}` for `{command}`")
}

/// The flags after the subcommand; `--flag=value` is split into the flag and a pending value.
struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
    pending: Option<String>,
    last: String,
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String]) -> Self {
        Flags {
            args: args.iter(),
            pending: None,
            last: String::new(),
        }
    }

    /// The next flag, or `None` at the end; an error if the last one was given a value
    /// (`--flag=value`) it does not take.
    fn next_flag(&mut self) -> Result<Option<String>, String> {
        self.check_no_pending()?;
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        let flag = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => {
                self.pending = Some(value.to_owned());
                flag.to_owned()
            }
            _ => arg.clone(),
        };
        self.last.clone_from(&flag);
        Ok(Some(flag))
    }

    fn check_no_pending(&self) -> Result<(), String> {
        match self.pending {
            Some(_) => Err(format!("`{}` takes no value", self.last)),
            None => Ok(()),
        }
    }

    /// The value of `flag`: the part after `=`, or the next argument.
    fn value(&mut self, flag: &str) -> Result<String, String> {
        if let Some(value) = self.pending.take() {
            return Ok(value);
        }
        self.args
            .next()
            .cloned()
            .ok_or_else(|| format!("`{flag}` needs a value"))
    }

    /// The value of `flag` as a positive integer.
    fn number(&mut self, flag: &str) -> Result<u32, String> {
        let value = self.value(flag)?;
        match value.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("`{flag}` needs a positive integer, not `{value}`")),
        }
    }

    fn finish(self) -> Result<(), String> {
        self.check_no_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command, String> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&args)
    }

    #[test]
    fn commands() {
        assert_eq!(parse_str(""), Ok(Command::Help));
        assert_eq!(parse_str("help"), Ok(Command::Help));
        assert_eq!(parse_str("test --help"), Ok(Command::Help));
        assert_eq!(
            parse_str("test-loom"),
            Ok(Command::TestLoom { preemptions: None })
        );
        assert_eq!(parse_str("test"), Ok(Command::Test(TestOptions::default())));
        assert!(parse_str("tset").is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(
            parse_str("test-loom --preemptions 3"),
            Ok(Command::TestLoom {
                preemptions: Some(3)
            })
        );
        assert_eq!(
            parse_str("test-loom --preemptions=4"),
            Ok(Command::TestLoom {
                preemptions: Some(4)
            })
        );
        assert_eq!(
            parse_str("test --skip-loom --skip-lints --preemptions 1"),
            Ok(Command::Test(TestOptions {
                skip_lints: true,
                skip_loom: true,
                preemptions: Some(1),
            }))
        );
        assert!(parse_str("test-loom --preemptions").is_err());
        assert!(parse_str("test-loom --preemptions 0").is_err());
        assert!(parse_str("test-loom --preemptions x").is_err());
        assert!(parse_str("test-loom --skip-loom").is_err());
        assert!(parse_str("test --skip-loom=yes").is_err());
        assert!(parse_str("test extra").is_err());
    }

    #[test]
    fn suite_and_tsan() {
        assert_eq!(
            parse_str("suite"),
            Ok(Command::Suite(SuiteOptions::default()))
        );
        assert_eq!(
            parse_str(
                "suite --quick --reps=3 --threads 8 larson --install churn --assets assets --alloc glibc,ferroc --timeout 9"
            ),
            Ok(Command::Suite(SuiteOptions {
                reps: Some(3),
                threads: Some(8),
                quick: true,
                install: true,
                assets: Some("assets".to_owned()),
                timeout: Some(9),
                allocators: Some("glibc,ferroc".to_owned()),
                filters: vec!["larson".to_owned(), "churn".to_owned()],
            }))
        );
        assert!(parse_str("suite --reps 0").is_err());
        assert!(parse_str("suite --assets").is_err());
        assert!(parse_str("suite --fast").is_err());
        assert!(parse_str("suite --quick=1").is_err());
        assert_eq!(parse_str("tsan"), Ok(Command::Tsan));
        assert!(parse_str("tsan x").is_err());
    }

    #[test]
    fn bench_flags() {
        assert_eq!(
            parse_str("bench"),
            Ok(Command::Bench(BenchOptions::default()))
        );
        assert_eq!(
            parse_str("bench pair --quick batch_10k --cpu-time"),
            Ok(Command::Bench(BenchOptions {
                quick: true,
                cpu_time: true,
                filters: vec!["pair".to_owned(), "batch_10k".to_owned()],
            }))
        );
        assert!(parse_str("bench --quick=1").is_err());
        assert!(parse_str("bench --slow").is_err());
    }
}
