//! `cargo xtask test-loom`: every loom model of the workspace.
//!
//! A crate has loom models when one of its source files declares `mod loom_tests` (compiled
//! under `#[cfg(all(test, ferroc_loom))]`, with test functions named `loom_*`); such crates are
//! found by [`workspace::loom_members`], so a new one needs no change here. They are all run by
//! one cargo invocation:
//!
//! ```text
//! RUSTFLAGS="$RUSTFLAGS --cfg ferroc_loom" LOOM_MAX_PREEMPTIONS=2 \
//!   cargo test --release --lib -p <crate>... --target-dir target/loom \
//!   -- loom_ --nocapture --test-threads=1
//! ```
//!
//! The separate target directory keeps the `--cfg ferroc_loom` build from invalidating the
//! normal one. Each model is run through `ferroc_base::loom_model`, which prints
//! `loom model NAME: N iterations`; those lines are read from the child's (streamed) output and
//! added up into the closing summary. The run fails if cargo fails or if no model ran at all.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::{Command, Stdio};

use crate::{run, workspace};

/// The preemption bound when neither `--preemptions` nor `LOOM_MAX_PREEMPTIONS` is given.
pub const DEFAULT_PREEMPTIONS: u32 = 2;

/// What a successful loom run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// How many models ran.
    pub models: usize,
    /// How many interleavings they explored together.
    pub iterations: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.models == 1 { "" } else { "s" };
        write!(
            f,
            "{} model{s}, {} iterations",
            self.models, self.iterations
        )
    }
}

/// Runs every loom model; `preemptions` overrides `LOOM_MAX_PREEMPTIONS`.
pub fn run(preemptions: Option<u32>) -> Result<Summary, String> {
    let root = workspace::root();
    let crates = workspace::loom_members(&root)?;
    if crates.is_empty() {
        return Err("loom: no workspace crate declares `mod loom_tests`".to_owned());
    }
    let preemptions = match preemptions {
        Some(n) => n.to_string(),
        None => std::env::var("LOOM_MAX_PREEMPTIONS")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PREEMPTIONS.to_string()),
    };

    let mut cmd = Command::new(workspace::cargo());
    cmd.current_dir(&root)
        .args(["test", "--release", "--lib"])
        .env("LOOM_MAX_PREEMPTIONS", &preemptions);
    for member in &crates {
        cmd.args(["-p", &member.name]);
    }
    // Relative to the root (the child's directory) where it can be, for a readable header.
    let target_dir = workspace::target_dir(&root).join("loom");
    cmd.arg("--target-dir")
        .arg(target_dir.strip_prefix(&root).unwrap_or(&target_dir));
    cmd.args(["--", "loom_", "--nocapture", "--test-threads=1"]);
    if std::io::stdout().is_terminal() {
        // Our stdout is a pipe to the test binary; keep its colours for the person watching.
        cmd.arg("--color=always");
    }
    add_loom_cfg(&mut cmd);

    let names: Vec<&str> = crates.iter().map(|m| m.name.as_str()).collect();
    println!(
        "loom: models of {} with LOOM_MAX_PREEMPTIONS={preemptions}",
        names.join(", ")
    );
    println!("$ {}", run::display(&cmd));

    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", run::display(&cmd)))?;
    let mut summary = Summary::default();
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.map_err(|e| format!("cannot read the output of cargo test: {e}"))?;
        // The test's output is passed on as it comes, whatever its encoding.
        let _ = out.write_all(&line);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
        if let Some((_, iterations)) = parse_model_line(&String::from_utf8_lossy(&line)) {
            summary.models += 1;
            summary.iterations += iterations;
        }
    }
    drop(out);
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for cargo test: {e}"))?;
    if let Err(e) = run::check(&cmd, status) {
        println!("loom: FAILED after {summary}");
        return Err(e);
    }
    if summary.models == 0 {
        println!("loom: FAILED, no model ran");
        return Err(
            "loom: cargo test ran no loom model (no `loom model NAME: N iterations` line)"
                .to_owned(),
        );
    }
    println!("loom: {summary}, all passed");
    Ok(summary)
}

/// Adds `--cfg ferroc_loom` to the flags cargo gives rustc, keeping the caller's: to
/// `CARGO_ENCODED_RUSTFLAGS` when that is set (cargo then ignores `RUSTFLAGS`), else to
/// `RUSTFLAGS`.
fn add_loom_cfg(cmd: &mut Command) {
    const CFG: &str = "--cfg ferroc_loom";
    if let Some(encoded) = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        cmd.env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("{encoded}\u{1f}--cfg\u{1f}ferroc_loom"),
        );
        return;
    }
    let flags = match std::env::var("RUSTFLAGS") {
        Ok(old) if !old.trim().is_empty() => format!("{} {CFG}", old.trim()),
        _ => CFG.to_owned(),
    };
    cmd.env("RUSTFLAGS", flags);
}

/// The model name and iteration count of a `loom model NAME: N iterations` line. The test
/// harness may have written `test path::to::loom_x ... ` in front of it on the same line.
fn parse_model_line(line: &str) -> Option<(&str, u64)> {
    let (_, rest) = line.split_once("loom model ")?;
    let (head, _) = rest.split_once(" iterations")?;
    let (name, count) = head.rsplit_once(": ")?;
    Some((name, count.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lines() {
        assert_eq!(
            parse_model_line("loom model bitmap_claim_release: 5914 iterations"),
            Some(("bitmap_claim_release", 5914))
        );
        assert_eq!(
            parse_model_line(
                "test abandoned::loom_tests::loom_abandon_reclaim ... loom model abandon_reclaim: 12 iterations"
            ),
            Some(("abandon_reclaim", 12))
        );
        assert_eq!(parse_model_line("test result: ok. 1 passed"), None);
        assert_eq!(parse_model_line("loom model x: many iterations"), None);
    }

    #[test]
    fn summary_text() {
        let s = Summary {
            models: 2,
            iterations: 11828,
        };
        assert_eq!(
            format!("loom: {s}, all passed"),
            "loom: 2 models, 11828 iterations, all passed"
        );
    }
}
