//! `sluice verify SET[@ID]`.

use std::sync::Arc;

use sluice::{
    Cancel,
    catalog::{self, Selector},
    config::human_bytes,
    keys::Identities,
    signing::{Seal, Trust},
    store,
    verify::{self, Checked, drill},
};

use super::{Context, IdentityArgs, SignatureArgs};

/// Check a backup without restoring it: every object is read back from the
/// store through every check a restore makes, and nothing is written
/// anywhere. Reads only; takes no lock.
///
/// With an identity (-i) that opens an object: each part's SHA-256 and the
/// object's, age's authentication of every chunk, zstd's content checksum
/// and the plaintext size. Without one (or for objects encrypted to other
/// keys, such as anonymized copies): the stored size, the SHA-256s and the
/// age header; the output says what was not checked.
///
/// With --drill, a restore rehearsal: each database is restored into a
/// scratch database on its source's server (`sluice_drill_<id>`), each
/// directory into a temporary directory; the rows per table (or files and
/// bytes) are reported, the source's `checks` run (SQL queries that must
/// return true), and the scratch copy is removed, also when a check fails.
///
/// First of all, the manifest's signature is checked against the set's
/// trusted-signers, as `restore` does: a backup no trusted key signed fails
/// verification (unless --allow-unsigned), and an altered one always does.
///
/// Every object is checked even after one fails; the exit code is 1 when
/// any failed. Run it from a timer to learn about a damaged backup before
/// you need it:
///   sluice verify prod -i /etc/sluice/key.txt
///   sluice verify prod -i /etc/sluice/key.txt --drill
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// Also restore databases and directories into scratch copies, count
    /// what arrived, run the configured checks, and remove the copies
    #[arg(long)]
    drill: bool,

    #[command(flatten)]
    identity: IdentityArgs,

    #[command(flatten)]
    signatures: SignatureArgs,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    let plan = context.set(&args.backup.set, args.signatures.overrides())?;
    let policy = args.signatures.policy(&plan)?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let identities = match args.identity.identities.as_slice() {
        [] => None,
        paths => Some(Arc::new(
            Identities::load(paths).map_err(sluice::Error::from)?,
        )),
    };
    if args.drill && identities.is_none() {
        anyhow::bail!(
            "--drill restores the backup, so it needs the identity that opens it: pass -i FILE (or set SLUICE_IDENTITY_FILE)"
        );
    }
    let manifest = catalog::find(store.as_ref(), &args.backup)
        .await
        .map_err(sluice::Error::from)?;
    policy.check(&manifest).map_err(sluice::Error::from)?;
    let backup = format!("{}@{}", manifest.set, manifest.id);
    let signed = match (&manifest.seal, policy.trusted.judge(&manifest.seal)) {
        (Seal::Signed { signer, .. }, Trust::Trusted) => format!("signed by trusted {signer}"),
        (Seal::Signed { signer, .. }, _) => {
            format!("signed by UNTRUSTED {signer}, allowed by --allow-unsigned")
        }
        _ => "UNSIGNED, allowed by --allow-unsigned".to_owned(),
    };
    super::print(&format!("verifying {backup} ({signed})\n"))?;
    let (mut failed, mut opened) = (0, 0);
    for record in &manifest.objects {
        if let (true, Some(identities)) = (args.drill && drill::drillable(record), &identities) {
            let drilled = drill::object(
                Arc::clone(&store),
                &manifest,
                &plan,
                record,
                Arc::clone(identities),
                plan.store.parallel_parts,
                cancel,
            )
            .await;
            let report = match drilled {
                Ok(drilled) => {
                    opened += 1;
                    if !drilled.passed() {
                        failed += 1;
                    }
                    drill_report(&record.name, &drilled)
                }
                Err(sluice::Error::Interrupted) => return Err(sluice::Error::Interrupted.into()),
                Err(e) => {
                    failed += 1;
                    format!("FAILED  {}  drill: {e}\n", record.name)
                }
            };
            super::print(&report)?;
            continue;
        }
        let checked = verify::object(
            Arc::clone(&store),
            &manifest,
            record,
            identities.clone(),
            plan.store.parallel_parts,
            cancel,
        )
        .await;
        let sizes = format!(
            "{} stored in {} part(s)",
            human_bytes(record.stored_size),
            record.parts.len()
        );
        let line = match checked {
            Ok(Checked::Fully) => {
                opened += 1;
                format!(
                    "ok      {}  {sizes}, {} plaintext: decrypted and decompressed, every check passed\n",
                    record.name,
                    human_bytes(record.plaintext_size)
                )
            }
            Ok(Checked::Ciphertext) => format!(
                "ok      {}  {sizes}: stored bytes only (sizes, SHA-256, age header); {}\n",
                record.name,
                if identities.is_some() {
                    "not decrypted, as no identity given opens it"
                } else {
                    "not decrypted without an identity (-i)"
                }
            ),
            Err(sluice::Error::Interrupted) => return Err(sluice::Error::Interrupted.into()),
            Err(e) => {
                failed += 1;
                format!("FAILED  {}  {e}\n", record.name)
            }
        };
        super::print(&line)?;
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} object(s) of {backup} failed (see above): a damaged object cannot be restored, so restore another backup (sluice list {}){}",
            manifest.objects.len(),
            manifest.set,
            if args.drill {
                "; a failed drill check means the data restored but is not what the check expects"
            } else {
                ""
            }
        );
    }
    if identities.is_some() && opened == 0 && !manifest.objects.is_empty() {
        anyhow::bail!(
            "none of the identities given opens any object of {backup}, so age's and zstd's checks did not run; pass the identity it was encrypted to (see `sluice show {backup}` for the recipients)"
        );
    }
    Ok(())
}

/// The lines of one drilled object: where, what arrived, each check.
fn drill_report(name: &str, drilled: &drill::Drilled) -> String {
    let verdict = if drilled.passed() { "ok    " } else { "FAILED" };
    let mut out = format!(
        "{verdict}  {name}  restored into {} and removed again\n",
        drilled.scratch
    );
    for (what, n) in &drilled.counts {
        out.push_str(&format!("          {what}: {n}\n"));
    }
    for check in &drilled.checks {
        if check.held {
            out.push_str(&format!("          check holds: {}\n", check.sql));
        } else {
            out.push_str(&format!(
                "          check FAILED: {} (returned {:?}, not true)\n",
                check.sql, check.returned
            ));
        }
    }
    out
}
