//! `sluice backup SET`.

use std::io::Write;

use sluice::{Cancel, backup, config::Overrides, source::Source};

use super::Context;

/// Back up a set: stream each source through zstd and age into the store,
/// then write the manifest that commits the backup.
///
/// Without a config file, flags describe the set:
///   sluice backup docs --store file:///var/backups/sluice \
///       --recipient age1… --source docs=files:/srv/docs
///
/// Parts are 16 MiB by default (`part-size` under [store]); a store takes at
/// most 10,000 parts, so an object is capped at about 156 GiB unless you
/// raise `part-size`.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The set: a [sets.NAME] of the config, or any name with --source
    set: String,

    /// Back up this instead of the configured sources (repeatable): NAME=files:DIR or NAME=command:ARGV (split by shell rules; no shell runs)
    #[arg(long = "source", value_name = "NAME=KIND:ARG", value_parser = Source::from_flag)]
    sources: Vec<Source>,

    /// Encrypt to this public key (age1…, ssh-ed25519 …, ssh-rsa …) instead of the configured recipients (repeatable)
    #[arg(short = 'r', long = "recipient", value_name = "KEY")]
    recipients: Vec<String>,

    /// A note kept with the backup and shown by `list`, e.g. "before the v2 migration"
    #[arg(long)]
    note: Option<String>,

    /// Print the manifest as JSON instead of SET@ID
    #[arg(long)]
    json: bool,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    let set = context.set(
        &args.set,
        Overrides {
            recipients: args.recipients,
            sources: args.sources,
            ..Overrides::default()
        },
    )?;
    let known: Vec<&str> = context.config.set_names().collect();
    set.require_sources(&known).map_err(sluice::Error::from)?;
    let options = backup::Options {
        note: args.note,
        ..backup::Options::default()
    };
    let manifest = backup::run(&set, &options, cancel).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &manifest)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}@{}", manifest.set, manifest.id)?;
    }
    Ok(())
}
