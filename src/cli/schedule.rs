//! `sluice schedule print|install SET`.

use std::{fs, path::PathBuf};

use anyhow::Context as _;
use sluice::{
    config::{ConfigError, Overrides, SetPlan},
    schedule::Cron,
};

use super::Context;

/// Run a set's backups from a systemd timer: `schedule` in the set (a
/// 5-field cron expression, in UTC or the set's `timezone`) becomes a
/// service and a timer with the exact `OnCalendar=` equivalent. An
/// expression with no exact equivalent is refused: cron runs when the day
/// of month OR the weekday matches, a timer needs both.
///
/// The timer catches up on a run missed while the machine was off
/// (Persistent=true) and spreads starts over 5 minutes; the service is
/// hardened (read-only system, private /tmp, no new privileges; only a
/// file:// store is writable) and reads secrets from
/// /etc/sluice/SET.env (PGPASSWORD=…, AWS_SECRET_ACCESS_KEY=…), if present.
/// Without systemd (in a container), `sluice daemon` runs the schedules.
///
///   sluice schedule print prod
///   sluice schedule install prod
///   systemctl daemon-reload && systemctl enable --now sluice-backup-prod.timer
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print the service and timer units
    Print {
        /// The set
        set: String,
    },
    /// Write the units into a directory (as root, /etc/systemd/system)
    Install {
        /// The set
        set: String,
        /// Where the units go
        #[arg(long, default_value = "/etc/systemd/system")]
        dir: PathBuf,
    },
}

pub fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let name = match &args.action {
        Action::Print { set } | Action::Install { set, .. } => set,
    };
    let plan = context.set(name, Overrides::default())?;
    let units = Units::for_set(context, &plan)?;
    match args.action {
        Action::Print { .. } => super::print(&format!(
            "# {}\n{}\n# {}\n{}",
            units.service_name, units.service, units.timer_name, units.timer
        )),
        Action::Install { dir, .. } => {
            if !dir.is_dir() {
                return Err(sluice::Error::from(ConfigError::Usage(format!(
                    "--dir `{}` is not a directory: create it first, or leave --dir out for /etc/systemd/system",
                    dir.display()
                )))
                .into());
            }
            for (file, text) in [
                (&units.service_name, &units.service),
                (&units.timer_name, &units.timer),
            ] {
                let path = dir.join(file);
                fs::write(&path, text).with_context(|| {
                    format!("could not write `{}` (writing to /etc/systemd/system needs root; or pass --dir)", path.display())
                })?;
            }
            super::print(&format!(
                "wrote {} and {} to {}; now run:\n  systemctl daemon-reload && systemctl enable --now {}\n",
                units.service_name,
                units.timer_name,
                dir.display(),
                units.timer_name
            ))
        }
    }
}

/// A set's systemd service and timer.
struct Units {
    service_name: String,
    service: String,
    timer_name: String,
    timer: String,
}

impl Units {
    fn for_set(context: &Context, plan: &SetPlan) -> anyhow::Result<Self> {
        let name = &plan.name;
        let Some(schedule) = &plan.schedule else {
            return Err(sluice::Error::from(ConfigError::Usage(format!(
                "set `{name}` has no `schedule`: add one to [sets.{name}], e.g. schedule = \"30 2 * * *\" (02:30 UTC every day)"
            )))
            .into());
        };
        let on_calendar = schedule
            .parse::<Cron>()
            .and_then(|cron| cron.on_calendar(plan.timezone.as_deref()))
            .map_err(|e| sluice::Error::from(ConfigError::Invalid(e.to_string())))?;
        let binary = std::env::current_exe().context("could not find the sluice binary")?;
        let config = match &context.config_path {
            Some(path) => format!(" --config {}", fs::canonicalize(path)?.display()),
            None => String::new(),
        };
        // Only what a backup writes: a file:// store, the metrics file's
        // directory (the file is replaced by a rename).
        let writable: Vec<String> = plan
            .store
            .url
            .strip_prefix("file://")
            .map(str::to_owned)
            .into_iter()
            .chain(
                plan.metrics_file
                    .as_deref()
                    .and_then(|file| file.parent())
                    .map(|dir| dir.display().to_string()),
            )
            .collect();
        let writable = if writable.is_empty() {
            String::new()
        } else {
            format!("ReadWritePaths={}\n", writable.join(" "))
        };
        let service_name = format!("sluice-backup-{name}.service");
        let service = format!(
            "[Unit]
Description=sluice backup of set {name}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={binary}{config} backup {name}
EnvironmentFile=-/etc/sluice/{name}.env
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
{writable}",
            binary = binary.display()
        );
        let timer_name = format!("sluice-backup-{name}.timer");
        let timer = format!(
            "[Unit]
Description=sluice backup of set {name} ({schedule})

[Timer]
OnCalendar={on_calendar}
Persistent=true
RandomizedDelaySec=5min

[Install]
WantedBy=timers.target
"
        );
        Ok(Self {
            service_name,
            service,
            timer_name,
            timer,
        })
    }
}
