//! `sluice fetch SET[@ID]`.

use std::{io::IsTerminal, path::PathBuf, sync::Arc};

use sluice::{
    Cancel,
    catalog::{self, Selector},
    config::Overrides,
    keys::Identities,
    restore::{self, RestoreError, Step, Target},
    store,
};

use super::{Context, IdentityArgs};

/// Write one object's plaintext to a file or stdout: the dump exactly as the
/// source produced it (a tar, a pg_dump archive, …).
///
/// With -o, the file appears only after the whole stream verified. On stdout
/// bytes flow as they are decoded and a non-zero exit means the stream was
/// incomplete; prefer `sluice restore` for anything that applies data.
/// Reads only; takes no lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// The source to fetch (needed when the backup has several)
    #[arg(long, value_name = "NAME")]
    source: Option<String>,

    /// Write to this new file (mode 0600) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

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
    let candidates: Vec<_> = manifest
        .objects
        .iter()
        .filter(|o| !o.anonymized && args.source.as_ref().is_none_or(|s| &o.source == s))
        .collect();
    let object = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] | [_, _, ..] => {
            let available: Vec<&str> = manifest.objects.iter().map(|o| o.source.as_str()).collect();
            let error = match &args.source {
                Some(name) => RestoreError::UnknownSource {
                    backup: format!("{}@{}", manifest.set, manifest.id),
                    name: name.clone(),
                    available: available.join(", "),
                },
                None => RestoreError::NoTarget {
                    name: available.join(", "),
                    hint: "the backup has several sources; pick one with --source NAME".to_owned(),
                },
            };
            return Err(sluice::Error::from(error).into());
        }
    };
    let target = match args.output {
        Some(path) => Target::File(path),
        None if std::io::stdout().is_terminal() => {
            anyhow::bail!(
                "refusing to write a backup's plaintext to a terminal; pass -o FILE or pipe the output"
            );
        }
        None => Target::Stdout,
    };
    let step = Step { object, target };
    let settings = restore::Settings {
        parallel_parts: plan.store.parallel_parts,
    };
    restore::run_step(store, &manifest, &step, identities, &settings, cancel).await?;
    Ok(())
}
