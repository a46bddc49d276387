//! The runtime options from C (tests/c/options.c, linked with libferroc.so): each option from
//! the environment, bad values, `fe_option_set`/`fe_option_get` and `mallopt` at run time,
//! the invalid-free policy (abort by default, as glibc), and the purge delay (0: memory back
//! at once; negative: never).

use std::process::Output;

use crate::support::{Lang, Link, Program, assert_success, compile, stdout};

fn program() -> Program {
    compile("options", Lang::C, &["options.c"], Link::Shared, &[])
}

/// Every option's variable.
const VARS: &[&str] = &[
    "FERROC_PURGE_DELAY",
    "FERROC_VERBOSE",
    "FERROC_SHOW_STATS",
    "FERROC_LARGE_PAGES",
    "FERROC_EAGER_COMMIT",
    "FERROC_RESERVE",
    "FERROC_INVALID_FREE",
];

/// Runs the program with `args` and exactly the `FERROC_*` variables of `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = program().command();
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("the program starts")
}

fn run_ok(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = run(args, env);
    assert_success(&format!("options {args:?} with {env:?}"), &out);
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The values `options get` prints, in option order.
fn values(out: &Output) -> Vec<i64> {
    stdout(out)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let (id, v) = line.split_once(' ').expect("`<id> <value>`");
            assert_eq!(id.parse::<usize>().unwrap(), i, "{line}");
            v.parse().unwrap()
        })
        .collect()
}

#[test]
fn defaults_without_the_environment() {
    let out = run_ok(&["get"], &[]);
    // purge 10 ms, verbose, show stats, large pages, eager commit off, no reserve, abort.
    assert_eq!(values(&out), [10, 0, 0, 0, 0, 0, 0]);
    assert_eq!(stderr(&out), "");
}

#[test]
fn every_option_from_the_environment() {
    let out = run_ok(
        &["get"],
        &[
            ("FERROC_PURGE_DELAY", "250"),
            ("FERROC_VERBOSE", "on"),
            ("FERROC_SHOW_STATS", "no"),
            ("FERROC_LARGE_PAGES", "1"),
            ("FERROC_EAGER_COMMIT", "YES"),
            ("FERROC_RESERVE", "64k"),
            ("FERROC_INVALID_FREE", "Warn"),
        ],
    );
    assert_eq!(values(&out), [250, 1, 0, 1, 1, 65536, 1]);
    // FERROC_VERBOSE prints the options in force, one line each.
    let err = stderr(&out);
    assert!(err.contains("= 250 ms (FERROC_PURGE_DELAY)"), "{err}");
    assert!(err.contains("= 65536 bytes (FERROC_RESERVE)"), "{err}");
    assert!(err.contains("= warn (FERROC_INVALID_FREE)"), "{err}");
    assert_eq!(err.matches("ferroc: option ").count(), VARS.len(), "{err}");

    let out = run_ok(
        &["get"],
        &[("FERROC_PURGE_DELAY", "-1"), ("FERROC_RESERVE", "1GiB")],
    );
    assert_eq!(values(&out), [-1, 0, 0, 0, 0, 1 << 30, 0]);
}

#[test]
fn bad_values_warn_and_keep_the_defaults() {
    let bad = [
        ("FERROC_PURGE_DELAY", "10s"),
        ("FERROC_VERBOSE", "loud"),
        ("FERROC_RESERVE", "lots"),
        ("FERROC_INVALID_FREE", "crash"),
    ];
    let out = run_ok(&["get"], &bad);
    assert_eq!(values(&out), [10, 0, 0, 0, 0, 0, 0]);
    let err = stderr(&out);
    for (var, value) in bad {
        let line = format!("ferroc: warning: {var}=\"{value}\" is not a valid value");
        assert_eq!(err.matches(&line).count(), 1, "{line} in:\n{err}");
    }
    assert_eq!(err.lines().count(), bad.len(), "{err}");
}

#[test]
fn option_set_get_and_mallopt_at_run_time() {
    let out = run_ok(&["set"], &[]);
    assert!(stdout(&out).contains("set ok"));
}

#[test]
fn invalid_free_aborts_by_default_like_glibc() {
    let out = run(&["invalid-free"], &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGABRT),
        "{err}"
    );
    assert!(err.contains("ferroc: free(): invalid pointer 0x"), "{err}");
    assert!(stdout(&out).contains("before") && !stdout(&out).contains("survived"));
}

#[test]
fn invalid_free_warns_or_ignores_when_asked() {
    let out = run_ok(&["invalid-free"], &[("FERROC_INVALID_FREE", "warn")]);
    assert!(stdout(&out).contains("survived"));
    assert_eq!(
        stderr(&out)
            .matches("ferroc: free(): invalid pointer 0x")
            .count(),
        1,
        "{}",
        stderr(&out)
    );
    let out = run_ok(&["invalid-free"], &[("FERROC_INVALID_FREE", "ignore")]);
    assert!(stdout(&out).contains("survived"));
    assert_eq!(stderr(&out), "");
}

#[test]
fn purge_delay_zero_gives_memory_back_at_once() {
    let out = run_ok(&["purge", "now"], &[("FERROC_PURGE_DELAY", "0")]);
    assert!(stdout(&out).contains("purge ok"));
    let out = run_ok(&["purge", "runtime"], &[]);
    assert!(stdout(&out).contains("purge ok"));
}

#[test]
fn negative_purge_delay_never_purges() {
    let out = run_ok(&["purge", "never"], &[("FERROC_PURGE_DELAY", "-1")]);
    assert!(stdout(&out).contains("purge ok"));
}

#[test]
fn show_stats_from_the_environment_and_at_run_time() {
    let stat = cfg!(feature = "stat");
    let out = run_ok(&["get"], &[("FERROC_SHOW_STATS", "1")]);
    assert_eq!(values(&out)[2], 1);
    assert_eq!(stderr(&out).contains("ferroc statistics"), stat);
    let out = run_ok(&["stats-at-exit"], &[]);
    assert_eq!(stderr(&out).contains("ferroc statistics"), stat);
    let out = run_ok(&["get"], &[]);
    assert!(!stderr(&out).contains("ferroc statistics"));
}

/// The AnonHugePages the `large-pages` mode printed, in KiB.
fn anon_huge_kib(out: &Output) -> i64 {
    let text = stdout(out);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("anon-huge "))
        .expect("an `anon-huge` line");
    line.trim().parse().expect("a number")
}

/// `FERROC_LARGE_PAGES=1` backs the arenas with transparent huge pages: a 64 MiB live heap of
/// small blocks shows most of itself as `AnonHugePages`, against (next to) none without the
/// option where the kernel only gives huge pages on request (`madvise`). Where the kernel
/// offers none (`never`, or no THP at all), the test says so and passes.
#[test]
fn large_pages_from_the_environment_back_the_heap_with_huge_pages() {
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if !(mode.contains("[always]") || mode.contains("[madvise]")) {
        eprintln!("large pages: skipped, the kernel offers no transparent huge pages ({mode:?})");
        return;
    }
    let on = anon_huge_kib(&run_ok(&["large-pages"], &[("FERROC_LARGE_PAGES", "1")]));
    let off = anon_huge_kib(&run_ok(&["large-pages"], &[("FERROC_LARGE_PAGES", "0")]));
    eprintln!(
        "AnonHugePages with a 64 MiB live heap: {on} KiB with large pages, {off} KiB without"
    );
    assert!(
        on >= 32 * 1024,
        "at least half the heap in huge pages: {on} KiB"
    );
    if mode.contains("[madvise]") {
        assert!(
            on >= off + 32 * 1024,
            "{on} KiB with against {off} KiB without"
        );
    }
}
