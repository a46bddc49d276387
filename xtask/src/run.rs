//! Running children and reporting on them.

use std::fmt::Write as _;
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// The command line as a person would type it (for headers and error messages).
pub fn display(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            let _ = write!(
                line,
                "{}={} ",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            );
        }
    }
    line.push_str(&program_name(cmd));
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(&arg.to_string_lossy()));
    }
    line
}

/// `cargo` rather than the full path of the toolchain's cargo in `$CARGO`.
fn program_name(cmd: &Command) -> String {
    let program = std::path::Path::new(cmd.get_program());
    match program.file_name() {
        Some(name) if name == "cargo" => "cargo".to_owned(),
        _ => program.to_string_lossy().into_owned(),
    }
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` with the inherited stdin, stdout and stderr; an error if it cannot start or exits
/// unsuccessfully.
pub fn status(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))?;
    check(cmd, status)
}

/// An error naming the command if `status` is not a success.
pub fn check(cmd: &Command, status: ExitStatus) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(cmd)))
    }
}

/// A duration as `0.4s`, `12.3s` or `3m07.2s`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let minutes = (secs / 60.0).floor();
        format!("{minutes:.0}m{:04.1}s", secs - minutes * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_millis(420)), "0.4s");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration(Duration::from_millis(187_200)), "3m07.2s");
    }

    #[test]
    fn command_lines() {
        let mut cmd = Command::new("/somewhere/bin/cargo");
        cmd.args(["test", "--", "loom_", "a b"])
            .env("RUSTFLAGS", "--cfg ferroc_loom");
        assert_eq!(
            display(&cmd),
            "RUSTFLAGS='--cfg ferroc_loom' cargo test -- loom_ 'a b'"
        );
    }
}
