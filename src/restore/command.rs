//! Restoring into a command's stdin (`psql`, `mongorestore`, any argv).
//!
//! The command's stdin is closed only after the whole stream verified; on any
//! error its process group is killed first, so it never sees a clean end of
//! a broken stream and never commits half a restore.

use std::{
    io::{self, Read, Write},
    process::{ChildStdin, Stdio},
};

use super::RestoreError;
use crate::{
    Cancel,
    child::{CheckedChild, Echo, pipe::PacedWriter},
};

/// A command that received the whole verified stream, its stdin still open.
#[derive(Debug)]
pub(crate) struct Fed {
    child: CheckedChild,
    stdin: ChildStdin,
}

/// Starts `argv` and copies `reader` into its stdin, without closing it.
/// On any error the command is killed before this returns.
pub(crate) fn feed(
    reader: &mut dyn Read,
    argv: &[String],
    cancel: &Cancel,
) -> Result<Fed, RestoreError> {
    feed_with_env(reader, argv, &[], Stdio::inherit(), cancel)
}

/// [`feed`], with extra environment for the command (a password) and its
/// stdout going to `stdout` (a database client's query results are noise
/// on sluice's stdout, which is for results).
pub(crate) fn feed_with_env(
    reader: &mut dyn Read,
    argv: &[String],
    env: &[(String, String)],
    stdout: Stdio,
    cancel: &Cancel,
) -> Result<Fed, RestoreError> {
    let mut child = CheckedChild::spawn(argv, Stdio::piped(), stdout, env, Echo::Info, cancel)?;
    let mut stdin = PacedWriter::new(child.take_stdin().expect("stdin is piped"), child.program());
    match copy(reader, &mut stdin) {
        Ok(()) => Ok(Fed {
            child,
            stdin: stdin.into_inner(),
        }),
        Err(Failure::Write(source)) => {
            // The command stopped reading: its exit status says why.
            drop(stdin);
            match child.wait_checked() {
                Err(e) => Err(e.into()),
                Ok(()) => Err(RestoreError::Io {
                    op: "feed the whole backup to",
                    path: argv[0].clone().into(),
                    source,
                }),
            }
        }
        Err(Failure::Read(e)) => {
            child.kill();
            drop(stdin);
            Err(RestoreError::Archive { source: e })
        }
    }
}

impl Fed {
    /// Closes stdin (the end of a verified stream) and waits for success.
    pub(crate) fn commit(self) -> Result<(), RestoreError> {
        drop(self.stdin);
        Ok(self.child.wait_checked()?)
    }

    /// Kills the command before its stdin closes.
    pub(crate) fn discard(self) {
        self.child.kill();
        drop(self.stdin);
    }
}

enum Failure {
    Read(io::Error),
    Write(io::Error),
}

fn copy(reader: &mut dyn Read, out: &mut dyn Write) -> Result<(), Failure> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(Failure::Write)?;
    }
}
