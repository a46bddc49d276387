//! `cargo xtask bench`: the criterion benches of `benches/`, and a table of their medians.
//!
//! 1. Every bench target in `benches/benches/` but `rust_workloads` runs once
//!    (`cargo bench -p ferroc-benches --bench NAME -- ARGS`): each compares its allocators in
//!    one process (e.g. `heap`: Ferroc's `Heap`, `Ferroc`, mimalloc and the system allocator).
//! 2. `rust_workloads` is built once per process allocator ([`WORKLOAD_ALLOCATORS`]); every
//!    build adds its line to the same criterion groups. The runs are interleaved benchmark by
//!    benchmark (`btreemap` with each allocator, then the next), so load that drifts during
//!    the run favours no allocator.
//! 3. The medians the runs just wrote (criterion's `<group>/<function>/<value>/new/`
//!    `estimates.json`) are printed as one markdown table per bench, with each allocator's
//!    ratio to Ferroc, and saved to `<criterion home>/ferroc-bench.md`; criterion's HTML report
//!    is at `<criterion home>/report/index.html`.
//!
//! Filters are criterion's (regular expressions matched against `group/function/value`);
//! several are joined with `|`. `--quick` passes shorter measurement settings; `--cpu-time`
//! sets `FERROC_BENCH_CLOCK=cpu`, which makes the benches measure the process's CPU time
//! instead of wall time (see `benches/benches/clock`).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::SystemTime,
};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{cli::BenchOptions, run, workspace};

/// The package holding the benches.
const PACKAGE: &str = "ferroc-benches";

/// The bench built once per process allocator.
const WORKLOADS: &str = "rust_workloads";

/// The features of `ferroc-benches` that choose the process allocator of [`WORKLOADS`], and
/// the name each run's lines carry. Ferroc first: its line is the one the others are compared
/// with.
pub const WORKLOAD_ALLOCATORS: &[(&str, &str)] = &[
    ("alloc-ferroc", "ferroc"),
    ("alloc-system", "system"),
    ("alloc-mimalloc", "mimalloc"),
    ("alloc-jemalloc", "jemalloc"),
];

/// Criterion's settings for `--quick` (criterion needs at least 10 samples).
const QUICK_ARGS: &[&str] = &[
    "--warm-up-time",
    "1",
    "--measurement-time",
    "2",
    "--sample-size",
    "10",
];

/// The lines each table's ratios are taken against, first found wins.
const BASELINES: &[&str] = &["ferroc-heap", "ferroc"];

/// Runs the benches and prints the tables.
pub fn run(options: &BenchOptions) -> Result<(), String> {
    let root = workspace::root();
    let home = criterion_home(&root);
    let mut tables = Vec::new();
    let mut failures = Vec::new();

    for bench in bench_targets(&root.join("benches/benches"))? {
        if bench == WORKLOADS {
            continue;
        }
        let before = snapshot(&home);
        let mut cmd = cargo_bench(&root, &home, &bench, None, options);
        cmd.args(criterion_args(options));
        println!("==> {}", run::display(&cmd));
        run::status(&mut cmd)?;
        tables.push((bench.clone(), results_since(&home, &before)?));
    }

    let before = snapshot(&home);
    failures.extend(run_workloads(&root, &home, options));
    tables.push((WORKLOADS.to_owned(), results_since(&home, &before)?));

    let mut report = String::new();
    for (bench, results) in &tables {
        if results.is_empty() {
            continue;
        }
        report.push_str(&table(bench, results, options.cpu_time));
        report.push('\n');
    }
    println!();
    print!("{report}");
    let saved = home.join("ferroc-bench.md");
    fs::write(&saved, &report).map_err(|e| format!("cannot write {}: {e}", saved.display()))?;
    println!("tables saved in {}", saved.display());
    println!(
        "criterion's HTML report: {}",
        home.join("report/index.html").display()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failed runs: {}", failures.join(", ")))
    }
}

/// Where criterion writes: `$CRITERION_HOME`, else `<target>/criterion` (as criterion does).
fn criterion_home(root: &Path) -> PathBuf {
    match std::env::var_os("CRITERION_HOME") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => workspace::target_dir(root).join("criterion"),
    }
}

/// The bench targets of `benches/`: `NAME.rs` files and `NAME/main.rs` directories, sorted.
fn bench_targets(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_owned();
            let is_file = path.extension().is_some_and(|ext| ext == "rs");
            let is_dir = path.join("main.rs").is_file();
            (is_file || is_dir).then_some(name)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo bench` of one bench target (with a feature), criterion's arguments after `--`.
fn cargo_bench(
    root: &Path,
    home: &Path,
    bench: &str,
    feature: Option<&str>,
    options: &BenchOptions,
) -> Command {
    let mut cmd = Command::new(workspace::cargo());
    cmd.current_dir(root)
        .env("CRITERION_HOME", home)
        .args(["bench", "-p", PACKAGE, "--bench", bench]);
    if options.cpu_time {
        cmd.env("FERROC_BENCH_CLOCK", "cpu");
    }
    if let Some(feature) = feature {
        cmd.args(["--features", feature]);
    }
    cmd.arg("--");
    cmd
}

/// Runs [`WORKLOADS`] with every allocator, interleaved: each benchmark (a group, such as
/// `btreemap`) runs with each allocator in turn before the next, so a machine whose load
/// drifts during the run does not favour the allocators that ran last. Returns the
/// allocators whose build or run failed.
fn run_workloads(root: &Path, home: &Path, options: &BenchOptions) -> Vec<&'static str> {
    let mut failures = Vec::new();
    // Each build lists its benchmarks (criterion's `--list`, with the filters).
    let mut listed: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for &(feature, name) in WORKLOAD_ALLOCATORS {
        let mut cmd = cargo_bench(root, home, WORKLOADS, Some(feature), options);
        cmd.arg("--list");
        if let Some(filter) = filter_regex(options) {
            cmd.arg(filter);
        }
        println!("==> [{name}] {}", run::display(&cmd));
        match cmd.stderr(Stdio::inherit()).output() {
            Ok(out) if out.status.success() => {
                let ids = listed_ids(&String::from_utf8_lossy(&out.stdout));
                listed.push((feature, name, ids));
            }
            Ok(out) => {
                eprintln!("bench: the {name} build failed ({})", out.status);
                failures.push(name);
            }
            Err(e) => {
                eprintln!("bench: cannot run cargo: {e}");
                failures.push(name);
            }
        }
    }
    for group in groups(listed.iter().flat_map(|(_, _, ids)| ids)) {
        for (feature, name, ids) in &listed {
            for id in ids.iter().filter(|id| group_of(id) == group) {
                let mut cmd = cargo_bench(root, home, WORKLOADS, Some(feature), options);
                if options.quick {
                    cmd.args(QUICK_ARGS);
                }
                cmd.arg(format!("^{}$", regex_escape(id)));
                println!("==> [{name}] {}", run::display(&cmd));
                if let Err(e) = run::status(&mut cmd) {
                    eprintln!("bench: the {name} run failed: {e}");
                    if !failures.contains(name) {
                        failures.push(name);
                    }
                }
            }
        }
    }
    failures
}

/// The benchmark ids in criterion's `--list` output (`<id>: benchmark` lines).
fn listed_ids(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.strip_suffix(": benchmark"))
        .map(str::to_owned)
        .collect()
}

/// A benchmark id's group: the part before the first `/`.
fn group_of(id: &str) -> &str {
    id.split_once('/').map_or(id, |(group, _)| group)
}

/// The groups of `ids`, in order of first appearance.
fn groups<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut groups = Vec::new();
    for id in ids {
        let group = group_of(id);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

/// `text` as a regular expression that matches it literally.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The arguments given to each criterion bench binary.
fn criterion_args(options: &BenchOptions) -> Vec<String> {
    let mut args = Vec::new();
    if options.quick {
        args.extend(QUICK_ARGS.iter().map(|a| a.to_string()));
    }
    args.extend(filter_regex(options));
    args
}

/// The filters as one criterion filter (a regular expression), if any.
fn filter_regex(options: &BenchOptions) -> Option<String> {
    (!options.filters.is_empty()).then(|| options.filters.join("|"))
}

/// One benchmark's median.
#[derive(Debug, Clone, PartialEq)]
struct Measurement {
    /// The criterion group: a row (with `value`).
    group: String,
    /// The function: a column (the allocator).
    function: String,
    /// The parameter (a size), empty if none.
    value: String,
    /// The median time of one iteration, in nanoseconds.
    median_ns: f64,
    /// When it was written (orders rows and columns as they ran).
    written: SystemTime,
}

/// When each benchmark's estimates under `home` were last written (by the `new/` directory).
type Snapshot = HashMap<PathBuf, SystemTime>;

/// Every `new/` directory under `home` (criterion's latest results) with the time its
/// `estimates.json` was written.
fn snapshot(home: &Path) -> Snapshot {
    let mut found = Snapshot::new();
    let mut dirs = vec![home.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                let estimates = path.join("estimates.json");
                if let Ok(written) = fs::metadata(&estimates).and_then(|m| m.modified()) {
                    found.insert(path, written);
                }
            } else if path.file_name().is_none_or(|n| n != "report") {
                dirs.push(path);
            }
        }
    }
    found
}

/// The benchmarks whose estimates were written since `before` was taken, in the order
/// written.
fn results_since(home: &Path, before: &Snapshot) -> Result<Vec<Measurement>, String> {
    let mut found = Vec::new();
    for (new, written) in snapshot(home) {
        if before.get(&new) != Some(&written) {
            found.push(read_result(&new, written)?);
        }
    }
    found.sort_by_key(|r| r.written);
    Ok(found)
}

/// The parts of criterion's `benchmark.json` read here.
#[derive(Deserialize)]
struct BenchmarkId {
    group_id: String,
    function_id: String,
    value_str: Option<String>,
}

/// The parts of criterion's `estimates.json` read here.
#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Reads and parses one JSON file.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The result in a `new/` directory.
fn read_result(new: &Path, written: SystemTime) -> Result<Measurement, String> {
    let id: BenchmarkId = read_json(&new.join("benchmark.json"))?;
    let estimates: Estimates = read_json(&new.join("estimates.json"))?;
    Ok(Measurement {
        group: id.group_id,
        function: id.function_id,
        value: id.value_str.unwrap_or_default(),
        median_ns: estimates.median.point_estimate,
        written,
    })
}

/// The markdown table of one bench: a row per case, a column per allocator, each cell the
/// median and its ratio to the baseline line (the fastest in bold).
fn table(bench: &str, results: &[Measurement], cpu_time: bool) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for r in results {
        let row = (r.group.clone(), r.value.clone());
        if !rows.contains(&row) {
            rows.push(row);
        }
        if !columns.contains(&r.function) {
            columns.push(r.function.clone());
        }
    }
    let baseline = BASELINES
        .iter()
        .find(|b| columns.iter().any(|c| c == *b))
        .map(|b| b.to_string());
    let clock = if cpu_time { "process CPU time" } else { "time" };
    let mut out = format!("### {bench}: median {clock} per iteration");
    if let Some(b) = &baseline {
        out.push_str(&format!(" (ratio to `{b}`)"));
    }
    out.push_str("\n\n| case |");
    for c in &columns {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str("\n|---|");
    for _ in &columns {
        out.push_str("---:|");
    }
    out.push('\n');
    for (group, value) in &rows {
        let median = |function: &str| {
            results
                .iter()
                .rev()
                .find(|r| &r.group == group && &r.value == value && r.function == function)
                .map(|r| r.median_ns)
        };
        let base = baseline.as_deref().and_then(median);
        let fastest = columns
            .iter()
            .filter_map(|c| median(c))
            .fold(f64::INFINITY, f64::min);
        let case = if value.is_empty() {
            group.clone()
        } else {
            format!("{group}/{value}")
        };
        out.push_str(&format!("| {case} |"));
        for c in &columns {
            let cell = match median(c) {
                None => "-".to_owned(),
                Some(t) => {
                    let time = if t == fastest {
                        format!("**{}**", time(t))
                    } else {
                        time(t)
                    };
                    match base {
                        Some(b) if b > 0.0 => format!("{time} ({:.2})", t / b),
                        _ => time,
                    }
                }
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

/// Nanoseconds with three significant digits and a unit.
fn time(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(group: &str, function: &str, value: &str, median_ns: f64) -> Measurement {
        Measurement {
            group: group.to_owned(),
            function: function.to_owned(),
            value: value.to_owned(),
            median_ns,
            written: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn times() {
        assert_eq!(time(9.876), "9.88 ns");
        assert_eq!(time(42.0), "42.0 ns");
        assert_eq!(time(123_400.0), "123 µs");
        assert_eq!(time(2.5e6), "2.50 ms");
        assert_eq!(time(3.2e9), "3.20 s");
    }

    #[test]
    fn tables() {
        let results = [
            result("pair", "ferroc-heap", "16", 10.0),
            result("pair", "system", "16", 20.0),
            result("pair", "ferroc-heap", "64", 12.0),
            result("pair", "system", "64", 6.0),
            result("batch", "system", "", 1000.0),
        ];
        let t = table("heap", &results, false);
        assert_eq!(
            t,
            "### heap: median time per iteration (ratio to `ferroc-heap`)\n\n\
             | case | ferroc-heap | system |\n\
             |---|---:|---:|\n\
             | pair/16 | **10.0 ns** (1.00) | 20.0 ns (2.00) |\n\
             | pair/64 | 12.0 ns (1.00) | **6.00 ns** (0.50) |\n\
             | batch | - | **1.00 µs** |\n"
        );
        assert!(table("w", &results[..1], true).starts_with("### w: median process CPU time"));
    }

    #[test]
    fn criterion_arguments() {
        let quick = BenchOptions {
            quick: true,
            cpu_time: false,
            filters: vec!["pair".to_owned(), "batch".to_owned()],
        };
        let args = criterion_args(&quick);
        assert_eq!(
            args[..6],
            QUICK_ARGS.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(args[6], "pair|batch");
        assert!(criterion_args(&BenchOptions::default()).is_empty());
    }

    #[test]
    fn criterion_lists() {
        let out = "Gnuplot not found\nbtreemap/ferroc: benchmark\nvec_growth/ferroc: benchmark\n";
        let ids = listed_ids(out);
        assert_eq!(ids, ["btreemap/ferroc", "vec_growth/ferroc"]);
        let more = ["btreemap/system".to_owned(), "pipeline".to_owned()];
        assert_eq!(
            groups(ids.iter().chain(&more)),
            ["btreemap", "vec_growth", "pipeline"]
        );
        assert_eq!(regex_escape("pair/x.y+1"), r"pair/x\.y\+1");
    }

    #[test]
    fn finds_the_benches() {
        let targets = bench_targets(&workspace::root().join("benches/benches")).unwrap();
        assert!(targets.iter().any(|t| t == "heap"), "{targets:?}");
        assert!(targets.iter().any(|t| t == WORKLOADS), "{targets:?}");
    }

    #[test]
    fn reads_criterion_output() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let new = dir.join("pair/ferroc/64/new");
        fs::create_dir_all(&new).unwrap();
        let empty = snapshot(&dir);
        assert!(empty.is_empty());
        fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"pair","function_id":"ferroc","value_str":"64","throughput":null,"full_id":"pair/ferroc/64","directory_name":"pair/ferroc/64","title":"pair/ferroc/64"}"#,
        )
        .unwrap();
        fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"point_estimate":8.0},"median":{"point_estimate":7.5}}"#,
        )
        .unwrap();
        let found = results_since(&dir, &empty).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].group.as_str(), found[0].function.as_str()),
            ("pair", "ferroc")
        );
        assert_eq!((found[0].value.as_str(), found[0].median_ns), ("64", 7.5));
        // Nothing written since a snapshot taken now.
        assert!(results_since(&dir, &snapshot(&dir)).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
