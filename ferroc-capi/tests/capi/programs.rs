//! Real programs under `LD_PRELOAD=libferroc.so`, their output compared with a run without
//! it: python3, perl, sqlite3, git, lua5.4, and redis-server under redis-benchmark.

use std::{
    fs,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::support::{self, assert_success, libs, programs_dir, require, stdout, temp_dir};

/// Runs `cmd` with and without the library preloaded; returns both outputs after checking
/// that both runs succeeded and printed the same.
fn compare(what: &str, mut make: impl FnMut(bool) -> Command) -> (Output, Output) {
    let run = |cmd: &mut Command| cmd.stdin(Stdio::null()).output().expect("starts");
    let plain = run(&mut make(false));
    assert_success(&format!("{what} (glibc malloc)"), &plain);
    let mut cmd = make(true);
    let ours = run(cmd.env("LD_PRELOAD", libs().so()));
    assert_success(&format!("{what} (LD_PRELOAD=libferroc.so)"), &ours);
    assert!(!plain.stdout.is_empty(), "{what} printed nothing");
    assert_eq!(
        stdout(&plain),
        stdout(&ours),
        "{what}: the output differs under LD_PRELOAD=libferroc.so"
    );
    (plain, ours)
}

/// Runs `interpreter` (from the Debian package of the same name) on `script` of the programs
/// directory, with `env`, with and without the library preloaded ([`compare`]).
fn compare_script(interpreter: &str, script: &str, env: &[(&str, &str)]) {
    require(interpreter, interpreter);
    let script = programs_dir().join(script);
    compare(interpreter, |_| {
        let mut cmd = Command::new(interpreter);
        cmd.arg(&script).envs(env.iter().copied());
        cmd
    });
}

#[test]
fn python3_threads_building_and_dropping_dicts_lists_strings() {
    compare_script("python3", "churn.py", &[("PYTHONMALLOC", "malloc")]);
    // The preloaded run was on Ferroc.
    let check = Command::new("python3")
        .args([
            "-c",
            "print('libferroc.so' in open('/proc/self/maps').read())",
        ])
        .env("LD_PRELOAD", libs().so())
        .output()
        .unwrap();
    assert_eq!(stdout(&check).trim(), "True");
}

#[test]
fn perl_hashes_arrays_strings_regexes() {
    compare_script("perl", "churn.pl", &[]);
}

#[test]
fn lua_tables_strings_gc() {
    compare_script("lua5.4", "churn.lua", &[]);
}

#[test]
fn sqlite3_100k_rows_index_query() {
    require("sqlite3", "sqlite3");
    let dir = temp_dir("sqlite3");
    let sql = fs::read(programs_dir().join("rows.sql")).unwrap();
    let run = |preload: bool| {
        let db = dir.join(if preload { "ferroc.db" } else { "glibc.db" });
        let _ = fs::remove_file(&db);
        let mut cmd = Command::new("sqlite3");
        cmd.arg(&db).stdin(Stdio::piped()).stdout(Stdio::piped());
        if preload {
            cmd.env("LD_PRELOAD", libs().so());
        }
        let mut child = cmd.spawn().expect("sqlite3 starts");
        child.stdin.take().unwrap().write_all(&sql).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_success("sqlite3", &out);
        stdout(&out)
    };
    let plain = run(false);
    let ours = run(true);
    assert!(plain.contains("100000|"), "{plain}");
    assert_eq!(plain, ours);
}

/// A scratch git repository: init, three commits, a branch and merge, log, fsck, gc.
fn git_session(dir: &Path, preload: bool) -> String {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.current_dir(dir)
            .args(args)
            .env("HOME", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Ferroc")
            .env("GIT_AUTHOR_EMAIL", "dev@ferroc.invalid")
            .env("GIT_COMMITTER_NAME", "Ferroc")
            .env("GIT_COMMITTER_EMAIL", "dev@ferroc.invalid")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
        if preload {
            cmd.env("LD_PRELOAD", libs().so());
        }
        support::tool_output(&mut cmd)
    };
    let mut log = String::new();
    git(&["init", "-q", "-b", "main"]);
    for round in 0..3 {
        for f in 0..50 {
            let text: String = (0..200)
                .map(|l| format!("{round} {f} line {l}\n"))
                .collect();
            fs::write(dir.join(format!("file{f}.txt")), text).unwrap();
        }
        git(&["add", "."]);
        git(&["commit", "-q", "-m", &format!("round {round}")]);
    }
    git(&["checkout", "-q", "-b", "side"]);
    fs::write(dir.join("side.txt"), "side\n").unwrap();
    git(&["add", "side.txt"]);
    git(&["commit", "-q", "-m", "side"]);
    git(&["checkout", "-q", "main"]);
    git(&["merge", "-q", "--no-ff", "-m", "merge side", "side"]);
    log += &git(&["log", "--format=%H %T %s", "--stat"]);
    log += &git(&["diff", "HEAD~3", "HEAD", "--shortstat"]);
    git(&["gc", "-q"]);
    log += &git(&["fsck", "--full"]);
    log += &git(&["count-objects", "-v"])
        .lines()
        .filter(|l| l.starts_with("in-pack"))
        .collect::<String>();
    log
}

#[test]
fn git_init_commit_log_on_a_scratch_repository() {
    require("git", "git");
    let dir = temp_dir("git");
    let plain = git_session(&dir.join("glibc"), false);
    let ours = git_session(&dir.join("ferroc"), true);
    assert!(plain.contains("merge side"), "{plain}");
    assert_eq!(plain, ours);
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server child, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(dir: &Path, preload: bool) -> (Server, u16) {
    let port = free_port();
    let mut cmd = Command::new("redis-server");
    cmd.current_dir(dir)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--io-threads", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if preload {
        cmd.env("LD_PRELOAD", libs().so());
    }
    let server = Server(cmd.spawn().expect("redis-server starts"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut buf = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut buf).is_ok()
                && &buf == b"+PONG\r\n"
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

/// Deterministic commands and their replies through redis-cli.
fn redis_session(port: u16) -> String {
    let mut script = String::from("FLUSHALL\n");
    for i in 0..1500 {
        script += &format!("SET key:{i} {}\n", "v".repeat(i % 700));
        script += &format!("RPUSH list:{} item{i}\n", i % 10);
        script += &format!("HSET hash:{} f{i} {i}\n", i % 7);
        script += &format!("ZADD zset {} m{i}\n", (i * 37) % 1000);
        script += &format!("SADD set:{} {}\n", i % 5, i * 3);
    }
    for i in (0..1500).step_by(3) {
        script += &format!("DEL key:{i}\n");
        script += &format!("APPEND key:{} tail\n", i + 1);
    }
    script += "DBSIZE\nLLEN list:3\nLRANGE list:3 0 4\nHLEN hash:2\nHGET hash:2 f2\n";
    script += "ZRANGE zset 0 5 WITHSCORES\nSCARD set:4\nSTRLEN key:1\nGET key:4\n";
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || stdin.write_all(script.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_success("redis-cli", &out);
    stdout(&out)
}

#[test]
fn redis_server_under_redis_benchmark() {
    require("redis-server", "redis-server");
    require("redis-benchmark", "redis-tools");
    require("redis-cli", "redis-tools");
    let dir = temp_dir("redis");
    let (server, port) = start_redis(&dir, false);
    let plain = redis_session(port);
    drop(server);

    let (mut server, port) = start_redis(&dir, true);
    let maps = fs::read_to_string(format!("/proc/{}/maps", server.0.id())).unwrap();
    assert!(
        maps.contains("libferroc.so"),
        "redis-server did not load libferroc.so"
    );
    let bench = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-n", "10000", "-c", "16", "-P", "8", "-r", "10000", "-d", "300",
        ])
        .args(["--threads", "2", "-q"])
        .args(["-t", "set,get,incr,lpush,rpop,hset,zadd,lrange_100,mset"])
        .env("LD_PRELOAD", libs().so())
        .stdin(Stdio::null())
        .output()
        .expect("redis-benchmark starts");
    assert_success("redis-benchmark", &bench);
    let report = stdout(&bench);
    for test in [
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPOP",
        "HSET",
        "ZADD",
        "LRANGE_100",
        "MSET",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.contains(test) && l.contains("requests per second")),
            "redis-benchmark has no {test} line:\n{report}"
        );
    }
    let ours = redis_session(port);
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "redis-server exited"
    );
    drop(server);
    assert!(
        plain.contains("(integer)") || plain.lines().count() > 10,
        "{plain}"
    );
    assert_eq!(
        plain, ours,
        "redis replies differ under LD_PRELOAD=libferroc.so"
    );
}
