//! `cargo xtask test`: the project test command.
//!
//! It first installs what the tests need and the machine lacks ([`crate::setup`]; left out with
//! `--no-setup`, and the lint components are not asked for with `--skip-lints`). The steps then
//! run in order and the first failure stops the run with a message naming the step:
//!
//! 1. `fmt`: `cargo fmt --all -- --check`
//! 2. `clippy`: `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 3. `test`: `cargo test --workspace` (default features), then
//!    `cargo test --workspace --all-features`
//! 4. `loom`: every loom model ([`crate::loom`])
//! 5. one step per row of [`FEATURE_CHECKS`]
//!
//! Each step gets a header line; the run ends with a table of each step's outcome and time.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::SetupOptions;
use crate::cli::TestOptions;
use crate::{loom, run, setup, workspace};

/// Builds of feature combinations that `--workspace --all-features` never compiles: each row is
/// the arguments of one `cargo` run, in the order run. Add a row here when a crate gains a
/// feature (or a configuration) that must keep building on its own.
pub const FEATURE_CHECKS: &[&[&str]] = &[
    &["check", "-p", "ferroc-base", "--no-default-features"],
    &[
        "check",
        "-p",
        "ferroc-base",
        "--no-default-features",
        "--features",
        "base-static",
    ],
    &["check", "-p", "ferroc-arena"],
    &["check", "-p", "ferroc-heap", "--no-default-features"],
    &["check", "-p", "ferroc-global", "--no-default-features"],
    // The facade: no_std layers only; the bare-metal set (and its test); statistics; the C API.
    &["check", "-p", "ferroc", "--no-default-features"],
    &[
        "test",
        "-p",
        "ferroc",
        "--no-default-features",
        "--features",
        "base-static,global",
        "--test",
        "static_global",
    ],
    &["check", "-p", "ferroc", "--features", "stat"],
    &["check", "-p", "ferroc", "--features", "c"],
    &[
        "check",
        "-p",
        "ferroc",
        "--features",
        "finer-grained,allocator-api2",
    ],
    &["check", "-p", "ferroc-capi", "--features", "dlopen,stat"],
];

/// What a step does.
enum Action {
    /// `cargo` with these arguments, its output streamed.
    Cargo(Vec<&'static str>),
    /// The loom models.
    Loom,
}

struct Step {
    /// `fmt`, `clippy`, `test`, `loom` or `features`.
    name: &'static str,
    action: Action,
    /// Why the step is left out, if it is.
    skipped: Option<&'static str>,
}

impl Step {
    /// The step as a command line.
    fn command(&self) -> String {
        match &self.action {
            Action::Cargo(args) => format!("cargo {}", args.join(" ")),
            Action::Loom => "cargo xtask test-loom".to_owned(),
        }
    }
}

/// How a step ended.
enum Outcome {
    Passed { time: Duration, note: String },
    Failed { time: Duration },
    Skipped(&'static str),
    NotRun,
}

fn steps(options: &TestOptions) -> Vec<Step> {
    let lints = options.skip_lints.then_some("--skip-lints");
    let mut steps = vec![
        Step {
            name: "fmt",
            action: Action::Cargo(vec!["fmt", "--all", "--", "--check"]),
            skipped: lints,
        },
        Step {
            name: "clippy",
            action: Action::Cargo(vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]),
            skipped: lints,
        },
        // Default features first (what users get), then everything on (statistics, finer
        // classes, the README's examples).
        Step {
            name: "test",
            action: Action::Cargo(vec!["test", "--workspace"]),
            skipped: None,
        },
        Step {
            name: "test",
            action: Action::Cargo(vec!["test", "--workspace", "--all-features"]),
            skipped: None,
        },
        Step {
            name: "loom",
            action: Action::Loom,
            skipped: options.skip_loom.then_some("--skip-loom"),
        },
    ];
    for row in FEATURE_CHECKS {
        steps.push(Step {
            name: "features",
            action: Action::Cargo(row.to_vec()),
            skipped: None,
        });
    }
    steps
}

/// Runs every step; an error names the step that failed.
pub fn run(options: &TestOptions) -> Result<(), String> {
    if options.no_setup {
        println!("==> setup: skipped (--no-setup)");
    } else {
        println!("==> setup: what the tests need (cargo xtask setup)");
        setup::run(&SetupOptions::default(), !options.skip_lints)
            .map_err(|e| format!("setup: {e}"))?;
    }
    let root = workspace::root();
    let steps = steps(options);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(steps.len());
    let mut failure = None;
    let started = Instant::now();

    for (i, step) in steps.iter().enumerate() {
        if failure.is_some() {
            outcomes.push(Outcome::NotRun);
            continue;
        }
        if let Some(why) = step.skipped {
            outcomes.push(Outcome::Skipped(why));
            continue;
        }
        println!();
        println!(
            "==> [{}/{}] {}: {}",
            i + 1,
            steps.len(),
            step.name,
            step.command()
        );
        let start = Instant::now();
        let result = match &step.action {
            Action::Cargo(args) => {
                let mut cmd = Command::new(workspace::cargo());
                cmd.current_dir(&root).args(args);
                run::status(&mut cmd).map(|()| String::new())
            }
            Action::Loom => {
                loom::run(options.loom.preemptions).map(|summary| format!("({summary})"))
            }
        };
        let time = start.elapsed();
        match result {
            Ok(note) => outcomes.push(Outcome::Passed { time, note }),
            Err(e) => {
                outcomes.push(Outcome::Failed { time });
                failure = Some(format!("step {} `{}` failed: {e}", i + 1, step.name));
            }
        }
    }

    print_summary(&steps, &outcomes, started.elapsed());
    match failure {
        Some(message) => Err(message),
        None => Ok(()),
    }
}

fn print_summary(steps: &[Step], outcomes: &[Outcome], total: Duration) {
    println!();
    println!("==> summary");
    let mut passed = 0;
    let mut skipped = 0;
    for (step, outcome) in steps.iter().zip(outcomes) {
        let (status, time, note) = match outcome {
            Outcome::Passed { time, note } => {
                passed += 1;
                ("ok", run::duration(*time), note.clone())
            }
            Outcome::Failed { time } => ("FAILED", run::duration(*time), String::new()),
            Outcome::Skipped(why) => {
                skipped += 1;
                ("skipped", String::new(), format!("({why})"))
            }
            Outcome::NotRun => ("not run", String::new(), String::new()),
        };
        // The command names a feature-combination step; the others are known by name.
        let detail = match step.name {
            "features" => step.command(),
            _ => String::new(),
        };
        let line = format!("  {status:<8} {time:>8}  {:<8} {detail} {note}", step.name);
        println!("{}", line.trim_end());
    }
    let verdict = if passed + skipped == steps.len() {
        let mut verdict = format!("all {passed} steps passed");
        if skipped > 0 {
            verdict.push_str(&format!(", {skipped} skipped"));
        }
        verdict
    } else {
        "FAILED".to_owned()
    };
    println!("  total {}: {verdict}", run::duration(total));
}
