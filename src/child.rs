//! Child processes as checked streams (after ripgrep's `CommandReader`): the
//! child runs in its own process group, its stderr is drained on a thread from
//! the start (so it can never block on a full pipe) and its tail kept for the
//! error message (with credentials in URLs masked), and its exit status
//! decides success, never its output alone.

use std::{
    collections::VecDeque,
    ffi::OsStr,
    io::{self, BufRead, BufReader},
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio},
    thread::JoinHandle,
};

use rustix::process::{Pid, Signal, kill_process_group};

pub(crate) mod pipe;

use crate::{
    cancel::{Cancel, GroupGuard},
    redact,
};

/// How many lines of a child's stderr an error message quotes.
const TAIL_LINES: usize = 20;
/// Longest stderr line kept, in bytes; longer lines are cut.
const MAX_LINE: usize = 2000;

/// A child process failed to start or to finish cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The program could not be started at all.
    #[error("could not start `{program}`: {source}. Check that it is installed and on PATH")]
    Spawn {
        /// argv[0].
        program: String,
        /// Why exec failed.
        source: io::Error,
    },
    /// The program ran but failed.
    #[error("`{program}` {status}{}", format_tail(.stderr))]
    Failed {
        /// argv[0].
        program: String,
        /// "exited with code 1" or "was killed by signal 9".
        status: String,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// Waiting for the program failed.
    #[error("could not wait for `{program}`: {source}")]
    Wait {
        /// argv[0].
        program: String,
        /// The error from wait(2).
        source: io::Error,
    },
}

fn format_tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        " (it wrote nothing to stderr)".to_owned()
    } else {
        let mut out = String::from("; its stderr ends with:");
        for line in stderr.lines() {
            out.push_str("\n    ");
            out.push_str(line);
        }
        out
    }
}

/// Where a child's stderr lines go while it runs, besides the kept tail.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Echo {
    /// Logged at debug level: dump tools, whose stderr matters only on failure.
    Debug,
    /// Logged at info level: restore tools, whose output the operator follows.
    Info,
}

/// A running child in its own process group, with stderr drained.
#[derive(Debug)]
pub(crate) struct CheckedChild {
    child: Child,
    program: String,
    stderr: Option<JoinHandle<String>>,
    _group: GroupGuard,
}

impl CheckedChild {
    /// Starts `argv` (no shell) with the given stdin and stdout, stderr piped
    /// and drained, in a new process group registered with `cancel`.
    pub fn spawn<S: AsRef<OsStr>>(
        argv: &[S],
        stdin: Stdio,
        stdout: Stdio,
        env: &[(String, String)],
        echo: Echo,
        cancel: &Cancel,
    ) -> Result<Self, ChildError> {
        let program = argv
            .first()
            .map(|p| p.as_ref().to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut command = Command::new(argv.first().map(AsRef::as_ref).unwrap_or(OsStr::new("")));
        command
            .args(argv.iter().skip(1))
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        let mut child = command.spawn().map_err(|source| ChildError::Spawn {
            program: program.clone(),
            source,
        })?;
        let group = cancel.register_group(Pid::from_child(&child));
        let stderr = child.stderr.take().map(|pipe| {
            let name = program.clone();
            std::thread::spawn(move || drain_stderr(pipe, &name, echo))
        });
        Ok(Self {
            child,
            program,
            stderr,
            _group: group,
        })
    }

    /// The child's stdout, when it was spawned with `Stdio::piped()`.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The child's stdin, when it was spawned with `Stdio::piped()`.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// argv[0], for messages.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Kills the whole process group with SIGKILL and reaps the child,
    /// keeping the handle (see [`CheckedChild::kill`]).
    pub fn kill_group(&mut self) {
        let _ = kill_process_group(Pid::from_child(&self.child), Signal::KILL);
        let _ = self.child.wait();
    }

    /// Kills the whole process group with SIGKILL and reaps the child. Used
    /// before anything could let the child see a clean end of its input.
    pub fn kill(mut self) {
        self.kill_group();
        if let Some(handle) = self.stderr.take() {
            let _ = handle.join();
        }
    }

    /// Waits for the child and fails unless it exited with status 0.
    pub fn wait_checked(mut self) -> Result<(), ChildError> {
        let status = self.child.wait().map_err(|source| ChildError::Wait {
            program: self.program.clone(),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(ChildError::Failed {
                program: self.program.clone(),
                status: describe_status(status),
                stderr,
            })
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended abnormally".to_owned(),
    }
}

/// Reads stderr to its end, echoing lines to the log and keeping the tail.
fn drain_stderr(pipe: impl io::Read, program: &str, echo: Echo) -> String {
    let mut reader = BufReader::new(pipe);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        line.truncate(MAX_LINE);
        // A tool may print its connection URL, password and all.
        let text = redact::credentials(String::from_utf8_lossy(&line).trim_end()).into_owned();
        match echo {
            Echo::Debug => tracing::debug!(program, "{text}"),
            Echo::Info => tracing::info!(program, "{text}"),
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
    Vec::from(tail).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CheckedChild {
        CheckedChild::spawn(
            &["sh", "-c", script],
            Stdio::null(),
            Stdio::null(),
            &[],
            Echo::Debug,
            &Cancel::new(),
        )
        .unwrap()
    }

    #[test]
    fn a_failing_child_reports_its_code_and_stderr_tail() {
        let err = sh("echo first >&2; echo 'no such table' >&2; exit 3")
            .wait_checked()
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`sh` exited with code 3"), "{message}");
        assert!(message.contains("no such table"), "{message}");
    }

    #[test]
    fn the_tail_keeps_only_the_last_lines() {
        let err = sh("for i in $(seq 1 100); do echo line$i >&2; done; exit 1")
            .wait_checked()
            .unwrap_err();
        let ChildError::Failed { stderr, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(stderr.lines().count(), TAIL_LINES);
        assert!(stderr.ends_with("line100"));
        assert!(!stderr.contains("line80\n"));
    }

    #[test]
    fn the_tail_masks_passwords_in_urls() {
        let err = sh("echo 'cannot reach mysql://root:hunter2@db:3306/shop' >&2; exit 1")
            .wait_checked()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot reach mysql://***@db:3306/shop"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_killed_child_names_the_signal() {
        let err = sh("kill -9 $$").wait_checked().unwrap_err();
        assert!(err.to_string().contains("killed by signal 9"), "{err}");
    }

    #[test]
    fn a_missing_program_says_so() {
        let err = CheckedChild::spawn(
            &["sluice-no-such-program"],
            Stdio::null(),
            Stdio::null(),
            &[],
            Echo::Debug,
            &Cancel::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("could not start `sluice-no-such-program`")
        );
    }
}
