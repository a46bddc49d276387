//! Detects a nightly compiler, so the `nightly` feature (core's `Allocator` trait) only takes
//! effect where it can compile; on stable the feature is accepted and does nothing.
use std::{env, process::Command};

fn main() {
    println!("cargo:rustc-check-cfg=cfg(ferroc_nightly)");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let nightly = Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| {
            let v = String::from_utf8_lossy(&o.stdout);
            v.contains("nightly") || v.contains("-dev")
        })
        .unwrap_or(false);
    if nightly {
        println!("cargo:rustc-cfg=ferroc_nightly");
    }
}
