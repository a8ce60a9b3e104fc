//! `sluice restore SET[@ID]`.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::PathBuf,
    sync::Arc,
};

use sluice::{
    Cancel,
    catalog::{self, Selector},
    config::Overrides,
    keys::Identities,
    progress::Meter,
    restore::{self, RestoreError, Step},
    store,
};

use super::{Context, IdentityArgs, SignatureArgs};

/// Restore a backup: each source to its configured target (a `files`
/// source to its directory, a `command` source into its `restore` command or
/// to stdout), or the one --source names to --into.
///
/// Nothing half-applies: every part is checked against the manifest's
/// SHA-256 before it is used; a directory is extracted into a staging
/// directory inside it and swapped in only after the whole stream verified;
/// a restore command's stdin is closed only after the whole stream verified,
/// and it is killed on any error. With several sources, every object after
/// the first is read through all of these checks before the first target
/// is replaced, so a damaged one leaves every target as it was.
///
/// Replacing something that exists needs --yes (or typing its name at a
/// terminal).
///
/// Before anything else, the manifest's signature is checked against the
/// set's trusted-signers (or --trusted-signer): an unsigned backup, or one
/// another key signed, is refused unless --allow-unsigned is given, and an
/// altered one always is.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// Restore only this source
    #[arg(long, value_name = "NAME")]
    source: Option<String>,

    /// Restore into this instead of the configured target (one source): a directory, or a database as postgres://…/DB, mysql://…/DB or just its name
    #[arg(long, value_name = "TARGET")]
    into: Option<PathBuf>,

    /// Replace existing targets without asking
    #[arg(short, long)]
    yes: bool,

    /// MariaDB/MySQL: encrypt the safety backup of the replaced database to this key instead of the configured recipients (repeatable)
    #[arg(short = 'r', long = "recipient", value_name = "KEY")]
    recipients: Vec<String>,

    /// MariaDB/MySQL: sign the safety backup of the replaced database with this key instead of the configured signing-key (without one it is unsigned)
    #[arg(long, env = "SLUICE_SIGNING_KEY_FILE", value_name = "FILE")]
    signing_key: Option<PathBuf>,

    /// PostgreSQL: objects belong to the restoring role (pg_restore --no-owner), for another environment
    #[arg(long)]
    no_owner: bool,

    /// PostgreSQL: skip the source's GRANTs (pg_restore --no-privileges)
    #[arg(long)]
    no_privileges: bool,

    /// PostgreSQL: restore into the existing database with pg_restore --clean --if-exists --single-transaction instead of swapping in a new one (for those who cannot rename databases)
    #[arg(long, conflicts_with = "drop_old")]
    in_place: bool,

    /// PostgreSQL: drop the replaced database after the swap instead of keeping it as <db>_sluice_previous
    #[arg(long)]
    drop_old: bool,

    #[command(flatten)]
    identity: IdentityArgs,

    #[command(flatten)]
    signatures: SignatureArgs,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    let plan = context.set(
        &args.backup.set,
        Overrides {
            recipients: args.recipients.clone(),
            signing_key: args.signing_key.clone(),
            ..args.signatures.overrides()
        },
    )?;
    let policy = args.signatures.policy(&plan)?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let identities =
        Arc::new(Identities::load(&args.identity.identities).map_err(sluice::Error::from)?);
    let manifest = catalog::find(store.as_ref(), &args.backup)
        .await
        .map_err(sluice::Error::from)?;
    policy.check(&manifest).map_err(sluice::Error::from)?;
    let steps = restore::plan(
        &manifest,
        &plan,
        args.source.as_deref(),
        args.into.as_deref(),
        false,
    )
    .map_err(sluice::Error::from)?;
    if !args.yes {
        let mut destructive = Vec::new();
        for step in &steps {
            if step.is_destructive().map_err(sluice::Error::from)? {
                destructive.push(step);
            }
        }
        confirm(&destructive)?;
    }
    let settings = restore::Settings {
        parallel_parts: plan.store.parallel_parts,
        postgres: restore::postgres::Options {
            no_owner: args.no_owner,
            no_privileges: args.no_privileges,
            drop_old: args.drop_old,
            in_place: args.in_place,
        },
        meter: Meter::default(),
        verified: Default::default(),
    };
    let (store, manifest, steps, identities, settings, plan) =
        (&store, &manifest, &steps, &identities, &settings, &plan);
    super::with_lease(plan, "restore", |_| async move {
        let _bars = super::progress::Display::start(&settings.meter);
        restore_steps(store, manifest, steps, identities, settings, plan, cancel).await
    })
    .await
}

/// Restores each step in turn; stops at the first failure, saying what
/// was and was not restored.
async fn restore_steps(
    store: &Arc<dyn sluice::store::Store>,
    manifest: &sluice::catalog::Manifest,
    steps: &[Step],
    identities: &Arc<Identities>,
    settings: &restore::Settings,
    plan: &sluice::config::SetPlan,
    cancel: &Cancel,
) -> anyhow::Result<()> {
    // Each target is replaced whole or not at all, but a set's targets are
    // replaced one after another: prove every object after the first sound
    // before the first target changes, so that a damaged one cannot leave
    // the set half-restored. (The first proves itself as it is restored.)
    let mut settings = settings.clone();
    if let [_, later @ ..] = steps
        && !later.is_empty()
    {
        let names: Vec<&str> = later.iter().map(|s| s.object.name.as_str()).collect();
        tracing::info!(
            "checking {} before replacing anything, so that the set restores whole or not at all",
            names.join(", ")
        );
        for step in later {
            restore::verify(
                Arc::clone(store),
                manifest,
                &step.object,
                Arc::clone(identities),
                &settings,
                cancel,
            )
            .await
            .map_err(|e| anyhow::Error::from(e).context("nothing was restored"))?;
            settings.verified.insert(step.object.name.clone());
        }
    }
    let mut done = Vec::new();
    for step in steps {
        tracing::info!(
            "restoring {} of {}@{} into {}",
            step.object.source,
            manifest.set,
            manifest.id,
            step.target
        );
        let restored = restore::run_step(
            Arc::clone(store),
            manifest,
            step,
            Arc::clone(identities),
            &settings,
            Some(plan),
            cancel,
        )
        .await;
        if let Err(e) = restored {
            if !done.is_empty() {
                let rest: Vec<&str> = steps[done.len()..]
                    .iter()
                    .map(|s| s.object.name.as_str())
                    .collect();
                tracing::error!(
                    "the restore stopped part-way: restored {}; not restored: {}",
                    done.join(", "),
                    rest.join(", ")
                );
            }
            return Err(e.into());
        }
        tracing::info!("restored {} into {}", step.object.source, step.target);
        done.push(format!("{} into {}", step.object.name, step.target));
    }
    Ok(())
}

/// Asks the user to type each target's name, when stdin is a terminal;
/// otherwise (a script) `--yes` is required, and the refusal names every
/// target that would be replaced.
pub(super) fn confirm(steps: &[&Step]) -> Result<(), sluice::Error> {
    if steps.is_empty() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        let targets: Vec<String> = steps.iter().map(|s| s.target.to_string()).collect();
        return Err(RestoreError::NeedsConfirmation {
            target: targets.join(" and "),
        }
        .into());
    }
    for step in steps {
        let expected = step.confirmation_name();
        eprint!(
            "Restoring `{}` into {} replaces what is there now.\nType `{expected}` to go on: ",
            step.object.source, step.target
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        if read.is_err() || answer.trim() != expected {
            return Err(RestoreError::NotConfirmed {
                typed: answer.trim().to_owned(),
                expected,
            }
            .into());
        }
    }
    Ok(())
}
