//! `sluice daemon [SET...]`: the sets' schedules, run in the foreground.
//!
//! Each backup runs as a child process, `sluice backup SET` from the same
//! binary with the daemon's config, store and log flags, so a crash or a
//! memory spike in one run never takes the daemon down, and a run behaves
//! exactly as one started by hand or by a timer (lease, hooks, metrics,
//! stall watchdog, clean stop on SIGTERM). The children run in their own
//! process groups: a Ctrl-C at a terminal reaches the daemon only, which
//! passes it on once.
//!
//! Test aid, not for users: `SLUICE_DAEMON_CLOCK_START=2026-01-01T02:29:57Z`
//! starts the daemon's clock at that instant; it then runs at real speed.
//! Only the choice of when to fire uses it.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use sluice::{
    config::{ConfigError, Overrides},
    schedule::{Cron, Timetable},
};
use tokio::{
    process::Command,
    signal::unix::{SignalKind, signal},
    task::JoinSet,
};

use super::Context;

/// Run the sets' schedules in the foreground, for containers.
///
/// Each set's `schedule` (a 5-field cron expression, in UTC or the set's
/// `timezone`) starts `sluice backup SET` as a child process, with the
/// daemon's config, store and log flags. A set has one run at a
/// time: a schedule that fires while the set's previous run still goes is
/// skipped, with a warning. Different sets may run at the same time. A
/// failed run is logged and the daemon goes on.
///
/// Without SET, every set with a `schedule` runs. The schedules follow
/// cron's rules, including "day of month OR weekday" when both are
/// restricted. Where daylight saving time skips an hour, a time in it runs
/// when the clocks jump; where an hour repeats, a time in it runs once.
///
/// SIGTERM or Ctrl-C stops scheduling and passes SIGTERM to the running
/// backups, which abort cleanly (no backup, no temporary objects, the lease
/// given back); then the daemon exits 0. A second signal kills them at once
/// and exits 1.
///
///   sluice --config /etc/sluice/sluice.toml daemon
///   sluice daemon prod staging
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The sets to run [default: every set with a `schedule`]
    #[arg(value_name = "SET")]
    sets: Vec<String>,
}

/// The clock that decides when to fire: the system's, shifted by
/// SLUICE_DAEMON_CLOCK_START for tests.
const CLOCK_START: &str = "SLUICE_DAEMON_CLOCK_START";

/// The longest the daemon sleeps before it reads the wall clock again, so
/// a clock that is set or a machine that was suspended fires on time.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub async fn run(context: &Context, args: Args, log_flags: Vec<String>) -> anyhow::Result<()> {
    let schedules = scheduled_sets(context, &args.sets)?;
    let offset = clock_offset()?;
    let now = || Timestamp::now() + offset;
    let mut timetable = Timetable::new(schedules, now())
        .map_err(|e| sluice::Error::from(ConfigError::Invalid(e.to_string())))?;
    let launcher = Launcher::new(context, log_flags)?;
    let mut signals = Signals::install()?;
    for (set, next) in timetable.upcoming() {
        tracing::info!("set `{set}`: next backup at {next}");
    }

    let mut running = Running::default();
    loop {
        for fire in timetable.due(now()) {
            let (set, next) = (&fire.set, &fire.next);
            if running.pids.contains_key(set) {
                tracing::warn!(
                    "set `{set}`: skipped the backup due at {}: the previous one is still running; next backup at {next}",
                    fire.due
                );
                continue;
            }
            match launcher.start(set) {
                Ok(child) => {
                    let pid = running.add(set, child);
                    tracing::info!(
                        "set `{set}`: backup started (pid {pid}); next backup at {next}"
                    );
                }
                Err(e) => tracing::error!(
                    "set `{set}`: could not start the backup: {e:#}; next backup at {next}"
                ),
            }
        }
        let wait = timetable.next_fire().map_or(MAX_SLEEP, |at| {
            Duration::try_from(at.duration_since(now()))
                .unwrap_or_default()
                .min(MAX_SLEEP)
        });
        tokio::select! {
            () = signals.recv() => break,
            Some(done) = running.runs.join_next() => running.finished(done),
            () = tokio::time::sleep(wait) => {}
        }
    }

    running.stop(&mut signals).await
}

/// The sets to run with their schedules: those named, or every set with a
/// `schedule`.
fn scheduled_sets(
    context: &Context,
    names: &[String],
) -> Result<Vec<(String, Cron, TimeZone)>, sluice::Error> {
    let usage = |message: String| sluice::Error::from(ConfigError::Usage(message));
    let invalid = |message: String| sluice::Error::from(ConfigError::Invalid(message));
    let Some(config_path) = &context.config_path else {
        return Err(usage(
            "no config file: sluice daemon runs the `schedule` of the sets in the config; pass --config FILE (or SLUICE_CONFIG), or write ./sluice.toml or /etc/sluice/sluice.toml".to_owned(),
        ));
    };
    let names: Vec<String> = if names.is_empty() {
        let all: Vec<String> = context
            .config
            .sets
            .iter()
            .filter(|(_, set)| set.schedule.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        if all.is_empty() {
            return Err(usage(format!(
                "no set in `{}` has a `schedule`: add one to a [sets.NAME], e.g. schedule = \"30 2 * * *\" (02:30 UTC every day)",
                config_path.display()
            )));
        }
        all
    } else {
        names.to_vec()
    };
    let known: Vec<&str> = context.config.set_names().collect();
    names
        .into_iter()
        .map(|name| {
            let plan = context.set(
                &name,
                Overrides {
                    backing_up: true,
                    ..Overrides::default()
                },
            )?;
            if !plan.configured {
                return Err(usage(format!(
                    "set `{name}` is not in `{}` (which has: {})",
                    config_path.display(),
                    known.join(", ")
                )));
            }
            let Some(schedule) = &plan.schedule else {
                return Err(usage(format!(
                    "set `{name}` has no `schedule`: add one to [sets.{name}], e.g. schedule = \"30 2 * * *\" (02:30 UTC every day)"
                )));
            };
            plan.require_sources(&known)?;
            let cron: Cron = schedule
                .parse()
                .map_err(|e| invalid(format!("set `{name}`: {e}")))?;
            let tz = match &plan.timezone {
                None => TimeZone::UTC,
                Some(tz) => TimeZone::get(tz).map_err(|e| {
                    invalid(format!(
                        "set `{name}`: unknown time zone `{tz}` ({e}): use an IANA name such as \"Europe/Berlin\", from the system's time zone database (install tzdata; TZDIR names another directory)"
                    ))
                })?,
            };
            Ok((name, cron, tz))
        })
        .collect()
}

/// How far the daemon's clock is ahead of the system's: zero, unless
/// SLUICE_DAEMON_CLOCK_START is set.
fn clock_offset() -> anyhow::Result<SignedDuration> {
    let Ok(start) = std::env::var(CLOCK_START) else {
        return Ok(SignedDuration::ZERO);
    };
    let start: Timestamp = start
        .parse()
        .with_context(|| format!("{CLOCK_START} `{start}` is not an RFC 3339 time"))?;
    Ok(start.duration_since(Timestamp::now()))
}

/// Starts `sluice backup SET` children.
struct Launcher {
    binary: PathBuf,
    config: PathBuf,
    store: Option<String>,
    log_flags: Vec<String>,
}

impl Launcher {
    fn new(context: &Context, log_flags: Vec<String>) -> anyhow::Result<Self> {
        let config = context
            .config_path
            .clone()
            .context("the daemon needs a config file")?;
        Ok(Self {
            binary: std::env::current_exe().context("could not find the sluice binary")?,
            // Absolute, so a child reads the same file wherever it runs.
            config: std::fs::canonicalize(&config).unwrap_or(config),
            store: context.store.clone(),
            log_flags,
        })
    }

    /// Starts a backup of `set` in its own process group. The config and
    /// store go through the environment, which `ps` does not show.
    fn start(&self, set: &str) -> std::io::Result<tokio::process::Child> {
        let mut command = Command::new(&self.binary);
        command
            .args(&self.log_flags)
            .args(["backup", set])
            .env("SLUICE_CONFIG", &self.config)
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(store) = &self.store {
            command.env("SLUICE_STORE", store);
        }
        command.spawn()
    }
}

/// The backups running, one per set at most.
#[derive(Default)]
struct Running {
    pids: BTreeMap<String, Pid>,
    runs: JoinSet<(String, std::io::Result<std::process::ExitStatus>)>,
}

type Finished = Result<(String, std::io::Result<std::process::ExitStatus>), tokio::task::JoinError>;

impl Running {
    /// Watches a started child; its pid, for the log.
    fn add(&mut self, set: &str, mut child: tokio::process::Child) -> u32 {
        let id = child.id().unwrap_or_default();
        if let Some(pid) = i32::try_from(id).ok().and_then(Pid::from_raw) {
            self.pids.insert(set.to_owned(), pid);
        }
        let set = set.to_owned();
        self.runs.spawn(async move {
            let status = child.wait().await;
            (set, status)
        });
        id
    }

    /// Logs how a child ended and forgets it.
    fn finished(&mut self, done: Finished) {
        let (set, status) = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::error!("a backup's watcher failed: {e}");
                return;
            }
        };
        self.pids.remove(&set);
        match status {
            Ok(status) if status.success() => tracing::info!("set `{set}`: backup done"),
            Ok(status) if status.code() == Some(3) => tracing::warn!(
                "set `{set}`: backup skipped: another run holds the set's lease (see above)"
            ),
            Ok(status) => tracing::error!("set `{set}`: backup failed ({status}; see above)"),
            Err(e) => tracing::error!("set `{set}`: could not wait for the backup: {e}"),
        }
    }

    /// Passes SIGTERM to the running backups and waits for them to stop;
    /// on another signal, kills them and fails.
    async fn stop(&mut self, signals: &mut Signals) -> anyhow::Result<()> {
        if self.runs.is_empty() {
            tracing::info!("stopped");
            return Ok(());
        }
        tracing::warn!(
            "stopping: the running backups ({}) abort and clean up first (signal again to kill them)",
            self.sets()
        );
        for pid in self.pids.values() {
            let _ = kill_process(*pid, Signal::TERM);
        }
        loop {
            tokio::select! {
                done = self.runs.join_next() => match done {
                    Some(done) => self.finished(done),
                    None => {
                        tracing::info!("stopped");
                        return Ok(());
                    }
                },
                () = signals.recv() => break,
            }
        }
        let sets = self.sets();
        for pid in self.pids.values() {
            let _ = kill_process_group(*pid, Signal::KILL);
        }
        while let Some(done) = self.runs.join_next().await {
            self.finished(done);
        }
        anyhow::bail!(
            "stopped by a second signal, killing the backups of {sets}: they may have left temporary objects, which `sluice gc SET` removes; their leases expire on their own (or `sluice lock break SET`)"
        )
    }

    /// The running sets, for messages.
    fn sets(&self) -> String {
        let names: Vec<String> = self.pids.keys().map(|s| format!("`{s}`")).collect();
        names.join(", ")
    }
}

/// SIGINT, SIGTERM and SIGHUP.
struct Signals([tokio::signal::unix::Signal; 3]);

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let install = |kind| signal(kind).context("could not install the signal handlers");
        Ok(Self([
            install(SignalKind::interrupt())?,
            install(SignalKind::terminate())?,
            install(SignalKind::hangup())?,
        ]))
    }

    /// Completes when one of them arrives.
    async fn recv(&mut self) {
        let [int, term, hup] = &mut self.0;
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
}
