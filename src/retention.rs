//! Which backups to keep: a pure function of the set's manifests, its
//! [`Retention`] policy and the time, so a plan can be shown for any moment
//! (`sluice prune --dry-run --now …`) and tested against a fixed clock.
//!
//! The rules work like restic's `forget`. Backups are taken newest first by
//! their start time. `keep-last` keeps the N newest. Each calendar rule
//! (`keep-hourly`, `-daily`, `-weekly`, `-monthly`, `-yearly`) puts backups
//! in buckets by the UTC hour, day, ISO week, month or year they started
//! in, and keeps the newest backup of each of the N newest buckets.
//! `keep-within` keeps every backup younger than its duration. A backup is
//! kept if any rule keeps it.
//!
//! Pre-restore safety backups neither count for those rules nor are kept by
//! them: `pre-restore-within` alone decides, by age. The newest other
//! backup is always kept (rule `newest`), whatever the policy says. Without
//! a policy, everything is kept.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::{
    catalog::{BackupId, BackupKind, Manifest},
    config::Retention,
};

/// Why a backup is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// No retention is configured: every backup is kept.
    NoPolicy,
    /// The newest backup that is not a safety copy, always kept.
    Newest,
    /// The backup the same run just made (see [`Plan::spare`]).
    JustMade,
    /// `keep-last`.
    KeepLast,
    /// `keep-hourly`.
    KeepHourly,
    /// `keep-daily`.
    KeepDaily,
    /// `keep-weekly`.
    KeepWeekly,
    /// `keep-monthly`.
    KeepMonthly,
    /// `keep-yearly`.
    KeepYearly,
    /// `keep-within`.
    KeepWithin,
    /// `pre-restore-within`.
    PreRestoreWithin,
    /// Not a policy rule: S3 Object Lock still retains the backup, so
    /// `prune` cannot remove it yet.
    ObjectLock,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::NoPolicy => "no retention configured",
            Rule::Newest => "newest",
            Rule::JustMade => "just made",
            Rule::KeepLast => "keep-last",
            Rule::KeepHourly => "keep-hourly",
            Rule::KeepDaily => "keep-daily",
            Rule::KeepWeekly => "keep-weekly",
            Rule::KeepMonthly => "keep-monthly",
            Rule::KeepYearly => "keep-yearly",
            Rule::KeepWithin => "keep-within",
            Rule::PreRestoreWithin => "pre-restore-within",
            Rule::ObjectLock => "object lock",
        })
    }
}

/// One backup in a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The backup's id.
    pub id: BackupId,
    /// When it started.
    pub started_at: Timestamp,
    /// Manual, scheduled or pre-restore.
    pub kind: BackupKind,
    /// The rules that keep it; empty when it is to be removed.
    pub rules: Vec<Rule>,
}

impl Decision {
    /// Whether the plan keeps this backup.
    pub fn is_kept(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// What `prune` keeps and removes: every backup it was given, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// One decision per backup, newest first.
    pub backups: Vec<Decision>,
}

impl Plan {
    /// The backups to keep, newest first.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.backups.iter().filter(|d| d.is_kept())
    }

    /// The backups to remove, newest first.
    pub fn removed(&self) -> impl Iterator<Item = &Decision> {
        self.backups.iter().filter(|d| !d.is_kept())
    }

    /// Keeps `id` whatever the policy says: a run that prunes right after
    /// its backup never removes that backup, even when another host's
    /// clock put a newer one before it.
    pub fn spare(&mut self, id: &BackupId) {
        if let Some(d) = self.backups.iter_mut().find(|d| &d.id == id) {
            d.rules.push(Rule::JustMade);
            d.rules.sort();
            d.rules.dedup();
        }
    }
}

/// A calendar rule: its count in the policy and the bucket a time falls in.
struct Bucketed {
    rule: Rule,
    count: fn(&Retention) -> u32,
    format: &'static str,
}

/// Buckets are formatted UTC times: equal text, same bucket.
const CALENDAR: [Bucketed; 5] = [
    Bucketed {
        rule: Rule::KeepHourly,
        count: |p| p.keep_hourly,
        format: "%Y-%m-%dT%H",
    },
    Bucketed {
        rule: Rule::KeepDaily,
        count: |p| p.keep_daily,
        format: "%Y-%m-%d",
    },
    Bucketed {
        rule: Rule::KeepWeekly,
        count: |p| p.keep_weekly,
        format: "%G-W%V",
    },
    Bucketed {
        rule: Rule::KeepMonthly,
        count: |p| p.keep_monthly,
        format: "%Y-%m",
    },
    Bucketed {
        rule: Rule::KeepYearly,
        count: |p| p.keep_yearly,
        format: "%Y",
    },
];

/// Decides which of `backups` (complete ones: each has a manifest) to keep
/// under `policy` at `now`; `None` keeps everything.
pub fn plan(backups: &[Manifest], policy: Option<&Retention>, now: Timestamp) -> Plan {
    let mut sorted: Vec<&Manifest> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
    let mut decisions: Vec<Decision> = sorted
        .iter()
        .map(|m| Decision {
            id: m.id.clone(),
            started_at: m.started_at,
            kind: m.kind,
            rules: Vec::new(),
        })
        .collect();
    let Some(policy) = policy else {
        for d in &mut decisions {
            d.rules.push(Rule::NoPolicy);
        }
        return Plan { backups: decisions };
    };
    let younger_than = |d: &Decision, within: std::time::Duration| {
        now.duration_since(d.started_at)
            < SignedDuration::try_from(within).unwrap_or(SignedDuration::MAX)
    };
    let (safety, mut normal): (Vec<&mut Decision>, Vec<&mut Decision>) = decisions
        .iter_mut()
        .partition(|d| d.kind == BackupKind::PreRestore);
    for d in safety {
        if younger_than(d, policy.pre_restore_within) {
            d.rules.push(Rule::PreRestoreWithin);
        }
    }
    if let Some(newest) = normal.first_mut() {
        newest.rules.push(Rule::Newest);
    }
    for d in normal.iter_mut().take(policy.keep_last as usize) {
        d.rules.push(Rule::KeepLast);
    }
    for calendar in &CALENDAR {
        let mut left = (calendar.count)(policy);
        let mut last_bucket = None;
        for d in normal.iter_mut() {
            if left == 0 {
                break;
            }
            let bucket = d.started_at.strftime(calendar.format).to_string();
            if last_bucket.as_ref() != Some(&bucket) {
                d.rules.push(calendar.rule);
                left -= 1;
                last_bucket = Some(bucket);
            }
        }
    }
    if let Some(within) = policy.keep_within {
        for d in normal.iter_mut().filter(|d| younger_than(d, within)) {
            d.rules.push(Rule::KeepWithin);
        }
    }
    Plan { backups: decisions }
}

#[cfg(test)]
mod tests;
