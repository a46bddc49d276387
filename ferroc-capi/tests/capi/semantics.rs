//! The C semantics of the override (tests/c/semantics.c, one check per test), under
//! `LD_PRELOAD=libferroc.so`; a few also with the static override library linked in.

use crate::support::{Lang, Link, Program, assert_success, compile, stdout};

fn program(link: Link) -> Program {
    let name = match link {
        Link::Preload => "semantics-preload",
        _ => "semantics-static",
    };
    compile(name, Lang::C, &["semantics.c"], link, &["-rdynamic"])
}

fn check(name: &str) {
    check_with(&program(Link::Preload), name);
}

/// Runs one check. Those that free foreign pointers test the `ignore` policy of
/// `FERROC_INVALID_FREE` (the default aborts, as glibc does: see options.rs).
fn check_with(prog: &Program, name: &str) {
    let out = prog
        .command()
        .env("FERROC_INVALID_FREE", "ignore")
        .arg(name)
        .output()
        .expect("the program starts");
    assert_success(name, &out);
    assert!(stdout(&out).contains(&format!("{name} ok")));
}

#[test]
fn malloc_zero_is_unique_and_freeable() {
    check("malloc0");
}

#[test]
fn free_null_does_nothing() {
    check("free_null");
}

#[test]
fn malloc_usable_size_null_is_zero() {
    check("usable_null");
}

#[test]
fn failure_is_null_with_enomem() {
    check("enomem");
}

#[test]
fn free_never_changes_errno() {
    check("free_keeps_errno");
}

#[test]
fn calloc_is_zero_also_when_reused() {
    check("calloc_zero");
}

#[test]
fn realloc_keeps_contents_and_realloc_zero_frees() {
    check("realloc");
}

#[test]
fn posix_memalign_einval_enomem_and_untouched_output() {
    check("posix_memalign");
}

#[test]
fn aligned_alloc_and_memalign_every_power_of_two_to_256_mib() {
    check("aligned");
}

#[test]
fn valloc_and_pvalloc_are_page_aligned() {
    check("valloc_pvalloc");
}

#[test]
fn usable_size_is_at_least_the_request_and_writable() {
    check("usable_size");
}

#[test]
fn malloc_trim_collects_purges_and_says_so() {
    check("trim");
}

#[test]
fn foreign_pointers_do_not_corrupt_state() {
    check("foreign");
}

#[test]
fn glibc_internal_names_are_ferroc() {
    check("glibc_names");
}

#[test]
fn static_override_semantics() {
    let prog = program(Link::StaticOverride);
    for name in [
        "malloc0",
        "enomem",
        "free_keeps_errno",
        "realloc",
        "foreign",
    ] {
        check_with(&prog, name);
    }
}
