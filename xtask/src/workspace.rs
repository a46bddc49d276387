//! Finding the workspace: its root, its member crates, and which of them have loom models.
//!
//! The members come from `cargo metadata --no-deps` (through `cargo_metadata`), so cargo itself
//! reads the manifests and expands the member globs.

use std::fs;
use std::path::{Path, PathBuf};

/// A member crate of the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The package name, as `cargo -p` wants it.
    pub name: String,
    /// The crate's directory.
    pub dir: PathBuf,
}

/// The workspace root: the parent of xtask's own directory.
pub fn root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir
        .parent()
        .expect("xtask lives in a directory of the workspace")
        .to_path_buf()
}

/// The cargo to run children with: the one that runs us (`$CARGO`), else `cargo` from `PATH`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The directory under which cargo puts its builds: `$CARGO_TARGET_DIR`, else `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Every member crate of the workspace, in the order cargo lists them.
pub fn members(root: &Path) -> Result<Vec<Member>, String> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .cargo_path(cargo())
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(|e| format!("cannot read the workspace (cargo metadata): {e}"))?;
    let members = metadata
        .workspace_packages()
        .into_iter()
        .map(|package| Member {
            name: package.name.to_string(),
            dir: package
                .manifest_path
                .parent()
                .map_or_else(|| root.to_path_buf(), |dir| dir.as_std_path().to_path_buf()),
        })
        .collect();
    Ok(members)
}

/// The members with loom models: some `.rs` file under `src/` declares `mod loom_tests`.
pub fn loom_members(root: &Path) -> Result<Vec<Member>, String> {
    let mut found = Vec::new();
    for member in members(root)? {
        if has_loom_tests(&member.dir.join("src"))? {
            found.push(member);
        }
    }
    Ok(found)
}

fn has_loom_tests(dir: &Path) -> Result<bool, String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(false);
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if has_loom_tests(&path)? {
                return Ok(true);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && read(&path)?.lines().any(declares_loom_tests)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a line is `mod loom_tests` (possibly `pub`, `pub(crate)`, ..., and after attributes
/// such as `#[cfg(all(test, ferroc_loom))]` on the same line). Only a declaration counts: a
/// mention in a comment or a string does not.
fn declares_loom_tests(line: &str) -> bool {
    let mut line = skip_attributes(line.trim_start());
    if let Some(rest) = line.strip_prefix("pub") {
        line = match rest.trim_start().strip_prefix('(') {
            Some(rest) => rest.split_once(')').map_or("", |(_, rest)| rest),
            None => rest,
        }
        .trim_start();
    }
    line.strip_prefix("mod").is_some_and(|rest| {
        rest.starts_with(char::is_whitespace) && rest.trim_start().starts_with("loom_tests")
    })
}

/// `line` after the outer attributes (`#[...]`, brackets nested) it starts with.
fn skip_attributes(mut line: &str) -> &str {
    while let Some(rest) = line.strip_prefix("#[") {
        let mut depth = 1;
        let end = rest.find(|c| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            depth == 0
        });
        match end {
            Some(end) => line = rest[end + 1..].trim_start(),
            None => return "",
        }
    }
    line
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loom_tests_declarations() {
        assert!(declares_loom_tests("mod loom_tests {"));
        assert!(declares_loom_tests("    pub(crate) mod loom_tests;"));
        assert!(declares_loom_tests("pub mod  loom_tests {"));
        assert!(!declares_loom_tests("// see mod loom_tests"));
        assert!(!declares_loom_tests("let s = \"mod loom_tests\";"));
        assert!(!declares_loom_tests("model loom_tests"));
        assert!(declares_loom_tests(
            "#[cfg(all(test, ferroc_loom))] mod loom_tests;"
        ));
        assert!(declares_loom_tests(
            "#[cfg(test)] #[path = \"m.rs\"] pub(crate) mod loom_tests;"
        ));
        assert!(!declares_loom_tests("#[cfg(all(test, ferroc_loom))]"));
        assert!(!declares_loom_tests("#[cfg(test) mod loom_tests;"));
    }

    /// Models in files of their own: `mod loom_tests;` in `lib.rs` with the models in
    /// `src/loom_tests/*.rs`, or the declaration in a nested module file.
    #[test]
    fn finds_nested_models() {
        let dir = std::env::temp_dir().join(format!("xtask-loom-{}", std::process::id()));
        let src = dir.join("src");
        fs::create_dir_all(src.join("loom_tests")).unwrap();
        fs::create_dir_all(src.join("pool")).unwrap();
        fs::write(
            src.join("lib.rs"),
            "//! mod loom_tests (a comment)\nmod pool;\n",
        )
        .unwrap();
        fs::write(src.join("loom_tests/pool.rs"), "fn loom_pool() {}\n").unwrap();
        fs::write(src.join("pool/mod.rs"), "pub struct Pool;\n").unwrap();
        assert!(!has_loom_tests(&src).unwrap());
        fs::write(
            src.join("lib.rs"),
            "mod pool;\n#[cfg(all(test, ferroc_loom))]\nmod loom_tests;\n",
        )
        .unwrap();
        assert!(has_loom_tests(&src).unwrap());
        fs::write(src.join("lib.rs"), "mod pool;\n").unwrap();
        fs::write(
            src.join("pool/mod.rs"),
            "#[cfg(all(test, ferroc_loom))] mod loom_tests;\n",
        )
        .unwrap();
        assert!(has_loom_tests(&src).unwrap());
        assert!(!has_loom_tests(&dir.join("no-such-dir")).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_this_workspace() {
        let root = root();
        let members = members(&root).unwrap();
        assert!(members.iter().any(|m| m.name == "xtask"));
        assert!(members.iter().any(|m| m.name == "ferroc-base"));
        let loom = loom_members(&root).unwrap();
        assert!(loom.iter().any(|m| m.name == "ferroc-base"), "{loom:?}");
        assert!(!loom.iter().any(|m| m.name == "xtask"), "{loom:?}");
    }
}
