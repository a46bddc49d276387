//! One timed run of a workload: wall time from `spawn` to exit, peak resident memory from
//! `wait4`'s rusage, its output, and a kill after a timeout.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// Wall time from just before `spawn` to the child's exit.
    pub wall: Duration,
    /// `ru_maxrss` of the child, in KiB.
    pub max_rss_kib: u64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// What went wrong at the process level (signal, exit status, timeout), if anything.
    pub failure: Option<String>,
}

/// Runs `program args` with `preload` as `LD_PRELOAD` (none: the C library's malloc), killing
/// it after `timeout`.
pub fn run(
    program: &Path,
    args: &[String],
    preload: Option<&Path>,
    timeout: Duration,
) -> Result<Run, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("LD_PRELOAD");
    if let Some(lib) = preload {
        cmd.env("LD_PRELOAD", lib);
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let pid = child.id() as libc::pid_t;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());

    // The watchdog kills the child if it is still running at the deadline. The child is only
    // waited for (not reaped) until the watchdog has stopped, so its pid cannot be reused.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || match done_rx.recv_timeout(timeout) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // SAFETY: kill only sends a signal; it reads and writes no memory of ours. `pid` is
            // our child, not reaped before this thread is joined (`wait_exit` uses WNOWAIT), so
            // the number still names that process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        }
        _ => false,
    });
    let waited = wait_exit(pid);
    let wall = start.elapsed();
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    waited?;
    let (status, usage) = reap(pid)?;
    let failure = if timed_out {
        Some(format!("timed out after {}s", timeout.as_secs()))
    } else {
        describe_status(status)
    };
    Ok(Run {
        wall,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        failure,
    })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Waits until the child has exited, leaving it unreaped.
fn wait_exit(pid: libc::pid_t) -> Result<(), String> {
    loop {
        // SAFETY: siginfo_t is a C struct of integers (and a union of them), for which all-zero
        // bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `&mut info` points to a live siginfo_t of this frame, the only memory waitid
        // writes; WNOWAIT leaves the child unreaped.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitid failed: {err}"));
        }
    }
}

/// Reaps the exited child: its wait status and resource usage.
fn reap(pid: libc::pid_t) -> Result<(libc::c_int, libc::rusage), String> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is a C struct of integers (two timevals and longs), for which all-zero
        // bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `&mut status` and `&mut usage` point to live locals of this frame of the types
        // wait4 expects, the only memory it writes.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4 failed: {err}"));
        }
    }
}

/// `None` for exit status 0, else what happened.
fn describe_status(status: libc::c_int) -> Option<String> {
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => None,
            code => Some(format!("exit status {code}")),
        }
    } else if libc::WIFSIGNALED(status) {
        Some(format!("killed by signal {}", libc::WTERMSIG(status)))
    } else {
        Some(format!("wait status {status:#x}"))
    }
}
