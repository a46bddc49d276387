//! `fe_heap_visit_blocks`, `fe_heap_contains` and `fe_is_ferroc_pointer` from C
//! (tests/c/introspect.c), under `LD_PRELOAD=libferroc.so` and linked with `-lferroc` and with
//! the static override library.

use crate::support::{Lang, Link, compile, stdout};

fn run(name: &str, link: Link) {
    let out = compile(name, Lang::C, &["introspect.c"], link, &[]).run_ok(&[]);
    assert!(stdout(&out).contains("introspect ok"), "{}", stdout(&out));
}

#[test]
fn introspection_under_preload() {
    run("introspect-preload", Link::Preload);
}

#[test]
fn introspection_linked() {
    run("introspect-shared", Link::Shared);
}

#[test]
fn introspection_static_override() {
    run("introspect-static", Link::StaticOverride);
}
