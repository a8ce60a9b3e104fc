//! `sluice backup SET`.

use std::fmt::Write as _;

use sluice::{
    Cancel, backup,
    catalog::Manifest,
    config::{ConfigError, Overrides, SetPlan},
    hooks, metrics,
    notify::{self, Notifier},
    source::Source,
};

use super::Context;

/// Back up a set: stream each source through zstd and age into the store,
/// then write the manifest that commits the backup.
///
/// Without a config file, flags describe the set:
///   sluice backup docs --store file:///var/backups/sluice \
///       --recipient age1… --source docs=files:/srv/docs
///
/// Parts are 16 MiB by default (`part-size` under [store]) and a store takes
/// at most 10,000 parts. Directories and databases report their size first,
/// and parts grow to fit twice that; with no size hint (a `command` source)
/// the 16 MiB default caps an object at about 156 GiB: raise `part-size`.
/// A run that reads and stores nothing for `stall-timeout` (10m) fails.
///
/// The manifest is signed with the host's signing key (`signing-key` under
/// [keys], SLUICE_SIGNING_KEY_FILE or --signing-key; make one with
/// `sluice keygen --signing`), which restores check against their
/// trusted-signers. Without a key the backup is unsigned, with a warning,
/// and restoring it needs --allow-unsigned; a set that lists trusted-signers
/// refuses to back up without one of them.
///
/// A set with `retention` is pruned after each successful backup (see
/// `sluice prune --help`), unless `prune-after-backup = false` (for a
/// backup host whose credentials may not delete: a separate pruner runs
/// `sluice prune`). The new backup is never removed; if the prune fails,
/// the backup stays committed, its SET@ID is still printed, and the exit
/// status is 1.
///
/// A set with `notify` tells monitors when the backup starts and how it
/// ended (healthchecks-style pings and a JSON webhook). A notification that
/// fails is retried and logged, and never changes the exit status.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The set: a [sets.NAME] of the config, or any name with --source
    set: String,

    /// Back up this instead of the configured sources (repeatable): NAME=files:DIR, NAME=postgres:DB (or a postgres:// URL), NAME=mysql:DB (or a mysql:// URL), or NAME=command:ARGV (split by shell rules; no shell runs). Keep passwords out of it: use PGPASSWORD, option files or a config with ${VAR}

    #[arg(long = "source", value_name = "NAME=KIND:ARG")]
    sources: Vec<String>,

    /// Encrypt to this public key (age1…, ssh-ed25519 …, ssh-rsa …) instead of the configured recipients (repeatable)
    #[arg(short = 'r', long = "recipient", value_name = "KEY")]
    recipients: Vec<String>,

    /// Sign the manifest with this key (from `sluice keygen --signing`) instead of the configured signing-key
    #[arg(long, env = "SLUICE_SIGNING_KEY_FILE", value_name = "FILE")]
    signing_key: Option<std::path::PathBuf>,

    /// A note kept with the backup and shown by `list`, e.g. "before the v2 migration"
    #[arg(long)]
    note: Option<String>,

    /// Print the manifest as JSON instead of SET@ID
    #[arg(long)]
    json: bool,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    // Parsed here rather than by clap, whose errors would repeat the value
    // (and a password in a URL with it).
    let sources = args
        .sources
        .iter()
        .map(|flag| Source::from_flag(flag))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sluice::Error::from(ConfigError::Usage(format!("--source {e}"))))?;
    let set = context.set(
        &args.set,
        Overrides {
            recipients: args.recipients,
            sources,
            signing_key: args.signing_key,
            backing_up: true,
            ..Overrides::default()
        },
    )?;
    let known: Vec<&str> = context.config.set_names().collect();
    set.require_sources(&known).map_err(sluice::Error::from)?;
    let (note, json, set) = (args.note, args.json, &set);
    let notifier = set.notify.as_ref().map(|n| Notifier::start(n, &set.name));
    // The backup, once committed: the notifications name it even when
    // pruning or the after hook fails afterwards.
    let mut committed = None;
    let committed_slot = &mut committed;
    let result = super::with_lease(set, "backup", |lease| async move {
        let started = std::time::Instant::now();
        let outcome = match hook(set, "before", &set.before, &[], cancel).await {
            Err(e) => Err(anyhow::Error::from(e).context("the dump was skipped")),
            Ok(()) => {
                let options = backup::Options {
                    lease: Some(lease),
                    note,
                    ..backup::Options::default()
                };
                let bars = super::progress::Display::start(&options.meter);
                let made = backup::run(set, &options, cancel).await;
                drop(bars);
                match made {
                    Ok(manifest) => {
                        *committed_slot = Some(manifest.clone());
                        report(set, &manifest, json, cancel)
                            .await
                            .map(|()| manifest)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        };
        let made = outcome.as_ref().ok().map(|m| m.id.to_string());
        let after_failed = run_after(set, made.as_deref()).await;
        let mut metrics_failed = false;
        if let Some(path) = &set.metrics_file {
            let run = metrics::Run {
                set: &set.name,
                finished: jiff::Timestamp::now(),
                duration: started.elapsed(),
                manifest: outcome.as_ref().ok(),
            };
            if let Err(e) = metrics::write(path, &run) {
                tracing::error!("could not write the metrics file `{}`: {e}", path.display());
                metrics_failed = true;
            }
        }
        // A backup whose monitoring did not hear of it must not look fine.
        let failed_after = match (after_failed, metrics_failed) {
            (false, false) => None,
            (true, false) => Some("the after hook failed"),
            (false, true) => Some("the metrics file could not be written"),
            (true, true) => Some("the after hook failed and the metrics file could not be written"),
        };
        match (outcome, failed_after) {
            (Err(e), _) => Err(e),
            (Ok(m), Some(what)) => Err(anyhow::anyhow!(
                "backup `{}@{}` is committed, but {what} (see above)",
                m.set,
                m.id
            )),
            (Ok(_), None) => Ok(()),
        }
    })
    .await;
    if let Some(notifier) = notifier {
        notify_end(notifier, &result, committed.as_ref(), cancel).await;
    }
    result
}

/// Sends the end notifications: the outcome matches sluice's exit status.
async fn notify_end(
    notifier: Notifier,
    result: &anyhow::Result<()>,
    committed: Option<&Manifest>,
    cancel: &Cancel,
) {
    let (outcome, error) = match result {
        Ok(()) => (notify::Outcome::Success, None),
        // As in main: a reader of the output that went away is no failure.
        Err(e) if e.is::<super::StdoutClosed>() => (notify::Outcome::Success, None),
        Err(e) if cancel.is_fired() => (notify::Outcome::Cancelled, Some(crate::describe(e))),
        Err(e) => (notify::Outcome::Failure, Some(crate::describe(e))),
    };
    let end = notify::End {
        outcome,
        manifest: committed,
        error: error.as_deref(),
    };
    notifier.finish(&end).await;
}

/// Runs one hook of the set, if it has one, on a blocking thread.
async fn hook(
    set: &SetPlan,
    which: &'static str,
    argv: &[String],
    env: &[(String, String)],
    cancel: &Cancel,
) -> Result<(), hooks::HookError> {
    if argv.is_empty() {
        return Ok(());
    }
    let (argv, env, limit, cancel) = (
        argv.to_vec(),
        env.to_vec(),
        set.hook_timeout,
        cancel.clone(),
    );
    tokio::task::spawn_blocking(move || hooks::run(which, &argv, &env, limit, &cancel))
        .await
        .expect("hook runner panicked")
}

/// Runs the `after` hook with the outcome in its environment; says whether
/// it failed (its error is logged).
async fn run_after(set: &SetPlan, made: Option<&str>) -> bool {
    let mut env = vec![
        (
            "SLUICE_OUTCOME".to_owned(),
            if made.is_some() { "success" } else { "failure" }.to_owned(),
        ),
        ("SLUICE_SET".to_owned(), set.name.clone()),
    ];
    if let Some(id) = made {
        env.push(("SLUICE_BACKUP_ID".to_owned(), id.to_owned()));
    }
    // Not stopped by the run's Ctrl-C: it is what reports the outcome (its
    // time limit still holds).
    match hook(set, "after", &set.after, &env, &Cancel::new()).await {
        Ok(()) => false,
        Err(e) => {
            tracing::error!("{e}");
            true
        }
    }
}

/// Prints the backup, then prunes the set when it has retention (under
/// the backup's lease).
async fn report(
    set: &SetPlan,
    manifest: &Manifest,
    json: bool,
    cancel: &Cancel,
) -> anyhow::Result<()> {
    let mut out = String::new();
    if json {
        out.push_str(&serde_json::to_string_pretty(&manifest.to_stored_json())?);
        writeln!(out)?;
    } else {
        writeln!(out, "{}@{}", manifest.set, manifest.id)?;
    }
    super::print(&out)?;
    if set.retention.is_some() && set.prune_after_backup {
        super::prune::after_backup(set, &manifest.id, cancel)
            .await
            .map_err(|e| {
                let hint = if access_denied(&e) {
                    format!(
                        " (if this host runs with backup-only credentials, which may not delete, set `prune-after-backup = false` under [sets.{}] and run `sluice prune {}` with the pruner's credentials: see README, \"Least privilege\")",
                        set.name, set.name
                    )
                } else {
                    String::new()
                };
                e.context(format!(
                    "backup `{}@{}` is committed, but pruning the set afterwards failed{hint}",
                    manifest.set, manifest.id
                ))
            })?;
    }
    Ok(())
}

/// Whether an error is S3 refusing the credentials.
fn access_denied(e: &anyhow::Error) -> bool {
    use sluice::{catalog::CatalogError, store::StoreError};
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<sluice::Error>(),
            Some(
                sluice::Error::Store(StoreError::AccessDenied { .. })
                    | sluice::Error::Catalog(CatalogError::Store(StoreError::AccessDenied { .. }))
            )
        )
    })
}
