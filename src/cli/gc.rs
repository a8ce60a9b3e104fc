//! `sluice gc SET`.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use jiff::{SignedDuration, Timestamp};
use sluice::{
    catalog::{self, BackupId},
    config::{Overrides, SetPlan, parse_duration},
    store,
};

use super::Context;

/// Clean up after backups that failed or were killed: abort a set's
/// unfinished uploads (multipart uploads; on file://, temporary files) and
/// remove objects no manifest names. They take space but are never part of
/// a backup.
///
/// gc holds the set's lease (exit 3 while a backup of the set runs), and
/// only uploads older than --older-than (default 24h) are aborted, in case
/// a backup's lease was broken by hand while it still ran. `--older-than
/// 0s` aborts them all. On S3 an upload's age counts from its start; on
/// file://, from its last write.
///
/// On S3, a bucket lifecycle rule with AbortIncompleteMultipartUpload does
/// the same without sluice, and a server that cannot list multipart uploads
/// (ListMultipartUploads) needs one: see README, "What failed backups leave".
///
/// It also removes the objects of backups that have no manifest (a backup
/// that failed or was killed after storing some of its objects), older
/// than --older-than by their backup id's time.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The set whose unfinished uploads to abort
    set: String,

    /// Abort only uploads at least this old: e.g. 30m, 24h, 7d, or 0s for all
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        value_parser = parse_duration
    )]
    older_than: Duration,

    /// Print what would be aborted, and abort nothing
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let plan = context.set(&args.set, Overrides::default())?;
    if args.dry_run {
        return gc(context, &plan, &args).await;
    }
    let (plan, args) = (&plan, &args);
    super::with_lease(plan, "gc", |_| gc(context, plan, args)).await
}

/// Lists the set's unfinished uploads and aborts (or, dry, names) the old ones.
async fn gc(context: &Context, plan: &SetPlan, args: &Args) -> anyhow::Result<()> {
    let prefix = catalog::set_prefix(&plan.name).map_err(sluice::Error::from)?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let pending = store
        .list_uploads(&prefix)
        .await
        .map_err(sluice::Error::from)?;
    let now = Timestamp::now();
    // A start in the future (clocks disagree) is an age of zero.
    let age =
        |started: Timestamp| Duration::try_from(now.duration_since(started)).unwrap_or_default();
    let (old, young): (Vec<_>, Vec<_>) = pending
        .into_iter()
        .partition(|upload| age(upload.started) >= args.older_than);
    let threshold = friendly(args.older_than);

    let mut out = String::new();
    let mut failed = 0;
    for upload in &old {
        let outcome = if args.dry_run {
            "would abort"
        } else if let Err(e) = store.abort_pending(upload).await {
            tracing::error!("{e}");
            failed += 1;
            "failed"
        } else {
            "aborted"
        };
        writeln!(
            out,
            "{outcome:11}  started {}  age {:>11}  {}",
            upload.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            friendly(Duration::from_secs(age(upload.started).as_secs())),
            upload.key
        )?;
    }
    let done = old.len() - failed;
    match (old.len(), args.dry_run) {
        (0, _) => writeln!(
            out,
            "no unfinished uploads under `{prefix}` older than {threshold}"
        )?,
        (n, true) => writeln!(
            out,
            "would abort {n} unfinished upload(s) under `{prefix}` (dry run: nothing was aborted)"
        )?,
        (_, false) => writeln!(out, "aborted {done} unfinished upload(s) under `{prefix}`")?,
    }
    if !young.is_empty() {
        writeln!(
            out,
            "{} upload(s) younger than {threshold} left alone: they may belong to a backup still running",
            young.len()
        )?;
    }
    let orphans = orphans(store.as_ref(), &prefix)
        .await
        .map_err(sluice::Error::from)?;
    let mut removed = 0;
    for (id, keys) in &orphans {
        let started = id.started_at().unwrap_or(now);
        if age(started) < args.older_than {
            continue;
        }
        let outcome = if args.dry_run {
            "would remove"
        } else {
            for key in keys {
                store.delete(key).await.map_err(sluice::Error::from)?;
            }
            "removed"
        };
        removed += 1;
        writeln!(
            out,
            "{outcome:11}  {} object(s) of {}@{id}, which has no manifest (a backup that failed or was killed)",
            keys.len(),
            plan.name
        )?;
    }
    if removed == 0 {
        writeln!(
            out,
            "no objects without a manifest under `{prefix}` older than {threshold}"
        )?;
    }
    if !plan.configured && old.is_empty() && young.is_empty() && orphans.is_empty() {
        let known: Vec<&str> = context.config.set_names().collect();
        if !known.is_empty() {
            tracing::info!(
                "set `{}` is not in the config (which has: {})",
                plan.name,
                known.join(", ")
            );
        }
    }
    super::print(&out)?;
    if failed > 0 {
        anyhow::bail!(
            "could not abort {failed} of {} unfinished upload(s) under `{prefix}` (the errors are above); run `sluice gc {}` again once they are fixed",
            old.len(),
            plan.name
        );
    }
    Ok(())
}

/// The objects of each backup id under `prefix` that has no manifest: what
/// a backup stored before it failed or was killed. Ids sluice did not make
/// are left out. Safe to remove under the set's lease, as no backup of the
/// set is running then.
async fn orphans(
    store: &dyn sluice::store::Store,
    prefix: &str,
) -> Result<Vec<(BackupId, Vec<String>)>, sluice::store::StoreError> {
    let mut by_id: BTreeMap<&str, (bool, Vec<String>)> = BTreeMap::new();
    let listed = store.list(prefix).await?;
    for meta in &listed {
        let Some((id, name)) = meta
            .key
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let entry = by_id.entry(id).or_default();
        entry.0 |= name == catalog::MANIFEST_NAME;
        entry.1.push(meta.key.clone());
    }
    Ok(by_id
        .into_iter()
        .filter(|(_, (committed, _))| !committed)
        .filter_map(|(id, (_, keys))| Some((id.parse().ok()?, keys)))
        .collect())
}

/// `90061s` → `25h 1m 1s`.
fn friendly(duration: Duration) -> String {
    format!(
        "{:#}",
        SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
    )
}
