//! Starting the `lagwatch` binary as a user does and stopping it with SIGTERM, or running one
//! of its commands to the end.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `lagwatch` binary (the demo, or `run`/`emulate`), killed when dropped.
pub struct Demo {
    pub child: Child,
    pub addr: SocketAddr,
    /// `http`, or `https` when started with a web-config file that turns on TLS.
    pub scheme: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lagwatch demo` on a free loopback port.
pub fn start_demo() -> Demo {
    start(&["demo", "--listen", "127.0.0.1:0"])
}

/// `lagwatch <args>`, logging at info to nowhere.
pub fn start(args: &[&str]) -> Demo {
    start_with(args, Stdio::null(), "info")
}

/// `lagwatch <args>` with `RUST_LOG=log` and stderr to `stderr`; returns once it says where it
/// listens.
pub fn start_with(args: &[&str], stderr: Stdio, log: &str) -> Demo {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagwatch"));
    cmd.args(args).env("RUST_LOG", log).stderr(stderr);
    start_command(cmd)
}

/// `lagwatch run --listen 127.0.0.1:0 --config <config> <args>` at `RUST_LOG=log`, its stderr
/// written to `stderr.log` beside the configuration; the running binary and that file.
pub fn run_logged(config: &Path, args: &[&str], log: &str) -> (Demo, PathBuf) {
    let file = config.with_file_name("stderr.log");
    let config = config.to_str().expect("a UTF-8 path");
    let mut all = vec!["run", "--listen", "127.0.0.1:0", "--config", config];
    all.extend_from_slice(args);
    let stderr = std::fs::File::create(&file).expect("log file");
    (start_with(&all, Stdio::from(stderr), log), file)
}

/// Spawns `cmd` (which runs the lagwatch binary, perhaps through a wrapper that `exec`s it)
/// with stdout piped; returns once it says where it listens.
pub fn start_command(mut cmd: Command) -> Demo {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start lagwatch");
    let stdout = child.stdout.take().unwrap();
    // The demo first says where its emulator is; the monitor's own line comes next.
    let mut lines = BufReader::new(stdout).lines();
    let (scheme, addr) = loop {
        let line = lines
            .next()
            .expect("lagwatch says where it listens")
            .expect("readable stdout");
        if let Some((_, url)) = line.trim().split_once(" listening on ")
            && let Some((scheme, a)) = url.split_once("://")
        {
            break (scheme.to_string(), a.parse().unwrap());
        }
    };
    Demo {
        child,
        addr,
        scheme,
    }
}

/// `lagwatch <args>` run to its end, as a script would: its exit code, stdout and stderr.
pub fn output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lagwatch"))
        .args(args)
        .output()
        .expect("the lagwatch binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// SIGTERM, then waits up to 15 s for a clean exit.
pub fn terminate(mut demo: Demo) {
    let pid = demo.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(code) = demo.child.try_wait().unwrap() {
            assert!(code.success(), "SIGTERM ends the demo cleanly: {code:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "demo stops within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
