//! Stopping a run cleanly: a signal handler fires a [`Cancel`], which kills
//! the child process groups a run registered, so a restore process never sees
//! a clean end of input it should not commit, and wakes the orchestrators, so
//! they abort uploads and remove staging before returning.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::sync::Notify;

/// A shared stop switch for one run. Cloning gives another handle to the same switch.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<Inner>);

#[derive(Default, Debug)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
    groups: Mutex<Vec<Pid>>,
}

impl Cancel {
    /// A switch that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run: kills every registered process group and wakes every
    /// [`Cancel::fired`] waiter. Firing twice is harmless.
    pub fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        for pid in self
            .0
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = kill_process_group(*pid, Signal::KILL);
        }
        self.0.notify.notify_waiters();
    }

    /// Whether [`Cancel::fire`] was called.
    pub fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Completes once the switch has fired.
    pub async fn fired(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_fired() {
                return;
            }
            notified.await;
        }
    }

    /// Remembers a child's process group so that firing kills it; the guard
    /// forgets it again when dropped (after the child was reaped).
    pub(crate) fn register_group(&self, pid: Pid) -> GroupGuard {
        self.0
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pid);
        if self.is_fired() {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        GroupGuard {
            cancel: self.clone(),
            pid,
        }
    }
}

/// Unregisters a process group from a [`Cancel`] when dropped.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    cancel: Cancel,
    pid: Pid,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let mut groups = self
            .cancel
            .0
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        groups.retain(|p| *p != self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fired_wakes_a_waiter_that_started_before_the_fire() {
        let cancel = Cancel::new();
        let waiter = tokio::spawn({
            let cancel = cancel.clone();
            async move { cancel.fired().await }
        });
        tokio::task::yield_now().await;
        assert!(!cancel.is_fired());
        cancel.fire();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke")
            .unwrap();
    }
}
