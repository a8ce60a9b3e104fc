//! A PostgreSQL server newer than the client tools on PATH, started for one
//! test: the server of the `pgserver` wheel that scripts/test.sh installs
//! into .venv (PostgreSQL 16 beside Debian's 15), run as the `postgres` user
//! when the tests run as root, since PostgreSQL refuses to run as root.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
};

/// A running server on 127.0.0.1 (trust authentication, user `postgres`),
/// stopped when dropped.
pub struct NewerPostgres {
    bin: PathBuf,
    data: PathBuf,
    /// The server's TCP port.
    pub port: u16,
    /// What `postgres --version` says, e.g. `16.2`.
    pub version: String,
    _dir: tempfile::TempDir,
}

impl NewerPostgres {
    pub fn start() -> Self {
        let bin = PathBuf::from(std::env::var("SLUICE_TEST_NEWER_POSTGRES").expect(
            "this test needs a PostgreSQL server newer than the client tools on PATH: \
             run scripts/test.sh, which installs one into .venv, or set \
             SLUICE_TEST_NEWER_POSTGRES to its bin directory",
        ));
        let version = version_of(&bin.join("postgres"));
        let dir = tempfile::tempdir().unwrap();
        let as_root = rustix::process::geteuid().is_root();
        if as_root {
            let owned = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success(), "chown postgres: the test's directory");
        }
        let data = dir.path().join("data");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self {
            bin,
            data,
            port,
            version,
            _dir: dir,
        };
        server.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-D", &server.data_dir()],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            server.data_dir()
        );
        let log = server.data.join("server.log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                &server.data_dir(),
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        );
        server
    }

    fn data_dir(&self) -> String {
        self.data.display().to_string()
    }

    /// Runs one of the server's programs, as `postgres` when root; panics
    /// with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let path = self.bin.join(program);
        let mut command = if rustix::process::geteuid().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.args(args).stdin(Stdio::null());
        command
    }
}

impl Drop for NewerPostgres {
    fn drop(&mut self) {
        // Not `run`: a panic while a failed test unwinds would abort.
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// The version a PostgreSQL program prints: `16.2` of
/// `postgres (PostgreSQL) 16.2`.
pub fn version_of(program: &std::path::Path) -> String {
    let out = Command::new(program).arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("{}: no version in {text:?}", program.display()))
        .to_owned()
}
