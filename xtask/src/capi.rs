//! `cargo xtask capi`: builds and lays out the C libraries.
//!
//! Cargo names the shared library after the crate (`libferroc_capi.so`); its soname is already
//! `libferroc.so` (ferroc-capi's build script), and this command copies it to that name. The
//! static libraries come from two builds: `libferroc.a` with the `fe_*` API only (no
//! override: linking it does not replace `malloc`), and `libferroc-override.a` with the
//! `override` feature, which does.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{run, workspace};

/// Builds everything into `prefix` (default `target/ferroc-capi`).
pub fn run(prefix: Option<&str>, features: Option<&str>) -> Result<(), String> {
    let root = workspace::root();
    let target = workspace::target_dir(&root);
    let prefix = prefix.map_or_else(|| target.join("ferroc-capi"), PathBuf::from);
    let extra = features.unwrap_or("");

    let cargo_build = |target_dir: &Path, override_: bool| -> Result<(), String> {
        let mut cmd = Command::new(workspace::cargo());
        cmd.current_dir(&root)
            .args(["build", "--release", "-p", "ferroc-capi"]);
        cmd.arg("--target-dir").arg(target_dir);
        if !override_ {
            cmd.arg("--no-default-features");
        }
        let mut feats: Vec<&str> = extra.split(',').filter(|f| !f.is_empty()).collect();
        if override_ {
            feats.push("override");
        }
        if !feats.is_empty() {
            cmd.arg("--features").arg(feats.join(","));
        }
        println!("==> {}", run::display(&cmd));
        run::status(&mut cmd)
    };
    let with_override = target.clone();
    let plain = target.join("capi-plain");
    cargo_build(&with_override, true)?;
    cargo_build(&plain, false)?;

    let lib = prefix.join("lib");
    let include = prefix.join("include");
    let pkgconfig = lib.join("pkgconfig");
    for dir in [&lib, &include, &pkgconfig] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let copy = |from: PathBuf, to: PathBuf| -> Result<(), String> {
        fs::copy(&from, &to)
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
    };
    copy(
        with_override.join("release/libferroc_capi.so"),
        lib.join("libferroc.so"),
    )?;
    copy(
        with_override.join("release/libferroc_capi.a"),
        lib.join("libferroc-override.a"),
    )?;
    copy(
        plain.join("release/libferroc_capi.a"),
        lib.join("libferroc.a"),
    )?;
    copy(
        root.join("ferroc-capi/include/ferroc.h"),
        include.join("ferroc.h"),
    )?;
    let template = fs::read_to_string(root.join("ferroc-capi/ferroc.pc.in"))
        .map_err(|e| format!("cannot read ferroc.pc.in: {e}"))?;
    let abs_prefix = fs::canonicalize(&prefix).unwrap_or(prefix.clone());
    let pc = template
        .replace("@PREFIX@", &abs_prefix.to_string_lossy())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    fs::write(pkgconfig.join("ferroc.pc"), pc)
        .map_err(|e| format!("cannot write ferroc.pc: {e}"))?;
    println!("capi: installed in {}", abs_prefix.display());
    println!(
        "  LD_PRELOAD={}/lib/libferroc.so <program>",
        abs_prefix.display()
    );
    println!(
        "  cc prog.c $(PKG_CONFIG_PATH={}/lib/pkgconfig pkg-config --cflags --libs ferroc)",
        abs_prefix.display()
    );
    Ok(())
}
