//! `sluice lock status|break SET`.

use sluice::{config::Overrides, lease, store};

use super::Context;

/// See or remove a set's lease: the lock that keeps two runs (backup,
/// restore, prune, gc) from working on a set at once. A run renews its
/// lease while it works and gives it back when it ends (marking it
/// released); a killed run's lease lapses by itself after `lease-ttl`
/// (under [store], 5 minutes by default).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Who holds the set's lease, since when, and until when
    Status {
        /// The set
        set: String,
    },
    /// Remove the set's lease, whoever holds it. Only when its holder is
    /// surely gone: a run that still works would then commit nothing
    /// (it notices before writing its manifest) and fail
    Break {
        /// The set
        set: String,
    },
}

pub async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let name = match &args.action {
        Action::Status { set } | Action::Break { set } => set,
    };
    let plan = context.set(name, Overrides::default())?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let holder = lease::status(store.as_ref(), &plan.name)
        .await
        .map_err(sluice::Error::from)?;
    match (&args.action, holder) {
        (Action::Status { .. }, None) => super::print(&format!("set `{name}` is free\n")),
        (Action::Status { .. }, Some(h)) => {
            let state = if h.expires > jiff::Timestamp::now() {
                "held"
            } else {
                "expired (the next run takes it over)"
            };
            let mut text = format!(
                "set `{name}`: lease {state}\n  holder   {h}\n  expires  {}\n",
                h.expires
            );
            if holder_is_gone(&h) {
                text.push_str(&format!(
                    "  note     process {} no longer runs on this host: the lease lapses at its expiry, or `sluice lock break {name}` frees the set now\n",
                    h.pid
                ));
            }
            super::print(&text)
        }
        (Action::Break { .. }, None) => super::print(&format!("set `{name}` has no lease\n")),
        (Action::Break { .. }, Some(h)) => {
            lease::break_lease(store.as_ref(), &plan.name)
                .await
                .map_err(sluice::Error::from)?;
            super::print(&format!("removed the lease of set `{name}` held by {h}\n"))
        }
    }
}

/// Whether the holder ran on this host and its process is gone.
fn holder_is_gone(holder: &lease::Holder) -> bool {
    let this_host = rustix::system::uname().nodename().to_string_lossy() == holder.host.as_str();
    let pid = i32::try_from(holder.pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    this_host
        && pid.is_some_and(|pid| {
            rustix::process::test_kill_process(pid).is_err_and(|e| e == rustix::io::Errno::SRCH)
        })
}
