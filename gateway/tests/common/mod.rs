//! Child processes shared by the tests that need real ones: a private redis-server on a Unix
//! socket in a temp dir, and the lines a child prints when it is ready.
#![allow(
    dead_code,
    reason = "each test crate uses its own part of these helpers"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the child's stdout until a line contains `marker`; returns that line.
pub fn wait_for_line(child: &mut Child, marker: &str) -> String {
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains(marker) {
            // keep draining so the child never blocks on a full pipe
            std::thread::spawn(move || for _ in lines {});
            return line;
        }
    }
    panic!("process exited before printing `{marker}`");
}

/// Starts the gateway binary with `cmd`'s settings plus a free loopback port, a SQLite file of
/// its own in `dir` and `RUST_LOG=warn`; returns it with its base URL once it listens.
pub fn spawn_gateway(mut cmd: Command, dir: &std::path::Path) -> (Proc, String) {
    let child = cmd
        .env("BIND_ADDR", "127.0.0.1:0")
        .env(
            "SQLITE_PATH",
            dir.join(format!("{}.sqlite3", uuid::Uuid::new_v4())),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let line = wait_for_line(&mut p.0, "listening on ");
    let url = line.rsplit(' ').next().unwrap().to_owned();
    (p, url)
}

pub fn start_redis(dir: &std::path::Path) -> (Proc, String) {
    let sock = dir.join("redis.sock");
    let child = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(&sock)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-server is required for this test (apt-get install redis-server; .ci/run installs it)");
    let mut p = Proc(child);
    // Redis 6 says "Ready to accept connections", 7 "ready to accept connections at …".
    wait_for_line(&mut p.0, "eady to accept connections");
    (p, format!("redis+unix://{}", sock.display()))
}
