//! Processes and threads: fork from a multi-threaded program, a multi-threaded stress program
//! (under `LD_PRELOAD` and linked with the library), allocation before constructors and after
//! `main`, and `dlopen` of the general-dynamic build.

use crate::support::{Lang, Link, compile, dlopen_so, stdout};

#[test]
fn fork_from_a_multithreaded_program() {
    let prog = compile("fork", Lang::C, &["fork.c"], Link::Preload, &[]);
    assert!(stdout(&prog.run_ok(&[])).contains("fork ok"));
}

/// 16 threads per round, 8 rounds (threads re-created each), 20,000 operations per thread.
const STRESS_ARGS: &[&str] = &["16", "8", "20000"];

#[test]
fn stress_under_ld_preload() {
    let prog = compile("stress-preload", Lang::C, &["stress.c"], Link::Preload, &[]);
    assert!(stdout(&prog.run_ok(STRESS_ARGS)).contains("stress ok"));
}

#[test]
fn stress_linked_with_static_override() {
    let prog = compile(
        "stress-static",
        Lang::C,
        &["stress.c"],
        Link::StaticOverride,
        &[],
    );
    assert!(stdout(&prog.run_ok(STRESS_ARGS)).contains("stress ok"));
}

#[test]
fn stress_linked_with_shared_library() {
    let prog = compile("stress-shared", Lang::C, &["stress.c"], Link::Shared, &[]);
    assert!(stdout(&prog.run_ok(&["24", "4", "10000"])).contains("stress ok"));
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

fn lifecycle(name: &str, link: Link) {
    let prog = compile(name, Lang::Cxx, &["lifecycle.cpp"], link, &[]);
    let out = stdout(&prog.run_ok(&[]));
    let mut lines: Vec<&str> = out.lines().collect();
    // The 32 threads each report once.
    let threads = lines
        .iter()
        .filter(|l| **l == "thread_local destructor (thread) ok")
        .count();
    assert_eq!(threads, 32, "{out}");
    lines.dedup();
    assert_eq!(lines, LIFECYCLE, "{out}");
}

#[test]
fn first_calls_before_constructors_and_last_after_main_preload() {
    lifecycle("lifecycle-preload", Link::Preload);
}

#[test]
fn first_calls_before_constructors_and_last_after_main_static() {
    lifecycle("lifecycle-static", Link::StaticOverride);
}

#[test]
fn dlopen_feature_library_works_when_dlopened() {
    let prog = compile("dlopen", Lang::C, &["dlopen.c"], Link::None, &[]);
    let so = dlopen_so().to_str().unwrap().to_owned();
    assert!(stdout(&prog.run_ok(&[&so])).contains("dlopen ok"));
}
