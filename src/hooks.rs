//! `before` and `after` hooks around a backup: argv commands (no shell)
//! with a time limit each. A hook's stdout and stderr go to sluice's
//! stderr; its process group is killed when it runs out of time or the run
//! is stopped.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    Cancel,
    child::{CheckedChild, ChildError, Echo},
};

/// A hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// It exited non-zero or could not start.
    #[error("the {which} hook failed: {source}")]
    Failed {
        /// `before` or `after`.
        which: &'static str,
        /// What the process did.
        source: ChildError,
    },
    /// It ran out of time and was killed.
    #[error(
        "the {which} hook `{program}` did not finish within {limit:?} and was killed; make it faster or raise `hook-timeout` in the set"
    )]
    TimedOut {
        /// `before` or `after`.
        which: &'static str,
        /// argv[0].
        program: String,
        /// The time limit.
        limit: Duration,
    },
}

/// Runs the `which` hook `argv` with `env` added, killing it after `limit`
/// or when `cancel` fires. Blocking.
pub fn run(
    which: &'static str,
    argv: &[String],
    env: &[(String, String)],
    limit: Duration,
    cancel: &Cancel,
) -> Result<(), HookError> {
    let failed = |source| HookError::Failed { which, source };
    let own = Cancel::new();
    let child = CheckedChild::spawn(
        argv,
        Stdio::null(),
        Stdio::from(std::io::stderr()),
        env,
        Echo::Info,
        &own,
    )
    .map_err(failed)?;
    let program = child.program().to_owned();
    let (done, timed_out) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let watcher = {
        let (done, timed_out, cancel) = (Arc::clone(&done), Arc::clone(&timed_out), cancel.clone());
        let deadline = Instant::now() + limit;
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if Instant::now() >= deadline {
                    timed_out.store(true, Ordering::SeqCst);
                    own.fire();
                    return;
                }
                if cancel.is_fired() {
                    own.fire();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let waited = child.wait_checked();
    done.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    if timed_out.load(Ordering::SeqCst) {
        return Err(HookError::TimedOut {
            which,
            program,
            limit,
        });
    }
    waited.map_err(failed)
}
