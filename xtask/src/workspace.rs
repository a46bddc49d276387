//! Finding the workspace: its root, its member crates, and which of them have loom models.
//!
//! The manifests are read with a few lines of string handling rather than a TOML parser: only
//! `[workspace] members` (plain paths and `dir/*` globs) and `[package] name` are needed.

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

/// Every member crate listed in the root manifest, in the order listed.
pub fn members(root: &Path) -> Result<Vec<Member>, String> {
    let manifest = read(&root.join("Cargo.toml"))?;
    let mut members = Vec::new();
    for pattern in member_patterns(&manifest) {
        for dir in expand(root, &pattern)? {
            let manifest_path = dir.join("Cargo.toml");
            if !manifest_path.is_file() {
                continue;
            }
            let name = package_name(&read(&manifest_path)?)
                .ok_or_else(|| format!("no [package] name in {}", manifest_path.display()))?;
            members.push(Member { name, dir });
        }
    }
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

/// Whether a line is `mod loom_tests` (possibly `pub`, `pub(crate)`, ...). Only a declaration
/// counts: a mention in a comment or a string does not.
fn declares_loom_tests(line: &str) -> bool {
    let mut line = line.trim_start();
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

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Drops a `#` comment (the manifests read here have no `#` inside strings that matter).
fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(code, _)| code)
}

/// The strings of `[workspace] members = [ ... ]`, which may span several lines.
fn member_patterns(manifest: &str) -> Vec<String> {
    let mut in_workspace = false;
    let mut collecting = false;
    let mut list = String::new();
    for line in manifest.lines() {
        let line = strip_comment(line).trim();
        if !collecting {
            if line.starts_with('[') {
                in_workspace = line == "[workspace]";
                continue;
            }
            let Some(value) = key_value(line, "members") else {
                continue;
            };
            if !in_workspace {
                continue;
            }
            collecting = true;
            list.push_str(value);
        } else {
            list.push(' ');
            list.push_str(line);
        }
        if list.contains(']') {
            break;
        }
    }
    quoted_strings(&list)
}

/// The value of `key = value` on this line, if the line sets `key`.
fn key_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let (k, v) = line.split_once('=')?;
    (k.trim() == key).then_some(v.trim())
}

/// Every `"..."` in `text`.
fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `name = "..."` of the `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = strip_comment(line).trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(value) = key_value(line, "name") {
            return quoted_strings(value).into_iter().next();
        }
    }
    None
}

/// A member pattern as directories: a plain path, or `dir/*` for every subdirectory of `dir`.
fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let Some(parent) = pattern.strip_suffix("/*") else {
        return Ok(vec![root.join(pattern)]);
    };
    let parent = root.join(parent);
    let entries =
        fs::read_dir(&parent).map_err(|e| format!("cannot read {}: {e}", parent.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members() {
        let manifest = r#"
[package]
members = ["not-this"]

[workspace]
resolver = "3"
members = [
    "a", # the first
    "crates/*",
]
exclude = ["x"]
"#;
        assert_eq!(member_patterns(manifest), ["a", "crates/*"]);
        assert_eq!(
            member_patterns("[workspace]\nmembers = [\"one\", \"two\"]\n"),
            ["one", "two"]
        );
    }

    #[test]
    fn parses_package_name() {
        let manifest = "[package]\nname = \"ferroc-benches\" # renamed\nversion = \"1\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("ferroc-benches"));
        assert_eq!(package_name("[lib]\nname = \"x\"\n"), None);
    }

    #[test]
    fn loom_tests_declarations() {
        assert!(declares_loom_tests("mod loom_tests {"));
        assert!(declares_loom_tests("    pub(crate) mod loom_tests;"));
        assert!(declares_loom_tests("pub mod  loom_tests {"));
        assert!(!declares_loom_tests("// see mod loom_tests"));
        assert!(!declares_loom_tests("let s = \"mod loom_tests\";"));
        assert!(!declares_loom_tests("model loom_tests"));
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
