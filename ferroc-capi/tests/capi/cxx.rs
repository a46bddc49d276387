//! C++: every `operator new`/`delete` form lands in Ferroc (tests/c/cxx_new.cpp), linked with
//! `-lferroc` and under `LD_PRELOAD`; throwing `new` runs the new-handler and throws
//! `std::bad_alloc`.

use crate::support::{Lang, Link, compile, stdout};

const EXPECTED: &[&str] = &[
    "ok forms resolve to libferroc",
    "ok every form allocates from ferroc",
    "ok bad_alloc without a new-handler",
    "ok new-handler runs until there is none",
    "ok new-handler runs until the allocation succeeds",
];

fn run(name: &str, link: Link) {
    let prog = compile(name, Lang::Cxx, &["cxx_new.cpp"], link, &[]);
    let out = stdout(&prog.run_ok(&[]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, EXPECTED);
}

#[test]
fn cxx_operators_linked_with_libferroc() {
    run("cxx-new-shared", Link::Shared);
}

#[test]
fn cxx_operators_under_ld_preload() {
    run("cxx-new-preload", Link::Preload);
}
