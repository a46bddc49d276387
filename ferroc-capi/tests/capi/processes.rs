//! Processes and threads: fork from a multi-threaded program, a multi-threaded stress program
//! (under `LD_PRELOAD` and linked with the library), allocation before constructors and after
//! `main`, and `dlopen` of the general-dynamic build.

use crate::support::{Lang, Link, compile, dlopen_so, run_each};

#[test]
fn fork_from_a_multithreaded_program() {
    compile("fork", Lang::C, &["fork.c"], Link::Preload, &[]).run_prints(&[], "fork ok");
}

/// 16 threads per round, 8 rounds (threads re-created each), 20,000 operations per thread.
const STRESS_ARGS: &[&str] = &["16", "8", "20000"];

/// stress.c built as `name` with `link`, run with `args` (threads, rounds, operations).
fn stress(name: &str, link: Link, args: &[&str]) {
    compile(name, Lang::C, &["stress.c"], link, &[]).run_prints(args, "stress ok");
}

#[test]
fn stress_under_ld_preload() {
    stress("stress-preload", Link::Preload, STRESS_ARGS);
}

#[test]
fn stress_linked_with_static_override() {
    stress("stress-static", Link::StaticOverride, STRESS_ARGS);
}

#[test]
fn stress_linked_with_shared_library() {
    stress("stress-shared", Link::Shared, &["24", "4", "10000"]);
}

/// What lifecycle.cpp reports, in order.
const LIFECYCLE: &[&str] = &[
    "preinit ok",
    "constructor ok",
    "thread_local destructor (thread) ok",
    "main ok",
    "thread_local destructor (main) ok",
    "atexit ok",
    "static destructor ok",
    "destructor function ok",
];

#[test]
fn first_calls_before_constructors_and_last_after_main_preload_and_static() {
    let programs = [
        ("lifecycle-preload", Link::Preload),
        ("lifecycle-static", Link::StaticOverride),
    ];
    run_each(Lang::Cxx, "lifecycle.cpp", &programs, |link, out| {
        let mut lines: Vec<&str> = out.lines().collect();
        // The 32 threads each report once.
        let threads = lines
            .iter()
            .filter(|l| **l == "thread_local destructor (thread) ok")
            .count();
        assert_eq!(threads, 32, "{link:?}: {out}");
        lines.dedup();
        assert_eq!(lines, LIFECYCLE, "{link:?}: {out}");
    });
}

#[test]
fn dlopen_feature_library_works_when_dlopened() {
    let prog = compile("dlopen", Lang::C, &["dlopen.c"], Link::None, &[]);
    let so = dlopen_so().to_str().unwrap().to_owned();
    prog.run_prints(&[&so], "dlopen ok");
}
