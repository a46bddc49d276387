//! The thread-local heap pointer: in the default build a small `malloc`/`free` reads it with
//! one `%fs:`-relative load (initial-exec TLS), with no `__tls_get_addr` call; the `dlopen`
//! build uses the general-dynamic model (and no static TLS), which `dlopen` needs.
//! (The instruction counts are measured by `benches/capi/callgrind.sh`.)

use std::{path::Path, process::Command};

use crate::support::{self, dlopen_so, libs, tool_output};

/// The disassembly of exported function `name` of `lib` (by its address and size, since
/// folded functions share code under several names).
fn disassemble(lib: &Path, name: &str) -> String {
    support::require("objdump", "binutils");
    let symbols = tool_output(
        Command::new("nm")
            .args(["-D", "-S", "--defined-only"])
            .arg(lib),
    );
    let (addr, size) = symbols
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 4 && f[3] == name).then(|| {
                (
                    u64::from_str_radix(f[0], 16).unwrap(),
                    u64::from_str_radix(f[1], 16).unwrap(),
                )
            })
        })
        .unwrap_or_else(|| panic!("{name} is not exported by {}", lib.display()));
    let out = tool_output(
        Command::new("objdump")
            .args(["-d", "--no-show-raw-insn"])
            .arg(format!("--start-address={addr:#x}"))
            .arg(format!("--stop-address={:#x}", addr + size))
            .arg(lib),
    );
    let code: Vec<&str> = out.lines().filter(|l| l.contains(":\t")).collect();
    assert!(!code.is_empty(), "no code for {name}:\n{out}");
    code.join("\n")
}

/// The functions a small allocation and its free go through.
const HOT: &[&str] = &[
    "malloc",
    "free",
    "fe_malloc",
    "fe_free",
    "_Znwm",
    "_Znam",
    "_ZdlPv",
    "_ZdlPvm",
    "_ZdaPv",
    "_ZdaPvm",
];

#[test]
fn small_malloc_and_free_read_the_heap_with_initial_exec_tls() {
    let so = libs().so();
    for name in HOT {
        let code = disassemble(&so, name);
        assert!(
            !code.contains("__tls_get_addr"),
            "{name} calls __tls_get_addr:\n{code}"
        );
        assert!(
            code.contains("%fs:"),
            "{name} does not read its thread-local heap %fs:-relative:\n{code}"
        );
    }
    for name in ["calloc", "realloc", "posix_memalign", "aligned_alloc"] {
        let code = disassemble(&so, name);
        assert!(!code.contains("__tls_get_addr"), "{name}:\n{code}");
    }
}

fn dynamic_flags(lib: &Path) -> String {
    support::require("readelf", "binutils");
    tool_output(Command::new("readelf").arg("-d").arg(lib))
        .lines()
        .filter(|l| l.contains("(FLAGS)"))
        .collect()
}

#[test]
fn default_build_uses_static_tls_and_the_dlopen_build_does_not() {
    assert!(dynamic_flags(&libs().so()).contains("STATIC_TLS"));
    let dl = dlopen_so();
    assert!(!dynamic_flags(dl).contains("STATIC_TLS"));
    // The general-dynamic model: the heap pointer is found through __tls_get_addr.
    assert!(disassemble(dl, "fe_malloc").contains("__tls_get_addr"));
}
