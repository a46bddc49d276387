//! `cargo xtask suite`: the workload programs of `benches/workloads/` run with each allocator.
//!
//! 1. Builds `libferroc.so` ([`crate::capi`]) and compiles the workloads (`cc -O2 -pthread`)
//!    into `target/ferroc-suite/bin/`.
//! 2. Finds the allocators: glibc (no preload), Ferroc, and Debian's `libmimalloc.so.2`,
//!    `libjemalloc.so.2` and `libtcmalloc_minimal.so.4` where installed (`--install` installs
//!    them with `apt-get`, through `sudo` when not root; a missing one is skipped with a
//!    message).
//! 3. For each workload, runs every allocator once per repetition, the allocators in turn
//!    (their order rotating with the repetition), with a progress line per run. A run's wall
//!    time and peak RSS (`wait4`) are kept; a crash, non-zero exit, timeout or checksum other
//!    than glibc's fails the cell.
//! 4. Writes `target/ferroc-suite/results.md` (the tables, also printed), `results.json`, and
//!    the charts `time.{svg,png}` and `memory.{svg,png}`; `--assets DIR` copies the charts there.
//!
//! The command fails if any of Ferroc's cells failed.

mod chart;
mod measure;
mod report;
mod stats;
mod workloads;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cli::SuiteOptions;
use crate::{capi, run, setup, workspace};
use report::{Cell, Results, Sample};
use workloads::Workload;

/// An allocator under test.
#[derive(Debug, Clone)]
struct Allocator {
    name: &'static str,
    /// The library to preload; `None` for the C library's own malloc.
    lib: Option<PathBuf>,
}

/// The peers from Debian's packages: name, library file, package.
const PEERS: &[(&str, &str, &str)] = &[
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    (
        "tcmalloc",
        "libtcmalloc_minimal.so.4",
        "libtcmalloc-minimal4",
    ),
];
const FONT_PACKAGE: &str = "fonts-dejavu-core";

/// Runs the suite.
pub fn run(options: &SuiteOptions) -> Result<(), String> {
    let started = Instant::now();
    let root = workspace::root();
    let out = workspace::target_dir(&root).join("ferroc-suite");
    let bin = out.join("bin");
    fs::create_dir_all(&bin).map_err(|e| format!("cannot create {}: {e}", bin.display()))?;

    if options.install {
        install_missing()?;
    }
    println!("==> building libferroc.so");
    capi::run(None, None)?;
    let ferroc_lib = workspace::target_dir(&root).join("ferroc-capi/lib/libferroc.so");
    println!("==> compiling the workloads into {}", bin.display());
    compile_workloads(&root.join("benches/workloads"), &bin)?;

    let allocators = find_allocators(ferroc_lib, options.allocators.as_deref())?;
    let selected = workloads::select(&options.filters);
    if selected.is_empty() {
        return Err(format!("no workload matches {:?}", options.filters));
    }
    let threads = match options.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(2, usize::from),
    };
    let reps = options.reps.unwrap_or(if options.quick { 1 } else { 5 }) as usize;
    let timeout = Duration::from_secs(u64::from(options.timeout.unwrap_or(if options.quick {
        60
    } else {
        300
    })));
    println!(
        "==> {} workloads x {} allocators x {reps} repetitions, {threads} threads{}",
        selected.len(),
        allocators.len(),
        if options.quick { ", quick sizes" } else { "" }
    );

    let total = selected.len() * allocators.len() * reps;
    let mut done = 0;
    let mut cells = Vec::new();
    for workload in &selected {
        let row = run_workload(
            workload,
            &bin,
            &allocators,
            threads,
            reps,
            timeout,
            options.quick,
            &mut done,
            total,
        )?;
        cells.push(row);
    }

    let results = Results {
        allocators: allocators.iter().map(|a| a.name.to_owned()).collect(),
        workloads: selected.iter().map(|w| w.name.to_owned()).collect(),
        cells,
        about: describe_run(&root, &selected, &allocators, threads, reps, options.quick),
        descriptions: selected
            .iter()
            .map(|w| {
                let args = if options.quick { w.quick } else { w.args };
                format!(
                    "{}: {} (`{} {threads} {}`)",
                    w.name,
                    w.about,
                    w.program,
                    args.join(" ")
                )
            })
            .collect(),
    };
    write_results(&results, &out, options.assets.as_deref().map(Path::new))?;
    println!(
        "suite: {} in {}",
        out.display(),
        run::duration(started.elapsed())
    );
    if results.reference_failed() {
        return Err("Ferroc failed at least one workload (see the table)".to_owned());
    }
    Ok(())
}

/// A successful run before its checksum is compared.
struct Finished {
    allocator: usize,
    checksum: String,
    sample: Sample,
}

#[allow(clippy::too_many_arguments)]
fn run_workload(
    workload: &Workload,
    bin: &Path,
    allocators: &[Allocator],
    threads: usize,
    reps: usize,
    timeout: Duration,
    quick: bool,
    done: &mut usize,
    total: usize,
) -> Result<Vec<Cell>, String> {
    let program = bin.join(workload.program);
    let mut args = vec![threads.to_string()];
    let sized = if quick { workload.quick } else { workload.args };
    args.extend(sized.iter().map(|s| (*s).to_owned()));
    let mut cells = vec![Cell::default(); allocators.len()];
    let mut finished: Vec<Finished> = Vec::new();
    // glibc's checksum, once known: what every other run must print.
    let mut expected: Option<String> = None;
    for rep in 0..reps {
        for k in 0..allocators.len() {
            let a = (rep + k) % allocators.len();
            let alloc = &allocators[a];
            *done += 1;
            let outcome = measure::run(&program, &args, alloc.lib.as_deref(), timeout)?;
            let parsed = match &outcome.failure {
                Some(f) => Err(f.clone()),
                None => workloads::parse_output(&outcome.stdout),
            };
            let verdict = match &parsed {
                Err(e) => format!("FAILED: {e}"),
                Ok(o) => match &expected {
                    Some(x) if *x != o.checksum => format!("WRONG CHECKSUM {}", o.checksum),
                    _ => "ok".to_owned(),
                },
            };
            println!(
                "[{:>4}/{total}] {:<14} rep {}/{reps}  {:<9} {:>8.3} s {:>8.1} MiB  {verdict}",
                *done,
                workload.name,
                rep + 1,
                alloc.name,
                outcome.wall.as_secs_f64(),
                outcome.max_rss_kib as f64 / 1024.0,
            );
            match parsed {
                Err(e) => {
                    let stderr = outcome.stderr.trim();
                    let detail = if stderr.is_empty() {
                        e
                    } else {
                        format!("{e}: {}", last_line(stderr))
                    };
                    cells[a].failures.push(format!("rep {}: {detail}", rep + 1));
                }
                Ok(o) => {
                    if alloc.lib.is_none() && expected.is_none() {
                        expected = Some(o.checksum.clone());
                    }
                    finished.push(Finished {
                        allocator: a,
                        checksum: o.checksum,
                        sample: Sample {
                            wall_s: outcome.wall.as_secs_f64(),
                            max_rss_kib: outcome.max_rss_kib,
                            end_rss_kib: o.end_rss_kib,
                        },
                    });
                }
            }
        }
    }
    // Without a glibc result, the checksum most runs agree on.
    let expected = expected.or_else(|| most_common(finished.iter().map(|f| f.checksum.as_str())));
    for f in finished {
        match &expected {
            Some(x) if *x != f.checksum => cells[f.allocator]
                .failures
                .push(format!("wrong checksum {} (expected {x})", f.checksum)),
            _ => cells[f.allocator].samples.push(f.sample),
        }
    }
    Ok(cells)
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text)
}

fn most_common<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for v in values {
        match counts.iter_mut().find(|(x, _)| *x == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(v, _)| v.to_owned())
}

/// Compiles every workload program with `$CC` (default `cc`).
fn compile_workloads(src: &Path, bin: &Path) -> Result<(), String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    for program in workloads::programs() {
        let mut cmd = Command::new(&cc);
        cmd.args(["-O2", "-g", "-pthread", "-Wall", "-Wextra"])
            // Every malloc and free must reach the allocator under test.
            .args([
                "-fno-builtin-malloc",
                "-fno-builtin-calloc",
                "-fno-builtin-realloc",
                "-fno-builtin-free",
            ])
            .arg("-o")
            .arg(bin.join(program))
            .arg(src.join(format!("{program}.c")));
        run::status(&mut cmd)?;
    }
    Ok(())
}

/// The multiarch library directories where Debian puts the peers.
fn library_dirs() -> Vec<PathBuf> {
    let arch = std::env::consts::ARCH;
    [
        format!("/usr/lib/{arch}-linux-gnu"),
        format!("/lib/{arch}-linux-gnu"),
        "/usr/lib64".to_owned(),
        "/usr/lib".to_owned(),
        "/usr/local/lib".to_owned(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

fn find_library(file: &str) -> Option<PathBuf> {
    library_dirs()
        .into_iter()
        .map(|d| d.join(file))
        .find(|p| p.is_file())
}

/// glibc, Ferroc and the installed peers, limited to `only` (a comma-separated list) if given.
fn find_allocators(ferroc: PathBuf, only: Option<&str>) -> Result<Vec<Allocator>, String> {
    let wanted: Option<Vec<&str>> = only.map(|l| l.split(',').map(str::trim).collect());
    let want = |name: &str| wanted.as_ref().is_none_or(|w| w.contains(&name));
    let mut found = Vec::new();
    if want("glibc") {
        found.push(Allocator {
            name: "glibc",
            lib: None,
        });
    }
    if want("ferroc") {
        found.push(Allocator {
            name: "ferroc",
            lib: Some(ferroc),
        });
    }
    for &(name, file, package) in PEERS {
        if !want(name) {
            continue;
        }
        match find_library(file) {
            Some(lib) => found.push(Allocator {
                name,
                lib: Some(lib),
            }),
            None => println!(
                "suite: skipping {name}: {file} not found (install Debian's {package}, or run \
                 with --install)"
            ),
        }
    }
    if let Some(w) = &wanted {
        let known = ["glibc", "ferroc", "mimalloc", "jemalloc", "tcmalloc"];
        if let Some(bad) = w.iter().find(|n| !known.contains(n)) {
            return Err(format!(
                "unknown allocator `{bad}` (known: {})",
                known.join(", ")
            ));
        }
    }
    if found.is_empty() {
        return Err("no allocator to run".to_owned());
    }
    Ok(found)
}

/// `apt-get install`s the peers and the chart font that are missing.
fn install_missing() -> Result<(), String> {
    let mut packages: Vec<&str> = PEERS
        .iter()
        .filter(|(_, file, _)| find_library(file).is_none())
        .map(|&(_, _, package)| package)
        .collect();
    if chart::load_font().is_err() {
        packages.push(FONT_PACKAGE);
    }
    if packages.is_empty() {
        println!("==> --install: every peer allocator and the chart font are installed");
        return Ok(());
    }
    println!("==> --install: {}", packages.join(" "));
    setup::apt_install(&packages)
}

/// The lines at the top of `results.md`: how to reproduce the run and where it ran.
fn describe_run(
    root: &Path,
    selected: &[Workload],
    allocators: &[Allocator],
    threads: usize,
    reps: usize,
    quick: bool,
) -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut about = vec![
        (
            "command".to_owned(),
            format!("`cargo xtask {}`", args.join(" ")),
        ),
        (
            "date".to_owned(),
            output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        ),
        ("machine".to_owned(), machine()),
        (
            "runs".to_owned(),
            format!(
                "{threads} threads, median of {reps} repetition{}{}; workloads: {}",
                if reps == 1 { "" } else { "s" },
                if quick { ", quick sizes" } else { "" },
                selected
                    .iter()
                    .map(|w| w.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ];
    let mut versions = vec![format!(
        "ferroc {}",
        output_of(
            "git",
            &[
                "-C",
                &root.to_string_lossy(),
                "rev-parse",
                "--short",
                "HEAD"
            ]
        )
    )];
    versions.push(format!(
        "glibc {}",
        output_of("getconf", &["GNU_LIBC_VERSION"]).replace("glibc ", "")
    ));
    for &(name, _, package) in PEERS {
        if allocators.iter().any(|a| a.name == name) {
            versions.push(format!(
                "{name} {}",
                output_of("dpkg-query", &["-W", "-f", "${Version}", package])
            ));
        }
    }
    about.push(("versions".to_owned(), versions.join(", ")));
    about
}

/// The first line a command prints, or `?`.
fn output_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_owned())
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

/// CPU model, cores, memory, kernel and OS.
fn machine() -> String {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or(String::new(), |v| v.trim_matches('"').to_owned());
    format!(
        "{cpu}, {cores} cores, {:.0} GiB, Linux {kernel}, {os}",
        mem_kib as f64 / (1024.0 * 1024.0)
    )
}

fn write_results(results: &Results, out: &Path, assets: Option<&Path>) -> Result<(), String> {
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let md = results.markdown();
    println!();
    print!("{md}");
    println!();
    write("results.md", &md)?;
    write("results.json", &results.json())?;
    match chart::load_font() {
        Ok(_) => {
            chart::write(&results.time_chart(), out, "time")?;
            chart::write(&results.memory_chart(), out, "memory")?;
            println!(
                "suite: charts in {}/{{time,memory}}.{{svg,png}}",
                out.display()
            );
        }
        Err(e) => {
            println!("suite: no charts: {e}");
            if assets.is_some() {
                return Err("--assets needs the charts".to_owned());
            }
        }
    }
    if let Some(dir) = assets {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for file in ["time.png", "memory.png", "time.svg", "memory.svg"] {
            fs::copy(out.join(file), dir.join(file))
                .map_err(|e| format!("cannot copy {file} to {}: {e}", dir.display()))?;
        }
        println!("suite: charts copied to {}", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_common_checksum() {
        assert_eq!(
            most_common(["a", "b", "b", "c"].into_iter()),
            Some("b".to_owned())
        );
        assert_eq!(most_common(["a"].into_iter()), Some("a".to_owned()));
        assert_eq!(most_common(std::iter::empty()), None);
    }

    #[test]
    fn peers_are_found_in_library_dirs() {
        assert!(find_library("no-such-library.so.0").is_none());
        let all = find_allocators(PathBuf::from("libferroc.so"), None).unwrap();
        assert_eq!(all[0].name, "glibc");
        assert!(all[0].lib.is_none());
        assert_eq!(all[1].name, "ferroc");
        let two = find_allocators(PathBuf::from("x"), Some("ferroc,glibc")).unwrap();
        assert_eq!(two.len(), 2);
        assert!(find_allocators(PathBuf::from("x"), Some("ptmalloc")).is_err());
    }
}
