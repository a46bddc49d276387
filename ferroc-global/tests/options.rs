//! The runtime options of an instance, from the code (`config!(..; options = ..)`,
//! `set_options`, `set_option`) and from the environment (`FERROC_*`), including bad values.
//!
//! The environment must be set before an instance starts, so each test runs its body in a
//! child process: the test re-runs this binary on itself alone with the variables set (and
//! every other `FERROC_*` removed), then checks the child's exit and its standard error.
//! Each test has an instance of its own, started by the test's first allocation.

use std::{
    process::{Command, Output},
    time::Duration,
};

use ferroc_base::Mmap;
use ferroc_global::{GlobalInstance, InvalidFree, OptionError, OptionId, Options};

/// Set in the child: run the test's body.
const CHILD: &str = "FERROC_OPTIONS_TEST_CHILD";

const MIB: usize = 1 << 20;

/// Runs test `name` of this binary in a child with `env` (and no other `FERROC_*`); returns
/// its output after checking it succeeded.
fn run_child(name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    for id in OptionId::ALL {
        cmd.env_remove(id.env().to_str().unwrap());
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("the test binary runs");
    assert!(
        out.status.success(),
        "child {name} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The child ran exactly that test (a name that matches nothing would pass silently).
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
    out
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Allocates and frees one small block: the instance starts.
fn touch(a: &impl GlobalInstance) {
    let layout = core::alloc::Layout::new::<[u64; 4]>();
    let p = a.allocate(layout).unwrap();
    // SAFETY: just allocated with `layout`, freed once.
    unsafe { a.deallocate(p, layout) };
}

/// A huge block of `size` bytes, written through, and freed: its slabs go back to the arenas.
fn huge_round_trip(a: &impl GlobalInstance, size: usize) -> usize {
    let layout = core::alloc::Layout::from_size_align(size, 64).unwrap();
    let p = a.allocate(layout).unwrap();
    // SAFETY: the block holds `size` writable bytes.
    unsafe { p.as_ptr().write_bytes(0x5a, size) };
    let before = a.arenas().stats().committed;
    // SAFETY: just allocated with `layout`, freed once.
    unsafe { a.deallocate(p, layout) };
    before
}

ferroc_global::config!(
    EnvWins: Mmap = Mmap;
    options = Options { purge_delay_ms: 0, eager_commit: false, ..Options::DEFAULT }
);

#[test]
fn the_environment_sets_every_option_and_wins_over_the_code() {
    if !in_child() {
        let out = run_child(
            "the_environment_sets_every_option_and_wins_over_the_code",
            &[
                ("FERROC_PURGE_DELAY", "-1"),
                ("FERROC_VERBOSE", "yes"),
                ("FERROC_SHOW_STATS", "off"),
                ("FERROC_LARGE_PAGES", "ON"),
                ("FERROC_EAGER_COMMIT", "true"),
                ("FERROC_RESERVE", "64MiB"),
                ("FERROC_INVALID_FREE", "ignore"),
            ],
        );
        // FERROC_VERBOSE: the table, one line per option, and no warning.
        let err = stderr(&out);
        for id in OptionId::ALL {
            let line = format!("ferroc: option {:<15} = ", id.name());
            assert_eq!(err.matches(&line).count(), 1, "{err}");
        }
        assert!(err.contains("= never (FERROC_PURGE_DELAY)"), "{err}");
        assert!(err.contains("= 67108864 bytes (FERROC_RESERVE)"), "{err}");
        assert!(err.contains("= ignore (FERROC_INVALID_FREE)"), "{err}");
        assert!(!err.contains("warning"), "{err}");
        return;
    }
    // Before the start, `options` already says what the start will put in force.
    assert_eq!(EnvWins.options().purge_delay_ms, -1);
    touch(&EnvWins);
    let o = EnvWins.options();
    assert_eq!(
        o,
        Options {
            purge_delay_ms: -1,
            verbose: true,
            show_stats: false,
            large_pages: true,
            eager_commit: true,
            reserve: 64 * MIB,
            invalid_free: InvalidFree::Ignore,
        }
    );
    // Large pages reach the base (`Mmap`'s process-wide setting) before the first arena.
    assert!(Mmap::large_pages());
    let arenas = EnvWins.arenas();
    assert_eq!(arenas.purge_delay(), ferroc_arena::NEVER_PURGE);
    assert!(arenas.eager_commit());
    let s = arenas.stats();
    assert!(s.reserved >= 64 * MIB, "{s:?}");
    assert_eq!(s.committed, s.reserved, "eager commit: {s:?}");
    assert_eq!(EnvWins.option(OptionId::Reserve), (64 * MIB) as i64);
}

ferroc_global::config!(
    BadValues: Mmap = Mmap;
    options = Options { purge_delay_ms: 7, ..Options::DEFAULT }
);

#[test]
fn bad_values_warn_once_each_and_keep_the_value() {
    let bad = [
        ("FERROC_PURGE_DELAY", "soon"),
        ("FERROC_VERBOSE", "maybe"),
        ("FERROC_SHOW_STATS", "2"),
        ("FERROC_LARGE_PAGES", "huge"),
        ("FERROC_EAGER_COMMIT", "-"),
        ("FERROC_RESERVE", "1.5GiB"),
        ("FERROC_INVALID_FREE", "explode"),
    ];
    if !in_child() {
        let out = run_child("bad_values_warn_once_each_and_keep_the_value", &bad);
        let err = stderr(&out);
        for (var, value) in bad {
            let line = format!("ferroc: warning: {var}=\"{value}\" is not a valid value");
            assert_eq!(err.matches(&line).count(), 1, "{line} in:\n{err}");
        }
        assert_eq!(err.lines().count(), bad.len(), "{err}");
        return;
    }
    touch(&BadValues);
    touch(&BadValues);
    assert_eq!(
        BadValues.options(),
        Options {
            purge_delay_ms: 7,
            ..Options::DEFAULT
        }
    );
    assert_eq!(BadValues.arenas().purge_delay(), 7);
}

ferroc_global::config!(
    FromCode: Mmap = Mmap;
    options = Options {
        purge_delay_ms: 0,
        eager_commit: true,
        reserve: 8 << 20,
        invalid_free: InvalidFree::Warn,
        ..Options::DEFAULT
    }
);

ferroc_global::config!(SetBeforeStart: Mmap = Mmap);

#[test]
fn options_from_the_code_and_at_run_time() {
    if !in_child() {
        let out = run_child("options_from_the_code_and_at_run_time", &[]);
        assert!(!stderr(&out).contains("ferroc"), "{}", stderr(&out));
        return;
    }
    assert_eq!(FromCode.options().reserve, 8 << 20);
    touch(&FromCode);
    let arenas = FromCode.arenas();
    assert_eq!(arenas.purge_delay(), 0);
    assert!(arenas.eager_commit());
    assert!(arenas.stats().reserved >= 8 << 20);
    assert_eq!(FromCode.options().invalid_free, InvalidFree::Warn);
    // After the start: the options as a whole and the start-up ones are refused...
    assert_eq!(
        FromCode.set_options(Options::DEFAULT),
        Err(OptionError::Started)
    );
    for id in [
        OptionId::LargePages,
        OptionId::EagerCommit,
        OptionId::Reserve,
    ] {
        assert_eq!(FromCode.set_option(id, 0), Err(OptionError::Started));
    }
    // ... the run-time ones take effect.
    FromCode.set_option(OptionId::PurgeDelay, 40).unwrap();
    assert_eq!(arenas.purge_delay(), 40);
    FromCode.set_option(OptionId::PurgeDelay, -3).unwrap();
    assert_eq!(arenas.purge_delay(), u64::MAX);
    assert_eq!(FromCode.option(OptionId::PurgeDelay), -3);
    FromCode.set_option(OptionId::InvalidFree, 2).unwrap();
    assert_eq!(FromCode.options().invalid_free, InvalidFree::Ignore);
    assert_eq!(
        FromCode.set_option(OptionId::InvalidFree, 5),
        Err(OptionError::Invalid)
    );
    FromCode.set_option(OptionId::ShowStats, 1).unwrap();
    FromCode.set_option(OptionId::ShowStats, 0).unwrap();
    assert!(!FromCode.options().show_stats);

    // Before the first allocation, `set_options` gives an instance its options.
    SetBeforeStart
        .set_options(Options {
            purge_delay_ms: 123,
            eager_commit: true,
            ..Options::DEFAULT
        })
        .unwrap();
    SetBeforeStart
        .set_option(OptionId::Reserve, 4 << 20)
        .unwrap();
    touch(&SetBeforeStart);
    assert_eq!(SetBeforeStart.arenas().purge_delay(), 123);
    let s = SetBeforeStart.arenas().stats();
    assert!(s.reserved >= 4 << 20 && s.committed == s.reserved, "{s:?}");
}

ferroc_global::config!(PurgeNow: Mmap = Mmap);

/// A purge test: in the parent, runs test `name` in a child with `FERROC_PURGE_DELAY=delay`;
/// in the child, starts `a`, frees a 32 MiB huge block through it, and gives `check` what was
/// committed before the free.
fn purge_test<A: GlobalInstance>(name: &str, delay: &str, a: &A, check: impl FnOnce(&A, usize)) {
    if !in_child() {
        run_child(name, &[("FERROC_PURGE_DELAY", delay)]);
        return;
    }
    touch(a);
    let before = huge_round_trip(a, 32 * MIB);
    check(a, before);
}

#[test]
fn purge_delay_zero_gives_memory_back_at_once() {
    let name = "purge_delay_zero_gives_memory_back_at_once";
    purge_test(name, "0", &PurgeNow, |a, before| {
        let after = a.arenas().stats().committed;
        assert!(before >= 32 * MIB, "{before}");
        assert!(after + 32 * MIB <= before, "{before} -> {after}");
    });
}

ferroc_global::config!(PurgeNever: Mmap = Mmap);

#[test]
fn negative_purge_delay_never_purges() {
    let name = "negative_purge_delay_never_purges";
    purge_test(name, "-1", &PurgeNever, |a, before| {
        std::thread::sleep(Duration::from_millis(50));
        // Releases and purges by time long after the free: nothing is due, ever.
        huge_round_trip(a, 8 * MIB);
        a.collect(false);
        let s = a.arenas().stats();
        assert!(s.committed >= before, "{before} -> {s:?}");
        assert!(s.pending_purge * (4 * MIB) >= 32 * MIB, "{s:?}");
        // An explicit trim still gives it back.
        a.collect(true);
        assert!(a.arenas().stats().committed + 32 * MIB <= before);
    });
}

ferroc_global::config!(
    Single: Mmap = Mmap;
    thread_exit = unsafe none;
    options = Options { purge_delay_ms: 0, ..Options::DEFAULT }
);

#[test]
fn the_single_instance_starts_on_its_first_allocation() {
    if !in_child() {
        let out = run_child(
            "the_single_instance_starts_on_its_first_allocation",
            &[("FERROC_EAGER_COMMIT", "1"), ("FERROC_VERBOSE", "1")],
        );
        assert!(
            stderr(&out).contains("= true (FERROC_EAGER_COMMIT)"),
            "{}",
            stderr(&out)
        );
        return;
    }
    // Only this thread ever uses `Single` (the promise of `unsafe none`).
    assert_eq!(Single.set_option(OptionId::EagerCommit, 0), Ok(()));
    touch(&Single);
    let o = Single.options();
    assert!(o.eager_commit && o.verbose, "the environment wins: {o:?}");
    assert_eq!(o.purge_delay_ms, 0);
    let s = Single.arenas().stats();
    assert_eq!(s.committed, s.reserved);
    assert_eq!(
        Single.set_options(Options::DEFAULT),
        Err(OptionError::Started)
    );
}

#[test]
fn empty_variables_count_as_unset() {
    ferroc_global::config!(Empty: Mmap = Mmap);
    if !in_child() {
        let out = run_child(
            "empty_variables_count_as_unset",
            &[("FERROC_PURGE_DELAY", ""), ("FERROC_RESERVE", "  ")],
        );
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
        return;
    }
    touch(&Empty);
    assert_eq!(Empty.options(), Options::DEFAULT);
}
