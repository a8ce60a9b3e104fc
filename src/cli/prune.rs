//! `sluice prune [SET]`, and the prune that follows a backup.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use sluice::{
    Cancel,
    catalog::{self, BackupId, Unreadable},
    config::{ConfigError, Overrides, SetPlan},
    retention::{self, Decision, Plan, Rule},
    signing::{Trust, TrustedSigners},
    store::{self, Store},
};

use super::Context;

/// Remove the backups that a set's retention policy no longer keeps.
///
/// The policy, under [sets.NAME] (or at the top of the config, for every
/// set that has none of its own):
///   retention = { keep-last = 3, keep-daily = 7, keep-weekly = 4, keep-monthly = 12 }
///
/// A backup is kept if any rule keeps it (as restic's forget does):
///   keep-last = N        the N newest backups
///   keep-hourly = N      the newest backup of each of the N newest UTC hours that have one
///   keep-daily = N       ... of the N newest UTC days that have one
///   keep-weekly = N      ... of the N newest ISO weeks (Monday to Sunday, UTC)
///   keep-monthly = N     ... of the N newest months
///   keep-yearly = N      ... of the N newest years
///   keep-within = "7d"   every backup that started less than this before now
///   (newest)             the newest backup is always kept, whatever the policy
/// Pre-restore safety backups count for none of these: they are kept while
/// younger than pre-restore-within (default "7d"), then removed. Times are
/// backups' start times. A set without retention keeps every backup, and a
/// backup whose manifest cannot be read is never removed (it is reported).
/// With trusted-signers, a backup none of them signed is neither counted
/// nor removed (it is reported): planted backups cannot push real ones out.
///
/// Without SET, prunes every set in the config. Prints the plan first (each
/// kept backup with the rules that keep it, each one to remove), then
/// removes each backup's manifest, so that it at once stops being listed or
/// restorable, and then its objects.
///
/// `sluice backup` prunes a set with retention after each successful
/// backup (unless `prune-after-backup = false`); if that prune fails, the
/// backup stays, and the exit status is 1.
///
/// With `object-lock` under [store], a backup whose manifest S3 Object Lock
/// still retains is kept and reported with the date its lock ends, and the
/// exit status is 1; a prune after that date removes it.
///
/// prune holds the set's lease, so it never runs beside a backup or
/// restore of the set (it fails with exit 3 instead); fetch and verify take
/// no lease, so don't prune a backup someone is fetching (--dry-run shows
/// which).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The set to prune [default: every set in the config]
    set: Option<String>,

    /// Print the plan, and remove nothing
    #[arg(long)]
    dry_run: bool,

    /// Print the plan as JSON: one object per set
    #[arg(long)]
    json: bool,

    /// Plan as if it were this time (RFC 3339, e.g. 2026-11-22T01:00:00Z) [default: now]
    #[arg(long, value_name = "TIME")]
    now: Option<Timestamp>,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    let names: Vec<String> = match &args.set {
        Some(name) => vec![name.clone()],
        None => context.config.set_names().map(str::to_owned).collect(),
    };
    if names.is_empty() {
        anyhow::bail!(sluice::Error::from(ConfigError::Usage(
            "nothing to prune: the config has no sets; name one (sluice prune SET), or pass --config".to_owned()
        )));
    }
    let now = args.now.unwrap_or_else(Timestamp::now);
    let mut sets = Vec::with_capacity(names.len());
    let mut prunes = Vec::with_capacity(names.len());
    for name in &names {
        let set = context.set(name, Overrides::default())?;
        prunes.push(Prune::prepare(&set, now).await?);
        sets.push(set);
    }
    if args.json {
        let mut out = serde_json::to_string_pretty(&prunes)?;
        out.push('\n');
        super::print(&out)?;
    } else {
        let plans: String = prunes.iter().map(Prune::describe).collect();
        super::print(&plans)?;
    }
    for (prune, set) in prunes.iter().zip(&sets) {
        if !args.dry_run {
            super::with_lease(set, "prune", |_| prune.apply(cancel)).await?;
        }
        let summary = prune.summary(args.dry_run);
        if args.json {
            tracing::info!("{summary}");
        } else {
            super::print(&format!("{summary}\n"))?;
        }
    }
    let locked: Vec<String> = prunes.iter().filter_map(Prune::locked_note).collect();
    if !args.dry_run && !locked.is_empty() {
        anyhow::bail!(
            "{}; they are kept, and a prune after that date removes them. If this happens at every prune, the lock outlasts what retention keeps: lower `days` in `object-lock` (see README, \"Immutable history\")",
            locked.join("; ")
        );
    }
    Ok(())
}

/// After a backup of a set with retention: prunes it, sparing the backup
/// just made, and logs what it did.
pub(super) async fn after_backup(
    set: &SetPlan,
    made: &BackupId,
    cancel: &Cancel,
) -> anyhow::Result<()> {
    let mut prune = Prune::prepare(set, Timestamp::now()).await?;
    prune.plan.spare(made);
    if let Some(note) = prune.locked_note() {
        tracing::warn!("{note}; they are kept until then");
    }
    for d in prune.plan.removed() {
        tracing::info!(
            "retention: removing {}@{} ({})",
            prune.set,
            d.id,
            d.started_at
        );
    }
    prune.apply(cancel).await?;
    tracing::info!("{}", prune.summary(false));
    Ok(())
}

/// One set's plan, ready to print and to carry out.
#[derive(Serialize)]
struct Prune {
    set: String,
    /// Whether the set has a retention policy.
    retention: bool,
    #[serde(flatten, serialize_with = "kept")]
    plan: Plan,
    unreadable: Vec<Unreadable>,
    /// Backups no trusted signer signed: not counted, never removed.
    untrusted: Vec<Unreadable>,
    /// Backups the policy no longer keeps that Object Lock still retains.
    locked: Vec<Locked>,
    #[serde(skip)]
    store: Arc<dyn Store>,
}

/// A backup kept only because S3 Object Lock retains it.
#[derive(Serialize)]
struct Locked {
    id: BackupId,
    /// When its manifest's retention ends.
    until: Timestamp,
}

/// `plan` as `"kept": [...], "removed": [...]` in `--json`.
fn kept<S: serde::Serializer>(plan: &Plan, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Split<'a> {
        kept: Vec<&'a Decision>,
        removed: Vec<&'a Decision>,
    }
    Split {
        kept: plan.kept().collect(),
        removed: plan.removed().collect(),
    }
    .serialize(s)
}

impl Prune {
    /// Reads the set's manifests and plans what to keep at `now`.
    async fn prepare(set: &SetPlan, now: Timestamp) -> Result<Self, sluice::Error> {
        let store = store::open(&set.store).await?;
        let listing = catalog::list_all(Arc::clone(&store), &set.name).await?;
        for u in &listing.unreadable {
            tracing::warn!(
                "backup {}@{} is kept: its manifest `{}` is invalid ({}); prune never removes it",
                set.name,
                u.id,
                u.key,
                u.reason
            );
        }
        // With trusted signers, a backup none of them signed (planted by
        // someone who can write to the bucket) neither counts for the
        // policy, where it could push real backups out, nor is removed.
        let trusted =
            TrustedSigners::parse(&set.keys.trusted_signers).map_err(sluice::Error::from)?;
        let (counted, untrusted): (Vec<_>, Vec<_>) = listing
            .manifests
            .into_iter()
            .partition(|m| trusted.is_empty() || trusted.judge(&m.seal) == Trust::Trusted);
        let untrusted: Vec<Unreadable> = untrusted
            .into_iter()
            .map(|m| {
                let trust = trusted.judge(&m.seal);
                tracing::warn!(
                    "backup {}@{} is {trust}, not signed by a trusted signer of the set: retention does not count it and prune never removes it; if nobody you trust made it, remove it by hand",
                    set.name,
                    m.id
                );
                Unreadable {
                    key: catalog::manifest_key(&set.name, &m.id),
                    id: m.id,
                    reason: trust.to_string(),
                }
            })
            .collect();
        let mut plan = retention::plan(&counted, set.retention.as_ref(), now);
        // The manifest is written last, so its retention ends last.
        let mut locked = Vec::new();
        for d in plan.backups.iter_mut().filter(|d| !d.is_kept()) {
            let key = catalog::manifest_key(&set.name, &d.id);
            if let Some(until) = store.locked_until(&key).await? {
                d.rules.push(Rule::ObjectLock);
                locked.push(Locked {
                    id: d.id.clone(),
                    until,
                });
            }
        }
        Ok(Self {
            set: set.name.clone(),
            retention: set.retention.is_some(),
            plan,
            unreadable: listing.unreadable,
            untrusted,
            locked,
            store,
        })
    }

    /// The plan as lines: each backup, newest first, kept (and why) or not.
    fn describe(&self) -> String {
        let mut out = String::new();
        for d in &self.plan.backups {
            let rules: Vec<String> = d
                .rules
                .iter()
                .map(|rule| match self.locked.iter().find(|l| l.id == d.id) {
                    Some(l) if *rule == Rule::ObjectLock => format!("{rule} until {}", l.until),
                    _ => rule.to_string(),
                })
                .collect();
            let verdict = if d.is_kept() { "keep" } else { "remove" };
            let line = format!(
                "{verdict:10}  {}@{}  {:11}  {}",
                self.set,
                d.id,
                d.kind.to_string(),
                rules.join(", ")
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for u in &self.unreadable {
            out.push_str(&format!(
                "{:10}  {}@{}  unreadable   never removed: manifest `{}` is invalid\n",
                "keep", self.set, u.id, u.key
            ));
        }
        for u in &self.untrusted {
            out.push_str(&format!(
                "{:10}  {}@{}  {:11}  never counted or removed: no trusted signer signed it\n",
                "keep", self.set, u.id, u.reason
            ));
        }
        out
    }

    /// What Object Lock keeps that the policy would remove, if anything.
    fn locked_note(&self) -> Option<String> {
        let last = self.locked.iter().map(|l| l.until).max()?;
        Some(format!(
            "{} backup(s) of set `{}` that retention no longer keeps are still under Object Lock, the last until {last}",
            self.locked.len(),
            self.set
        ))
    }

    /// One line on what the plan keeps and removes (or would, in a dry run).
    fn summary(&self, dry_run: bool) -> String {
        let (keep, remove) = (self.plan.kept().count(), self.plan.removed().count());
        if !self.retention {
            return format!(
                "set `{}` has no retention configured: keeping all {keep} backup(s); add `retention = {{ … }}` under [sets.{}] (see `sluice prune --help`)",
                self.set, self.set
            );
        }
        let unreadable = match self.unreadable.len() {
            0 => String::new(),
            n => format!(" ({n} more with an unreadable manifest kept)"),
        };
        if dry_run {
            format!(
                "set `{}`: would keep {keep} backup(s){unreadable} and remove {remove} (dry run: nothing was removed)",
                self.set
            )
        } else {
            format!(
                "set `{}`: kept {keep} backup(s){unreadable}, removed {remove}",
                self.set
            )
        }
    }

    /// Removes the backups the plan does not keep, oldest first: each one's
    /// manifest, then its objects.
    async fn apply(&self, cancel: &Cancel) -> anyhow::Result<()> {
        let removed: Vec<&Decision> = self.plan.removed().collect();
        for (done, d) in removed.iter().rev().enumerate() {
            if cancel.is_fired() {
                anyhow::bail!(
                    "prune of set `{}` stopped by a signal after removing {done} of {} backup(s); run `sluice prune {}` again for the rest",
                    self.set,
                    removed.len(),
                    self.set
                );
            }
            let objects = catalog::delete(self.store.as_ref(), &self.set, &d.id)
                .await
                .map_err(|e| {
                    anyhow::Error::from(sluice::Error::from(e)).context(format!(
                        "could not remove backup `{set}@{id}` ({done} of {} removed before it). Fix the cause and run `sluice prune {set}` again; if its manifest is already gone, delete what is left under `{set}/{id}/` in the store by hand",
                        removed.len(),
                        set = self.set,
                        id = d.id,
                    ))
                })?;
            tracing::debug!("removed {}@{} and its {objects} object(s)", self.set, d.id);
        }
        Ok(())
    }
}
