//! `fe_heap_visit_blocks`, `fe_heap_contains` and `fe_is_ferroc_pointer` from C
//! (tests/c/introspect.c), under `LD_PRELOAD=libferroc.so` and linked with `-lferroc` and with
//! the static override library.

use crate::support::{Lang, Link, run_each};

/// introspect.c as each program is built: its name, and how it gets Ferroc.
const PROGRAMS: [(&str, Link); 3] = [
    ("introspect-preload", Link::Preload),
    ("introspect-shared", Link::Shared),
    ("introspect-static", Link::StaticOverride),
];

#[test]
fn introspection_under_preload_linked_and_static_override() {
    run_each(Lang::C, "introspect.c", &PROGRAMS, |link, out| {
        assert!(out.contains("introspect ok"), "{link:?}: {out}");
    });
}
