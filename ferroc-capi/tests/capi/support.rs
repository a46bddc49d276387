//! Builds the C libraries and the C/C++ test programs, and runs them.
//!
//! The libraries are built by a child `cargo build --release -p ferroc-capi` into directories
//! of their own under cargo's `target/tmp` (the `cargo test` that runs us holds the lock of
//! the main target directory), once per test process, and laid out as `cargo xtask capi`
//! lays them out: `libferroc.so` (with the override), `libferroc-override.a`, `libferroc.a`
//! (the `fe_*` API only).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex, OnceLock},
};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ferroc-capi lives in the workspace")
        .to_path_buf()
}

/// Scratch space of these tests: `target/tmp/ferroc-capi`.
pub fn scratch() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferroc-capi")
}

/// `ferroc-capi/include`.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// `ferroc-capi/tests/c`.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c")
}

/// `ferroc-capi/tests/programs`.
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// A tool the tests need, with the Debian package that has it (listed in `.ci/run`).
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: install the Debian package `{package}` (.ci/run does)"
    );
}

/// Runs `cargo build --release -p ferroc-capi` with `args` into `target_dir`.
fn cargo_build(target_dir: &Path, args: &[&str]) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["build", "--release", "-p", "ferroc-capi", "--target-dir"])
        .arg(target_dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR");
    succeed(&mut cmd, &format!("cargo build -p ferroc-capi {args:?}"))?;
    Ok(target_dir.join("release"))
}

/// Runs `cmd` (no standard input) to the end; an error, with its standard error, unless it
/// ran and succeeded.
fn succeed(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {cmd:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    // Copy to a temporary name, then rename: a program of another test may be running from
    // the old file.
    let tmp = to.with_extension("tmp");
    fs::copy(from, &tmp).map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    fs::rename(&tmp, to).map_err(|e| format!("cannot rename to {}: {e}", to.display()))
}

/// The built libraries.
pub struct Libs {
    /// `libferroc.so`, `libferroc.a`, `libferroc-override.a`.
    pub dir: PathBuf,
}

impl Libs {
    /// `libferroc.so` (with the override).
    pub fn so(&self) -> PathBuf {
        self.dir.join("libferroc.so")
    }
}

/// Whether these tests run with the `stat` feature (`cargo test --all-features`): then the
/// libraries are built with it too, so that run tests the statistics build.
const STAT: bool = cfg!(feature = "stat");

fn build_libs() -> Result<Libs, String> {
    let base = scratch();
    let suffix = if STAT { "-stat" } else { "" };
    let stat: &[&str] = if STAT { &["--features", "stat"] } else { &[] };
    let over = cargo_build(&base.join(format!("build-override{suffix}")), stat)?;
    let plain = cargo_build(
        &base.join(format!("build-plain{suffix}")),
        &[&["--no-default-features"], stat].concat(),
    )?;
    let dir = base.join(format!("lib{suffix}"));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    copy(&over.join("libferroc_capi.so"), &dir.join("libferroc.so"))?;
    copy(
        &over.join("libferroc_capi.a"),
        &dir.join("libferroc-override.a"),
    )?;
    copy(&plain.join("libferroc_capi.a"), &dir.join("libferroc.a"))?;
    Ok(Libs { dir })
}

/// The libraries, built once per test process.
pub fn libs() -> &'static Libs {
    static LIBS: OnceLock<Result<Libs, String>> = OnceLock::new();
    match LIBS.get_or_init(build_libs) {
        Ok(libs) => libs,
        Err(e) => panic!("{e}"),
    }
}

/// `libferroc.so` built with the `dlopen` feature (general-dynamic TLS).
pub fn dlopen_so() -> &'static Path {
    static SO: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let so = SO.get_or_init(|| {
        let dir = cargo_build(&scratch().join("build-dlopen"), &["--features", "dlopen"])?;
        let to = scratch().join("lib-dlopen");
        fs::create_dir_all(&to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
        copy(&dir.join("libferroc_capi.so"), &to.join("libferroc.so"))?;
        Ok(to.join("libferroc.so"))
    });
    match so {
        Ok(path) => path,
        Err(e) => panic!("{e}"),
    }
}

/// How a test program gets Ferroc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not linked with it: run with `LD_PRELOAD=libferroc.so`.
    Preload,
    /// Linked with `-lferroc` against `libferroc.so`.
    Shared,
    /// Linked with `libferroc-override.a`: Ferroc replaces malloc inside the executable.
    StaticOverride,
    /// Linked with `libferroc.a`: the `fe_*` API only, malloc stays glibc's.
    StaticPlain,
    /// Not linked with it, run without it.
    None,
}

/// A compiled test program.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    pub link: Link,
}

/// Languages of test programs.
#[derive(Debug, Clone, Copy)]
pub enum Lang {
    C,
    Cxx,
}

/// Compiles `sources` (under `tests/c`) into the program `name`, once per test process.
pub fn compile(name: &str, lang: Lang, sources: &[&str], link: Link, extra: &[&str]) -> Program {
    type Cell = Arc<OnceLock<Result<PathBuf, String>>>;
    static CACHE: OnceLock<Mutex<HashMap<String, Cell>>> = OnceLock::new();
    let cell = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default()
        .clone();
    let path = cell.get_or_init(|| build_program(name, lang, sources, link, extra));
    match path {
        Ok(path) => Program {
            path: path.clone(),
            link,
        },
        Err(e) => panic!("{e}"),
    }
}

/// Builds `source` as each of `programs` (its name, and how it gets Ferroc), runs each without
/// arguments (asserting status 0) and gives `check` the program's link and standard output.
pub fn run_each(
    lang: Lang,
    source: &str,
    programs: &[(&str, Link)],
    mut check: impl FnMut(Link, &str),
) {
    for &(name, link) in programs {
        let out = compile(name, lang, &[source], link, &[]).run_stdout(&[]);
        check(link, &out);
    }
}

/// The flags every test program gets.
fn common_flags(lang: Lang) -> Vec<String> {
    let mut flags: Vec<String> = match lang {
        Lang::C => vec!["-std=gnu11".into()],
        Lang::Cxx => vec!["-std=gnu++17".into()],
    };
    flags.extend(
        [
            "-O2",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            // Calls to malloc and friends must reach the allocator, not be folded by the
            // compiler.
            "-fno-builtin",
            "-pthread",
            "-D_GNU_SOURCE",
        ]
        .map(String::from),
    );
    if let Lang::Cxx = lang {
        flags.push("-fno-allocation-dce".into());
    }
    flags.push(format!("-I{}", include_dir().display()));
    flags.push(format!("-I{}", c_dir().display()));
    flags
}

fn build_program(
    name: &str,
    lang: Lang,
    sources: &[&str],
    link: Link,
    extra: &[&str],
) -> Result<PathBuf, String> {
    let (compiler, package) = match lang {
        Lang::C => ("cc", "gcc"),
        Lang::Cxx => ("c++", "g++"),
    };
    require(compiler, package);
    let bin_dir = scratch().join("bin");
    fs::create_dir_all(&bin_dir).map_err(|e| format!("cannot create bin dir: {e}"))?;
    let out = bin_dir.join(name);
    let mut cmd = Command::new(compiler);
    cmd.args(common_flags(lang));
    cmd.args(extra);
    for src in sources {
        cmd.arg(c_dir().join(src));
    }
    cmd.arg("-o").arg(&out);
    if link != Link::None && link != Link::Preload {
        cmd.arg("-DFERROC_LINKED");
    }
    match link {
        Link::Preload | Link::None => {}
        Link::Shared => {
            let dir = &libs().dir;
            cmd.arg(format!("-L{}", dir.display()))
                .arg(format!("-Wl,-rpath,{}", dir.display()))
                .arg("-lferroc");
        }
        Link::StaticOverride => {
            cmd.arg(libs().dir.join("libferroc-override.a"));
        }
        Link::StaticPlain => {
            cmd.arg(libs().dir.join("libferroc.a"));
        }
    }
    // What the static libraries need from the system (ferroc.pc's `Libs.private`).
    cmd.args(["-ldl", "-lpthread", "-lm"]);
    succeed(&mut cmd, &format!("{compiler} (compiling {name})"))?;
    Ok(out)
}

impl Program {
    /// A command that runs the program the way its link asks for.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.path);
        if self.link == Link::Preload {
            cmd.env("LD_PRELOAD", libs().so());
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs the program with `args` and asserts that it exits with status 0.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("the program starts");
        assert_success(&format!("{} {args:?}", self.path.display()), &out);
        out
    }

    /// Runs the program with `args`, asserts that it exits with status 0, and returns its
    /// standard output.
    pub fn run_stdout(&self, args: &[&str]) -> String {
        stdout(&self.run_ok(args))
    }

    /// Runs the program with `args` and asserts that it exits with status 0 and that its
    /// standard output contains `marker` (the line a test program prints when all went well).
    pub fn run_prints(&self, args: &[&str], marker: &str) -> Output {
        let out = self.run_ok(args);
        let text = stdout(&out);
        assert!(
            text.contains(marker),
            "{} {args:?} did not print {marker:?}:\n{text}",
            self.path.display()
        );
        out
    }
}

/// Panics with the program's output unless it exited with status 0.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Standard output as a string.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a tool and returns its standard output, panicking on failure.
pub fn tool_output(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_success(&format!("{cmd:?}"), &out);
    stdout(&out)
}

/// A fresh, empty scratch directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = scratch().join("tmp").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
