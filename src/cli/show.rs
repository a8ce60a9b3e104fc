//! `sluice show SET@ID`.

use std::fmt::Write as _;

use sluice::{
    catalog::{self, Selector},
    config::{Overrides, human_bytes},
    signing::{Seal, Trust, TrustedSigners},
    store,
};

use super::{Context, TrustArgs};

/// Show one backup's manifest: who signed it (and whether the set trusts
/// that key), its objects, sizes, checksums and who can open them. Reads
/// only; takes no lock; never refuses a backup for its signature.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// Print the manifest as stored (JSON)
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    trust: TrustArgs,
}

pub async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let plan = context.set(
        &args.backup.set,
        Overrides {
            trusted_signers: args.trust.trusted_signers,
            ..Overrides::default()
        },
    )?;
    let trusted = TrustedSigners::parse(&plan.keys.trusted_signers).map_err(sluice::Error::from)?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let m = catalog::find(store.as_ref(), &args.backup)
        .await
        .map_err(sluice::Error::from)?;
    let mut out = String::new();
    if args.json {
        out.push_str(&serde_json::to_string_pretty(&m.to_stored_json())?);
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
    writeln!(out, "signed    {}", signed(&m.seal, &trusted))?;
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

/// Who signed a backup, and what the set makes of it.
fn signed(seal: &Seal, trusted: &TrustedSigners) -> String {
    match (seal, trusted.judge(seal)) {
        (Seal::Signed { signer, .. }, Trust::Trusted) => format!("by {signer} (trusted)"),
        (Seal::Signed { signer, .. }, _) => {
            format!("by {signer} (NOT trusted: restore, fetch and verify refuse it)")
        }
        (Seal::Broken { reason, .. }, _) => {
            format!("ALTERED: {reason}; restore, fetch and verify refuse it")
        }
        (Seal::Unsigned, _) => "no (restore, fetch and verify need --allow-unsigned)".to_owned(),
    }
}
