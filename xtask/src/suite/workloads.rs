//! The workload programs of `benches/workloads/` and the arguments the suite runs them with.
//!
//! Each program is a C file compiled with `cc -O2 -pthread` and run as
//! `<program> <threads> <args...>`. It prints `checksum: <hex>` (and, for some, `rss_kib: N`,
//! its resident memory at the end) on standard output.

/// One workload: a program and its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// The name in tables and charts (and for filtering).
    pub name: &'static str,
    /// The C file's stem in `benches/workloads/`.
    pub program: &'static str,
    /// The arguments after the thread count, for a full run.
    pub args: &'static [&'static str],
    /// The same, for `--quick`.
    pub quick: &'static [&'static str],
    /// One line on what it measures.
    pub about: &'static str,
}

/// Every workload, in the order run. Sized so that a full run takes about 1 s with the fastest
/// allocator and at most about 10 s with the slowest on an idle 2-core machine, and a quick one
/// well under a second.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "churn",
        program: "churn",
        args: &["100000", "20000000"],
        quick: &["100000", "1000000"],
        about: "one thread replaces random blocks of a 100,000-block live set of 16-1024 B (cfrac-like)",
    },
    Workload {
        name: "larson",
        program: "larson",
        args: &["10000", "800", "50000"],
        quick: &["10000", "20", "50000"],
        about: "threads replace random blocks of 10,000-block regions that move to another thread each round",
    },
    Workload {
        name: "xmalloc",
        program: "xmalloc",
        args: &["32000000"],
        quick: &["800000"],
        about: "producer threads allocate, consumer threads free (batches of 256)",
    },
    Workload {
        name: "mstress",
        program: "mstress",
        args: &["20000", "1000", "20000"],
        quick: &["20000", "20", "20000"],
        about: "new threads every round work on blocks left by exited threads",
    },
    Workload {
        name: "cache-scratch",
        program: "cache",
        args: &["scratch", "1000", "200000"],
        quick: &["scratch", "1000", "10000"],
        about: "passive false sharing: threads free a neighbour-allocated block, then write small blocks hard",
    },
    Workload {
        name: "cache-thrash",
        program: "cache",
        args: &["thrash", "1000", "200000"],
        quick: &["thrash", "1000", "10000"],
        about: "active false sharing: threads allocate small blocks and write them hard",
    },
    Workload {
        name: "realloc",
        program: "realloc",
        args: &["5000000", "100"],
        quick: &["100000", "4"],
        about: "string builders growing by realloc to 256 B-256 KiB, vectors doubling to 1-17 MiB",
    },
    Workload {
        name: "huge",
        program: "huge",
        args: &["400"],
        quick: &["8"],
        about: "blocks of 1-64 MiB allocated, written page by page, freed",
    },
    Workload {
        name: "peak-fall",
        program: "peakfall",
        args: &["512", "20000000", "16384"],
        quick: &["128", "500000", "16384"],
        about: "512 MiB live at the peak, then all but 1 block in 16,384 freed, then work on 4 MiB",
    },
];

/// The distinct programs to compile.
pub fn programs() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = WORKLOADS.iter().map(|w| w.program).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The workloads whose name contains one of `filters` (all of them when there is none).
pub fn select(filters: &[String]) -> Vec<Workload> {
    WORKLOADS
        .iter()
        .filter(|w| filters.is_empty() || filters.iter().any(|f| w.name.contains(f.as_str())))
        .copied()
        .collect()
}

/// What a workload printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The `checksum:` value, as printed.
    pub checksum: String,
    /// The `rss_kib:` value, for the programs that print one.
    pub end_rss_kib: Option<u64>,
}

/// Reads a workload's standard output: exactly one `checksum: <hex>` line, and at most one
/// `rss_kib: <n>` line; other lines are ignored.
pub fn parse_output(stdout: &str) -> Result<Output, String> {
    let mut checksum = None;
    let mut rss = None;
    for line in stdout.lines() {
        if let Some(value) = line.strip_prefix("checksum:") {
            let value = value.trim();
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("bad checksum line `{line}`"));
            }
            if checksum.replace(value.to_ascii_lowercase()).is_some() {
                return Err("more than one checksum line".to_owned());
            }
        } else if let Some(value) = line.strip_prefix("rss_kib:") {
            let kib = value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("bad rss line `{line}`"))?;
            if rss.replace(kib).is_some() {
                return Err("more than one rss_kib line".to_owned());
            }
        }
    }
    let checksum = checksum.ok_or("no checksum line in the output")?;
    Ok(Output {
        checksum,
        end_rss_kib: rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_outputs() {
        assert_eq!(
            parse_output("checksum: 00FF12\n"),
            Ok(Output {
                checksum: "00ff12".to_owned(),
                end_rss_kib: None
            })
        );
        assert_eq!(
            parse_output("rss_kib: 1234\nnoise\nchecksum: abc\n"),
            Ok(Output {
                checksum: "abc".to_owned(),
                end_rss_kib: Some(1234)
            })
        );
        assert!(parse_output("").is_err());
        assert!(parse_output("checksum: \n").is_err());
        assert!(parse_output("checksum: xyz\n").is_err());
        assert!(parse_output("checksum: 1\nchecksum: 1\n").is_err());
        assert!(parse_output("checksum: 1\nrss_kib: -3\n").is_err());
    }

    #[test]
    fn selects_by_name() {
        assert_eq!(select(&[]).len(), WORKLOADS.len());
        let names: Vec<_> = select(&["cache".to_owned()])
            .iter()
            .map(|w| w.name)
            .collect();
        assert_eq!(names, ["cache-scratch", "cache-thrash"]);
        assert!(select(&["nothing".to_owned()]).is_empty());
        assert_eq!(programs().len(), WORKLOADS.len() - 1);
    }
}
