//! `cargo xtask tsan`: the multi-threaded tests of Ferroc's lock-free crates under
//! ThreadSanitizer.
//!
//! Needs a nightly toolchain (`-Zsanitizer=thread`); without one it says so and succeeds. The
//! standard library is not rebuilt with the sanitizer (`-Zbuild-std` needs the `rust-src`
//! component and the network), so `-Cunsafe-allow-abi-mismatch=sanitizer` lets the
//! uninstrumented one link. Its atomics are then invisible to TSan, which reports races inside
//! `std` (channels, the test harness) that are not races: the command reads every report and
//! fails only on those where a frame of one of the racing accesses is Ferroc's own code (a
//! function of a `ferroc_*` crate). Builds go to `target/tsan`, reports to
//! `target/tsan/reports`.

use std::fs;
use std::process::Command;
use std::time::Instant;

use crate::{run, workspace};

/// The crates whose tests run: the lock-free layers and the thread-local heaps.
const CRATES: &[&str] = &[
    "ferroc-base",
    "ferroc-arena",
    "ferroc-heap",
    "ferroc-global",
];
const TOOLCHAIN: &str = "nightly";

/// Runs the tests under TSan and judges the reports.
pub fn run() -> Result<(), String> {
    let started = Instant::now();
    let Some(host) = nightly_host() else {
        println!(
            "tsan: no `{TOOLCHAIN}` toolchain installed (rustup toolchain install nightly); skipped"
        );
        return Ok(());
    };
    let root = workspace::root();
    let target = workspace::target_dir(&root).join("tsan");
    let reports = target.join("reports");
    let _ = fs::remove_dir_all(&reports);
    fs::create_dir_all(&reports)
        .map_err(|e| format!("cannot create {}: {e}", reports.display()))?;

    let mut cmd = Command::new("rustup");
    cmd.current_dir(&root)
        .args(["run", TOOLCHAIN, "cargo", "test"])
        .args(CRATES.iter().flat_map(|c| ["-p", c]))
        // Doc tests would need RUSTDOCFLAGS too and run no threads.
        .args(["--lib", "--tests", "--target", &host])
        .arg("--target-dir")
        .arg(&target);
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "CARGO_ENCODED_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "RUSTFLAGS",
        "-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer -Cdebuginfo=1",
    )
    .env(
        "TSAN_OPTIONS",
        format!(
            "halt_on_error=0 exitcode=0 report_signal_unsafe=0 log_path={}",
            reports.join("report").display()
        ),
    );
    println!("==> {}", run::display(&cmd));
    let tests = run::status(&mut cmd);

    let mut total = 0;
    let mut ours = Vec::new();
    let mut files: Vec<_> = fs::read_dir(&reports)
        .map_err(|e| format!("cannot read {}: {e}", reports.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for file in &files {
        let text = fs::read_to_string(file).unwrap_or_default();
        for report in split_reports(&text) {
            total += 1;
            if involves_ferroc(report) {
                ours.push((file.clone(), report.to_owned()));
            }
        }
    }
    for (file, report) in &ours {
        println!(
            "\n==> ThreadSanitizer report in Ferroc's code ({}):",
            file.display()
        );
        println!("{report}");
    }
    println!(
        "tsan: {} reports, {} in Ferroc's code, {} only in the uninstrumented std; reports in {} ({})",
        total,
        ours.len(),
        total - ours.len(),
        reports.display(),
        run::duration(started.elapsed())
    );
    tests?;
    if ours.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ThreadSanitizer reports involve Ferroc's code",
            ours.len()
        ))
    }
}

/// The host triple of the nightly toolchain, if it is installed.
fn nightly_host() -> Option<String> {
    let output = Command::new("rustup")
        .args(["run", TOOLCHAIN, "rustc", "-vV"])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
}

/// The reports of a TSan log: the text from each `WARNING: ThreadSanitizer:` line to the next
/// `SUMMARY:` line.
fn split_reports(log: &str) -> Vec<&str> {
    let mut reports = Vec::new();
    let mut rest = log;
    while let Some(start) = rest.find("WARNING: ThreadSanitizer:") {
        let from = &rest[start..];
        let end = from.find("\nSUMMARY:").map_or(from.len(), |i| {
            i + from[i + 1..].find('\n').map_or(from.len() - i, |j| j + 1)
        });
        reports.push(&from[..end]);
        rest = &from[end..];
    }
    reports
}

/// Whether one of the report's racing accesses is made by Ferroc's own code: in an access
/// section ("Read of size ...", "Previous write ...", ...), the innermost frame that is neither
/// the TSan runtime (interceptors such as `memcpy` or `free`) nor a `core` primitive
/// (`ptr::read`, atomics, `Cell`) is a function of a `ferroc_*` crate. A std function called
/// from Ferroc's tests (dropping an `Arc`, a channel) does not count, even when generic over a
/// Ferroc type; neither do the stacks of "Thread ... created at", "Location is ..." and
/// "Mutex ..." sections.
fn involves_ferroc(report: &str) -> bool {
    let mut section_open = false;
    let mut decided = true;
    for line in report.lines() {
        let trimmed = line.trim_start();
        if let Some(frame) = trimmed.strip_prefix('#') {
            if !section_open || decided {
                continue;
            }
            let function = frame_function(frame);
            if is_runtime_or_primitive(frame, function) {
                continue;
            }
            if function.trim_start_matches('<').starts_with("ferroc_") {
                return true;
            }
            decided = true;
        } else if !trimmed.is_empty() {
            section_open = !(trimmed.starts_with("Thread ")
                || trimmed.starts_with("Location is")
                || trimmed.starts_with("Mutex ")
                || trimmed.starts_with("WARNING:")
                || trimmed.starts_with("SUMMARY:"));
            decided = !section_open;
        }
    }
    false
}

/// The TSan runtime's frames and `core`'s primitives, which say nothing about whose code made
/// an access.
fn is_runtime_or_primitive(frame: &str, function: &str) -> bool {
    let f = function.trim_start_matches('<');
    frame.contains("compiler-rt")
        || !f.contains("::")
        || f.starts_with("core::")
        || f.starts_with('*')
        || f.starts_with('[')
        || f.starts_with('&')
}

/// The function of a frame line `N function file:line:col (module+0x...) (BuildId: ...)`
/// (after its `#`): without the module parts and the location.
fn frame_function(frame: &str) -> &str {
    let mut text = frame
        .split_once(' ')
        .map_or(frame, |(_, rest)| rest)
        .trim_end();
    while text.ends_with(')') {
        match text.rfind(" (") {
            Some(i) => text = text[..i].trim_end(),
            None => break,
        }
    }
    text.rsplit_once(' ').map_or(text, |(function, _)| function)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD_ONLY: &str = "\
==================
WARNING: ThreadSanitizer: data race (pid=1)
  Read of size 8 at 0x7 by main thread:
    #0 memcpy /llvm/sanitizer_common_interceptors.inc:117:5 (ferroc_heap-958d+0x7fa8e) (BuildId: b3)
    #1 <std::sync::mpmc::list::Channel<T>>::read /rustc/x/library/std/src/sync/mpmc/list.rs:381:38 (ferroc_heap-958d+0x1)

  Previous write of size 8 at 0x7 by thread T2:
    #0 <std::sync::mpmc::list::Channel<T>>::write /rustc/x/list.rs:274:28 (ferroc_heap-958d+0x1)
    #1 global_alloc::collections_and_threads /work/ferroc-global/tests/global_alloc.rs:28:14 (global_alloc-62+0x1)

  Location is heap block of size 9680 at 0x72 allocated by thread T1:
    #0 ferroc_global::Ferroc::allocate /work/ferroc-global/src/lib.rs:1:1 (x+0x1)

  Thread T2 'test' (tid=5, finished) created by main thread at:
    #0 pthread_create /llvm/tsan_interceptors_posix.cpp:1078:3 (x+0x1)
    #1 ferroc_heap::tests::spawn /work/ferroc-heap/src/lib.rs:1:1 (x+0x1)

SUMMARY: ThreadSanitizer: data race /rustc/x/list.rs:381:38 in read
==================
";

    #[test]
    fn splits_reports() {
        let log = format!("{STD_ONLY}noise\n{}", STD_ONLY.replace("pid=1", "pid=2"));
        let reports = split_reports(&log);
        assert_eq!(reports.len(), 2);
        assert!(reports[0].starts_with("WARNING: ThreadSanitizer: data race (pid=1)"));
        assert!(reports[0].trim_end().ends_with("in read"), "{}", reports[0]);
        assert!(reports[1].contains("pid=2"));
        assert!(split_reports("nothing here").is_empty());
    }

    #[test]
    fn judges_frames() {
        assert!(!involves_ferroc(STD_ONLY));
        // Ferroc's code making the access, under a core primitive.
        let ours = STD_ONLY.replace(
            "#0 <std::sync::mpmc::list::Channel<T>>::write",
            "#0 core::ptr::write::<u8> /rustc/x/ptr.rs:1:1 (x+0x1)\n    \
             #1 <ferroc_heap::shard::Shard>::free_remote",
        );
        assert!(involves_ferroc(&ours), "{ours}");
        // A std function generic over a Ferroc type, called from a Ferroc test: not ours.
        let generic = STD_ONLY.replace(
            "#0 <std::sync::mpmc::list::Channel<T>>::write",
            "#0 <alloc::sync::Arc<ferroc_base::X> as core::ops::drop::Drop>::drop /x.rs:1:1 (x+0x1)\n    \
             #1 ferroc_base::bitmap::tests::claims",
        );
        assert!(!involves_ferroc(&generic), "{generic}");
        assert_eq!(
            frame_function("3 <a::B as c::D>::f /x/y.rs:1:2 (m-1+0x2) (BuildId: 3)"),
            "<a::B as c::D>::f"
        );
        assert_eq!(frame_function("18 main <null> (bin+0x1)"), "main");
    }
}
