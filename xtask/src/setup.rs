//! `cargo xtask setup`: what `cargo xtask test` needs beyond Rust and a C compiler, installed on
//! a Debian machine (`cargo xtask test` runs it first, unless `--no-setup`).
//!
//! [`NEEDS`] is the one list of the commands the tests run and the Debian package of each. A
//! package is installed only when its command is missing from `PATH`; nothing present is
//! upgraded. As root, the missing packages are installed with
//! `apt-get update -q` and `apt-get install -q -y --no-install-recommends` (with
//! `DEBIAN_FRONTEND=noninteractive`); otherwise the command stops and prints the `sudo apt-get`
//! line to run. The `rustfmt` and `clippy` components (for the lint steps) are added with
//! `rustup component add` when missing.
//!
//! `--dry-run` only prints what is missing and the commands that would install it. The
//! environment variable [`PRETEND_MISSING`] names commands (or `rustfmt`, `clippy`) to treat as
//! missing, so the install path can be tried on a machine that has everything.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::cli::SetupOptions;
use crate::{run, workspace};

/// The commands the tests run, each with the Debian package that provides it.
pub const NEEDS: &[(&str, &str)] = &[
    // The C compiler and linker (also needed to build xtask itself, so `.ci/run` checks it).
    ("cc", "gcc"),
    // ferroc-capi's tests (ferroc-capi/tests/capi): C++ programs, symbol and disassembly
    // checks, and real programs run under LD_PRELOAD.
    ("c++", "g++"),
    ("nm", "binutils"),
    ("objdump", "binutils"),
    ("readelf", "binutils"),
    ("c++filt", "binutils"),
    ("python3", "python3"),
    ("perl", "perl"),
    ("sqlite3", "sqlite3"),
    ("git", "git"),
    ("lua5.4", "lua5.4"),
    ("redis-server", "redis-server"),
    ("redis-benchmark", "redis-tools"),
    ("redis-cli", "redis-tools"),
    // jemalloc (the benches' alloc-jemalloc feature, built by clippy --all-features) is built
    // from source with make.
    ("make", "make"),
];

/// The rustup components of the lint steps, each with the cargo subcommand that needs it.
const COMPONENTS: &[(&str, &str)] = &[("rustfmt", "fmt"), ("clippy", "clippy")];

/// Names (commands of [`NEEDS`], or components) to treat as missing, comma-separated.
pub const PRETEND_MISSING: &str = "FERROC_SETUP_PRETEND_MISSING";

/// What the machine lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    /// The missing commands, in [`NEEDS`] order.
    pub commands: Vec<&'static str>,
    /// Their packages, each once, in [`NEEDS`] order.
    pub packages: Vec<&'static str>,
    /// The missing rustup components.
    pub components: Vec<&'static str>,
}

/// The commands of [`NEEDS`] that `found` does not find, and their packages.
pub fn missing_packages(found: impl Fn(&str) -> bool) -> Missing {
    let mut missing = Missing::default();
    for &(command, package) in NEEDS {
        if !found(command) {
            missing.commands.push(command);
            if !missing.packages.contains(&package) {
                missing.packages.push(package);
            }
        }
    }
    missing
}

/// Whether an executable file `command` is in one of the directories of `path` (a `PATH`).
fn on_path(command: &str, path: Option<&OsStr>) -> bool {
    path.into_iter().flat_map(std::env::split_paths).any(|dir| {
        std::fs::metadata(dir.join(command))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The names listed in a [`PRETEND_MISSING`] value.
fn pretended(value: &str) -> Vec<&str> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether the cargo subcommand works (`cargo fmt --version`): its component is installed.
fn cargo_subcommand_works(subcommand: &str) -> bool {
    Command::new(workspace::cargo())
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What this machine lacks; `lints`: whether the lint steps' components are needed;
/// `pretend`: whether the names in [`PRETEND_MISSING`] count as missing.
fn find_missing(lints: bool, pretend: bool) -> Missing {
    let pretend = match pretend {
        true => std::env::var(PRETEND_MISSING).unwrap_or_default(),
        false => String::new(),
    };
    let pretend = pretended(&pretend);
    let path = std::env::var_os("PATH");
    let mut missing =
        missing_packages(|cmd| !pretend.contains(&cmd) && on_path(cmd, path.as_deref()));
    if lints {
        for &(component, subcommand) in COMPONENTS {
            if pretend.contains(&component) || !cargo_subcommand_works(subcommand) {
                missing.components.push(component);
            }
        }
    }
    missing
}

/// Whether xtask runs as root (and so may run `apt-get` itself).
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, reads and writes no memory of ours and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// The `apt-get update` and `apt-get install` runs that install `packages`, non-interactive;
/// through `sudo` unless `root`.
fn apt_commands(packages: &[&str], root: bool) -> [Command; 2] {
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        } else {
            // sudo resets the environment: the variable goes through `env`.
            let mut cmd = Command::new("sudo");
            cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            cmd
        };
        cmd.args(args);
        cmd
    };
    let install = [
        &["install", "-q", "-y", "--no-install-recommends"],
        packages,
    ]
    .concat();
    [apt(&["update", "-q"]), apt(&install)]
}

/// Installs `packages` with `apt-get` (through `sudo` when not root), showing each command.
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    for mut cmd in apt_commands(packages, is_root()) {
        println!("$ {}", run::display(&cmd));
        run::status(&mut cmd)?;
    }
    Ok(())
}

/// The `rustup` run that adds `components`.
fn rustup_command(components: &[&str]) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["component", "add"]).args(components);
    cmd
}

/// Installs what is missing; `lints`: whether the lint steps' components are needed.
pub fn run(options: &SetupOptions, lints: bool) -> Result<(), String> {
    let missing = find_missing(lints, true);
    let path = std::env::var_os("PATH");
    if missing == Missing::default() {
        println!(
            "setup: nothing to install ({} commands{} present)",
            NEEDS.len(),
            if lints { ", rustfmt and clippy" } else { "" }
        );
        return Ok(());
    }
    let dry = if options.dry_run { " (dry run)" } else { "" };
    if !missing.packages.is_empty() {
        println!(
            "setup: missing {}: Debian packages {}{dry}",
            missing.commands.join(", "),
            missing.packages.join(" ")
        );
        install_packages(&missing.packages, options.dry_run, path.as_deref())?;
    }
    if !missing.components.is_empty() {
        println!(
            "setup: missing rustup components {}{dry}",
            missing.components.join(", ")
        );
        let mut cmd = rustup_command(&missing.components);
        if options.dry_run {
            println!("would run: {}", run::display(&cmd));
        } else if on_path("rustup", path.as_deref()) {
            println!("$ {}", run::display(&cmd));
            run::status(&mut cmd)?;
        } else {
            return Err(format!(
                "the {} components are missing and there is no rustup to add them: install \
                 them with your Rust toolchain",
                missing.components.join(" and ")
            ));
        }
    }
    if options.dry_run {
        return Ok(());
    }
    // What was only pretended missing is present: the check after the install is real.
    let still = find_missing(lints, false);
    if still == Missing::default() {
        println!("setup: done");
        Ok(())
    } else {
        Err(format!(
            "still missing after the install: {}",
            [still.commands, still.components].concat().join(", ")
        ))
    }
}

/// Installs `packages` with apt-get as root; otherwise the error says what to run.
fn install_packages(packages: &[&str], dry_run: bool, path: Option<&OsStr>) -> Result<(), String> {
    let has_apt = on_path("apt-get", path);
    let root = is_root();
    let sudo_line = format!("sudo apt-get install -y {}", packages.join(" "));
    if dry_run {
        if !has_apt {
            println!("would stop: no apt-get (not Debian); install those packages yourself");
        } else if !root {
            println!("would stop (not root) and ask you to run: {sudo_line}");
        } else {
            for cmd in apt_commands(packages, root) {
                println!("would run: {}", run::display(&cmd));
            }
        }
        Ok(())
    } else if !has_apt {
        Err(format!(
            "missing commands; this is not a Debian machine (no apt-get): install the packages \
             that provide them ({})",
            packages.join(" ")
        ))
    } else if !root {
        Err(format!(
            "missing commands; install their packages (as root), then run again:\n  {sudo_line}"
        ))
    } else {
        apt_install(packages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_commands_and_their_packages() {
        assert_eq!(missing_packages(|_| true), Missing::default());
        // A fake PATH lookup: binutils is wanted once for its two missing commands, in list
        // order, and a package whose commands are all present is not.
        let absent = ["redis-cli", "lua5.4", "objdump", "nm"];
        let missing = missing_packages(|cmd| !absent.contains(&cmd));
        assert_eq!(missing.commands, ["nm", "objdump", "lua5.4", "redis-cli"]);
        assert_eq!(missing.packages, ["binutils", "lua5.4", "redis-tools"]);
        assert!(missing.components.is_empty());
        let all = missing_packages(|_| false);
        assert_eq!(all.commands.len(), NEEDS.len());
        assert_eq!(all.packages.len(), 11);
    }

    #[test]
    fn path_lookup() {
        let dir = std::env::temp_dir().join(format!("xtask-setup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tool = dir.join("some-tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.to_str().unwrap()]).unwrap();
        // Not executable yet: not a command.
        assert!(!on_path("some-tool", Some(&path)));
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(on_path("some-tool", Some(&path)));
        assert!(!on_path("other-tool", Some(&path)));
        assert!(!on_path("some-tool", None));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pretend_list_and_command_lines() {
        assert_eq!(
            pretended(" lua5.4,redis-cli , clippy"),
            ["lua5.4", "redis-cli", "clippy"]
        );
        assert!(pretended("").is_empty());
        let [update, install] = apt_commands(&["lua5.4", "redis-tools"], true);
        assert_eq!(
            run::display(&update),
            "DEBIAN_FRONTEND=noninteractive apt-get update -q"
        );
        assert_eq!(
            run::display(&install),
            "DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends \
             lua5.4 redis-tools"
        );
        let [_, install] = apt_commands(&["lua5.4"], false);
        assert_eq!(
            run::display(&install),
            "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -q -y \
             --no-install-recommends lua5.4"
        );
        assert_eq!(
            run::display(&rustup_command(&["rustfmt", "clippy"])),
            "rustup component add rustfmt clippy"
        );
    }
}
