//! `sluice show SET@ID`.

use std::fmt::Write as _;

use sluice::{
    catalog::{self, Selector},
    config::{Overrides, human_bytes},
    store,
};

use super::Context;

/// Show one backup's manifest: its objects, sizes, checksums and who can
/// open them. Reads only; takes no lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// Print the manifest as stored (JSON)
    #[arg(long)]
    json: bool,
}

pub async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let plan = context.set(&args.backup.set, Overrides::default())?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let m = catalog::find(store.as_ref(), &args.backup)
        .await
        .map_err(sluice::Error::from)?;
    let mut out = String::new();
    if args.json {
        out.push_str(&serde_json::to_string_pretty(&m)?);
        writeln!(out)?;
        return super::print(&out);
    }
    writeln!(out, "backup    {}@{}", m.set, m.id)?;
    writeln!(out, "kind      {}", m.kind)?;
    if let Some(note) = &m.note {
        writeln!(out, "note      {note}")?;
    }
    writeln!(out, "started   {}", m.started_at)?;
    writeln!(out, "finished  {}", m.finished_at)?;
    writeln!(out, "host      {}", m.host)?;
    writeln!(out, "sluice    {}", m.sluice_version)?;
    for o in &m.objects {
        writeln!(out)?;
        writeln!(out, "object    {}", o.name)?;
        writeln!(
            out,
            "  source      {} ({}, {})",
            o.source, o.source_kind, o.format
        )?;
        writeln!(
            out,
            "  size        {} plaintext, {} stored in {} part(s) of {}",
            human_bytes(o.plaintext_size),
            human_bytes(o.stored_size),
            o.parts.len(),
            human_bytes(o.part_size)
        )?;
        writeln!(out, "  zstd level  {}", o.compression_level)?;
        writeln!(out, "  sha256      {}", o.sha256)?;
        writeln!(out, "  recipients  {}", o.recipients.join(", "))?;
    }
    super::print(&out)
}
