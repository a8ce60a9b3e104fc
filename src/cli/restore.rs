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
    restore::{self, RestoreError, Step, Target},
    store,
};

use super::{Context, IdentityArgs};

/// Restore a backup: each source to its configured target (a `files`
/// source to its directory, a `command` source into its `restore` command or
/// to stdout), or the one --source names to --into.
///
/// Nothing half-applies: every part is checked against the manifest's
/// SHA-256 before it is used; a directory is extracted into a staging
/// directory inside it and swapped in only after the whole stream verified;
/// a restore command's stdin is closed only after the whole stream verified,
/// and it is killed on any error.
///
/// Replacing something that exists needs --yes (or typing its name at a
/// terminal).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// Restore only this source
    #[arg(long, value_name = "NAME")]
    source: Option<String>,

    /// Restore into this directory instead of the configured one (one source)
    #[arg(long, value_name = "DIR")]
    into: Option<PathBuf>,

    /// Replace existing targets without asking
    #[arg(short, long)]
    yes: bool,

    #[command(flatten)]
    identity: IdentityArgs,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    let plan = context.set(&args.backup.set, Overrides::default())?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let identities =
        Arc::new(Identities::load(&args.identity.identities).map_err(sluice::Error::from)?);
    let manifest = catalog::find(store.as_ref(), &args.backup)
        .await
        .map_err(sluice::Error::from)?;
    let steps = restore::plan(
        &manifest,
        &plan,
        args.source.as_deref(),
        args.into.as_deref(),
    )
    .map_err(sluice::Error::from)?;
    if !args.yes {
        for step in steps.iter().filter(|s| s.is_destructive()) {
            confirm(step)?;
        }
    }
    let settings = restore::Settings {
        parallel_parts: plan.store.parallel_parts,
    };
    for step in &steps {
        tracing::info!(
            "restoring {} of {}@{} into {}",
            step.object.source,
            manifest.set,
            manifest.id,
            step.target
        );
        restore::run_step(
            Arc::clone(&store),
            &manifest,
            step,
            Arc::clone(&identities),
            &settings,
            cancel,
        )
        .await?;
        tracing::info!("restored {} into {}", step.object.source, step.target);
    }
    Ok(())
}

/// Asks the user to type the target's name, when stdin is a terminal;
/// otherwise (a script) `--yes` is required.
fn confirm(step: &Step) -> Result<(), sluice::Error> {
    let refuse = || {
        sluice::Error::from(RestoreError::NeedsConfirmation {
            target: step.target.to_string(),
        })
    };
    if !std::io::stdin().is_terminal() {
        return Err(refuse());
    }
    let expected = match &step.target {
        Target::Directory(p) => p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        _ => step.object.source.clone(),
    };
    eprint!(
        "Restoring `{}` into {} replaces what is there now.\nType `{expected}` to go on: ",
        step.object.source, step.target
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|_| refuse())?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(refuse())
    }
}
