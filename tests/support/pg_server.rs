//! A PostgreSQL 15 server of a test's own, which the test may stop and start again (the
//! shared server of `scripts/test.sh` must stay up for every other test). `initdb` and the
//! server run as the `postgres` user when the tests run as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the postgres user when we are root.
fn as_pg(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl PgServer {
    /// A fresh cluster, started; `None` outside CI when PostgreSQL is not installed.
    pub fn start() -> Option<PgServer> {
        let bin = PathBuf::from(
            std::env::var("KIROKU_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        if !bin.join("initdb").exists() {
            assert!(
                std::env::var("CI").is_err(),
                "no PostgreSQL binaries in {}",
                bin.display()
            );
            eprintln!("skipping: no PostgreSQL binaries in {}", bin.display());
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("kiroku-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data = dir.path().join("data");
        let output = as_pg(
            &bin.join("initdb"),
            &[
                "-D",
                &data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
            ],
        )
        .current_dir(dir.path())
        .output()
        .expect("initdb");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut server = PgServer {
            bin,
            dir,
            port: free_port(),
            child: None,
        };
        server.resume();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn resume(&mut self) {
        let child = as_pg(
            &self.bin.join("postgres"),
            &[
                "-D",
                &self.data(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("port={}", self.port),
                "-c",
                &format!("unix_socket_directories={}", self.dir.path().display()),
                "-c",
                "max_connections=50",
            ],
        )
        .current_dir(self.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start postgres");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server the way an operator or a failing host would: `fast` disconnects every
    /// client and rolls back what is in flight; `immediate` is a crash.
    pub fn stop(&mut self, mode: &str) {
        let _ = as_pg(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", mode, "-w", "-t", "30", "stop"],
        )
        .current_dir(self.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop("immediate");
        }
    }
}
