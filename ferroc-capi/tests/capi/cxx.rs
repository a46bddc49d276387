//! C++: every `operator new`/`delete` form lands in Ferroc (tests/c/cxx_new.cpp), linked with
//! `-lferroc` and under `LD_PRELOAD`; throwing `new` runs the new-handler and throws
//! `std::bad_alloc`.

use crate::support::{Lang, Link, run_each};

const EXPECTED: &[&str] = &[
    "ok forms resolve to libferroc",
    "ok every form allocates from ferroc",
    "ok bad_alloc without a new-handler",
    "ok new-handler runs until there is none",
    "ok new-handler runs until the allocation succeeds",
];

#[test]
fn cxx_operators_linked_with_libferroc_and_under_ld_preload() {
    let programs = [
        ("cxx-new-shared", Link::Shared),
        ("cxx-new-preload", Link::Preload),
    ];
    run_each(Lang::Cxx, "cxx_new.cpp", &programs, |link, out| {
        assert_eq!(out.lines().collect::<Vec<_>>(), EXPECTED, "{link:?}");
    });
}
