//! The `command` source: any argv (no shell), whose stdout is the dump.

use std::{
    io::{self, Read, Write},
    process::Stdio,
};

use serde::Deserialize;

use super::SourceError;
use crate::{
    Cancel,
    child::{CheckedChild, Echo, pipe},
};

/// Runs `backup` and stores its stdout; `restore`, when given, is the argv a
/// restore pipes the plaintext into (otherwise restore writes it to stdout).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CommandSource {
    /// The source's name in its set.
    #[serde(deserialize_with = "crate::config::env_string")]
    pub name: String,
    /// The dump command, as an argv list.
    #[serde(deserialize_with = "crate::config::env_strings")]
    pub backup: Vec<String>,
    /// The restore command, as an argv list.
    #[serde(default, deserialize_with = "crate::config::env_opt_strings")]
    pub restore: Option<Vec<String>>,
    /// The `<ext>` of the stored object's name (default `out`).
    #[serde(default = "default_extension")]
    pub extension: String,
}

fn default_extension() -> String {
    "out".to_owned()
}

/// Size of each read from the child's stdout.
const READ_SIZE: usize = 256 * 1024;

impl CommandSource {
    /// A source running `argv`, with no restore command.
    pub fn new(name: &str, argv: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            backup: argv,
            restore: None,
            extension: default_extension(),
        }
    }

    /// Runs the command and copies its stdout to `out`. Fails unless it exits
    /// 0; if `out` stops taking data, the command's process group is killed.
    pub fn dump(&self, out: &mut dyn Write, cancel: &Cancel) -> Result<(), SourceError> {
        dump_stdout(&self.backup, &[], out, cancel)
    }
}

/// Runs a client whose output is one number (a size query) and returns it,
/// or none when the client fails: for optional facts such as size hints.
pub(crate) fn query_number(argv: &[String], env: &[(String, String)]) -> Option<u64> {
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().parse().ok(),
        Ok(out) => {
            tracing::debug!(
                "`{}` failed: {}",
                argv[0],
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            tracing::debug!("could not run `{}`: {e}", argv[0]);
            None
        }
    }
}

/// Runs `argv` (with `env` added), copies its stdout to `out`, and fails
/// unless it exits 0. If reading fails, `out` stops taking data or the run
/// is cancelled, the child's process group is killed first.
pub(crate) fn dump_stdout(
    argv: &[String],
    env: &[(String, String)],
    out: &mut dyn Write,
    cancel: &Cancel,
) -> Result<(), SourceError> {
    let mut child = CheckedChild::spawn(
        argv,
        Stdio::null(),
        Stdio::piped(),
        env,
        Echo::Debug,
        cancel,
    )?;
    copy_stdout(&mut child, out, cancel)?;
    Ok(child.wait_checked()?)
}

/// Copies a child's stdout to `out` until it ends, killing the child if
/// reading fails, `out` stops taking data or the run is cancelled.
fn copy_stdout(
    child: &mut CheckedChild,
    out: &mut dyn Write,
    cancel: &Cancel,
) -> Result<(), SourceError> {
    let mut stdout = child.take_stdout().expect("stdout is piped");
    let paced = pipe::grow(&stdout, child.program());
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                let program = child.program().to_owned();
                child.kill_group();
                return Err(SourceError::ReadOutput { program, source });
            }
        };
        if let Err(e) = out.write_all(&buf[..n]) {
            child.kill_group();
            return Err(SourceError::Output(e));
        }
        if paced && n < READ_SIZE {
            // The pipe is drained: let it fill (see `pipe`).
            std::thread::sleep(pipe::PAUSE);
        }
    }
    if cancel.is_fired() {
        child.kill_group();
        return Err(SourceError::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandSource {
        CommandSource::new("t", vec!["sh".into(), "-c".into(), script.into()])
    }

    #[test]
    fn a_fast_child_is_read_in_few_large_reads() {
        /// Counts the reads `copy_stdout` hands on (one `write` each).
        #[derive(Default)]
        struct Reads {
            count: u64,
            bytes: u64,
        }
        impl Write for Reads {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                self.count += 1;
                self.bytes += data.len() as u64;
                Ok(data.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        // 16 MiB written 4 KiB at a time, as pg_dump writes.
        let mut reads = Reads::default();
        let started = std::time::Instant::now();
        sh("dd if=/dev/zero bs=4096 count=4096 status=none")
            .dump(&mut reads, &Cancel::new())
            .unwrap();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        assert_eq!(reads.bytes, 16 << 20);
        // Every read either fills the buffer or is followed by a pause, so
        // there are at most 64 full reads plus one per millisecond; without
        // the pause a reader keeping up takes one read per write or two.
        assert!(
            reads.count <= 64 + elapsed_ms / pipe::PAUSE.as_millis() as u64 + 1,
            "{} reads in {elapsed_ms} ms",
            reads.count
        );
    }

    #[test]
    fn stdout_is_the_dump() {
        let mut out = Vec::new();
        sh("printf 'a\\nb'; echo note >&2")
            .dump(&mut out, &Cancel::new())
            .unwrap();
        assert_eq!(out, b"a\nb");
    }

    #[test]
    fn a_failing_command_fails_the_dump_with_its_stderr() {
        let mut out = Vec::new();
        let err = sh("echo partial; echo 'connection refused' >&2; exit 2")
            .dump(&mut out, &Cancel::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with code 2"), "{err}");
        assert!(err.contains("connection refused"), "{err}");
    }

    #[test]
    fn a_writer_that_fails_kills_the_command() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let started = std::time::Instant::now();
        let err = sh("yes").dump(&mut Broken, &Cancel::new()).unwrap_err();
        assert!(matches!(err, SourceError::Output(_)), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
