//! The header against the library: every exported `fe_*` function is declared and every
//! declaration is exported; C and C++ programs compile against the header and call all of it;
//! the override's C and C++ names are exported.

use std::{
    collections::BTreeSet,
    fs,
    process::{Command, Output},
};

use crate::support::{self, Lang, Link, compile, libs, tool_output};

/// The `fe_*` names declared in `ferroc.h` (comments left out).
fn declared() -> BTreeSet<String> {
    let text = fs::read_to_string(support::include_dir().join("ferroc.h")).unwrap();
    let mut code = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("closed comment") + start + 2;
        rest = &rest[end..];
    }
    code.push_str(rest);
    let mut names = BTreeSet::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while let Some(off) = code[i..].find("fe_") {
        let start = i + off;
        let mut end = start;
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let mut after = end;
        while after < bytes.len() && bytes[after] == b' ' {
            after += 1;
        }
        let whole_word = start == 0 || !is_ident(bytes[start - 1]);
        if whole_word && after < bytes.len() && bytes[after] == b'(' {
            names.insert(code[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// Defined (`defined`) or undefined symbols of an object, from `nm`.
fn nm(args: &[&str], file: &std::path::Path) -> BTreeSet<String> {
    support::require("nm", "binutils");
    tool_output(Command::new("nm").args(args).arg(file))
        .lines()
        .filter_map(|line| line.split_whitespace().last().map(str::to_owned))
        .map(|name| name.split('@').next().unwrap().to_owned())
        .collect()
}

fn exported() -> BTreeSet<String> {
    nm(&["-D", "--defined-only"], &libs().so())
}

#[test]
fn header_declares_exactly_the_exported_fe_functions() {
    let declared = declared();
    let exported: BTreeSet<String> = exported()
        .into_iter()
        .filter(|n| n.starts_with("fe_"))
        .collect();
    assert!(
        declared.len() >= 18,
        "too few declarations found: {declared:?}"
    );
    assert_eq!(
        declared, exported,
        "ferroc.h and libferroc.so disagree (left: declared, right: exported)"
    );
}

#[test]
fn api_program_calls_every_fe_function() {
    support::require("cc", "gcc");
    let obj = support::scratch().join("api.o");
    std::fs::create_dir_all(support::scratch()).unwrap();
    tool_output(
        Command::new("cc")
            .args(["-c", "-DEXPECTED_VERSION=0", "-D_GNU_SOURCE", "-o"])
            .arg(&obj)
            .arg(format!("-I{}", support::include_dir().display()))
            .arg(format!("-I{}", support::c_dir().display()))
            .arg(support::c_dir().join("api.c")),
    );
    let used: BTreeSet<String> = nm(&["-u"], &obj)
        .into_iter()
        .filter(|n| n.starts_with("fe_"))
        .collect();
    assert_eq!(used, declared(), "api.c must call every fe_* function");
}

fn version_define() -> String {
    let num = |s: &str| s.parse::<u32>().unwrap();
    let v = num(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
        + num(env!("CARGO_PKG_VERSION_MINOR")) * 100
        + num(env!("CARGO_PKG_VERSION_PATCH"));
    format!("-DEXPECTED_VERSION={v}")
}

/// Builds api.c against the header as `name` (`-pedantic`, the expected version, after
/// `flags`) and runs it: it must say `api ok`.
fn run_api(name: &str, lang: Lang, link: Link, flags: &[&str]) -> Output {
    let define = version_define();
    let flags: Vec<&str> = flags
        .iter()
        .copied()
        .chain(["-pedantic", &define])
        .collect();
    compile(name, lang, &["api.c"], link, &flags).run_prints(&[], "api ok")
}

#[test]
fn c_program_against_the_header_linked_with_libferroc_a() {
    let out = run_api("api-c-static", Lang::C, Link::StaticPlain, &[]);
    // fe_stats_print prints the statistics, or says they are not compiled in.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "stat") {
        assert!(stderr.contains("ferroc statistics"), "{stderr}");
    } else {
        assert!(stderr.contains("not compiled in"), "{stderr}");
    }
}

#[test]
fn cxx_program_against_the_header_linked_with_libferroc_so() {
    run_api("api-cxx-shared", Lang::Cxx, Link::Shared, &["-x", "c++"]);
}

/// The C names the override replaces.
const C_NAMES: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "malloc_trim",
    "cfree",
    "free_sized",
    "free_aligned_sized",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_free",
    "__libc_memalign",
    "__libc_valloc",
    "__libc_pvalloc",
    "__posix_memalign",
    "mallinfo2",
    "mallinfo",
    "malloc_stats",
    "malloc_info",
];

#[test]
fn override_exports_every_c_name() {
    let exported = exported();
    let missing: Vec<_> = C_NAMES.iter().filter(|n| !exported.contains(**n)).collect();
    assert!(missing.is_empty(), "libferroc.so lacks {missing:?}");
    let over = nm(
        &["--defined-only"],
        &libs().dir.join("libferroc-override.a"),
    );
    let missing: Vec<_> = C_NAMES.iter().filter(|n| !over.contains(**n)).collect();
    assert!(missing.is_empty(), "libferroc-override.a lacks {missing:?}");
    // libferroc.a replaces nothing.
    let plain = nm(&["--defined-only"], &libs().dir.join("libferroc.a"));
    let present: Vec<_> = C_NAMES.iter().filter(|n| plain.contains(**n)).collect();
    assert!(
        present.is_empty(),
        "libferroc.a must not define {present:?}"
    );
    assert!(plain.contains("fe_malloc"));
}

/// Every C++ allocation function, as `c++filt` names it.
const CXX_FORMS: &[&str] = &[
    "operator new(unsigned long)",
    "operator new(unsigned long, std::nothrow_t const&)",
    "operator new(unsigned long, std::align_val_t)",
    "operator new(unsigned long, std::align_val_t, std::nothrow_t const&)",
    "operator new[](unsigned long)",
    "operator new[](unsigned long, std::nothrow_t const&)",
    "operator new[](unsigned long, std::align_val_t)",
    "operator new[](unsigned long, std::align_val_t, std::nothrow_t const&)",
    "operator delete(void*)",
    "operator delete(void*, unsigned long)",
    "operator delete(void*, std::align_val_t)",
    "operator delete(void*, unsigned long, std::align_val_t)",
    "operator delete(void*, std::nothrow_t const&)",
    "operator delete(void*, std::align_val_t, std::nothrow_t const&)",
    "operator delete[](void*)",
    "operator delete[](void*, unsigned long)",
    "operator delete[](void*, std::align_val_t)",
    "operator delete[](void*, unsigned long, std::align_val_t)",
    "operator delete[](void*, std::nothrow_t const&)",
    "operator delete[](void*, std::align_val_t, std::nothrow_t const&)",
];

#[test]
fn override_exports_every_cxx_form_under_its_itanium_name() {
    support::require("c++filt", "binutils");
    let names: Vec<String> = exported()
        .into_iter()
        .filter(|n| n.starts_with("_Zn") || n.starts_with("_Zd"))
        .collect();
    let mut cmd = Command::new("c++filt");
    cmd.args(&names);
    let demangled: BTreeSet<String> = tool_output(&mut cmd).lines().map(str::to_owned).collect();
    let expected: BTreeSet<String> = CXX_FORMS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(demangled, expected);
}
