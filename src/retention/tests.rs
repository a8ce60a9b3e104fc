//! The rules as a table: each case is a policy and the backups of a set,
//! newest first, each with the rules expected to keep it ("" = removed),
//! all against one fixed clock.

use super::*;
use crate::catalog::FORMAT_VERSION;

/// The fixed "now": Sunday 2026-11-22 (ISO week 47), noon UTC.
const NOW: &str = "2026-11-22T12:00:00Z";

/// `"2026-11-22T11:00"` or `"2026-11-22T11:00:01"`, in UTC.
fn at(time: &str) -> Timestamp {
    let suffix = if time.len() == 16 { ":00Z" } else { "Z" };
    format!("{time}{suffix}").parse().unwrap()
}

/// A complete backup started at `spec` (`!` first: a pre-restore one).
fn backup(spec: &str) -> Manifest {
    let (kind, time) = match spec.strip_prefix('!') {
        Some(time) => (BackupKind::PreRestore, time),
        None => (BackupKind::Scheduled, spec),
    };
    let started_at = at(time);
    Manifest {
        format_version: FORMAT_VERSION,
        set: "prod".into(),
        id: format!("{}-0000", started_at.strftime("%Y%m%dT%H%M%SZ"))
            .parse()
            .unwrap(),
        kind,
        target: (kind == BackupKind::PreRestore).then(|| "app".into()),
        note: None,
        started_at,
        finished_at: started_at,
        sluice_version: "0.1.0".into(),
        host: "db1".into(),
        objects: Vec::new(),
        seal: Default::default(),
    }
}

struct Case {
    name: &'static str,
    /// A TOML `retention` table's body; `None`: no retention configured.
    policy: Option<&'static str>,
    /// Newest first: a backup and the rules expected to keep it.
    backups: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "an empty set plans nothing",
        policy: Some("keep-last = 3"),
        backups: &[],
    },
    Case {
        name: "an empty set without a policy plans nothing",
        policy: None,
        backups: &[],
    },
    Case {
        name: "without a policy everything is kept, safety copies too",
        policy: None,
        backups: &[
            ("2026-11-22T11:00", "no retention configured"),
            ("!2026-10-01T10:00", "no retention configured"),
            ("2020-01-01T00:00", "no retention configured"),
        ],
    },
    Case {
        name: "keep-last keeps the N newest",
        policy: Some("keep-last = 2"),
        backups: &[
            ("2026-11-22T11:00", "newest, keep-last"),
            ("2026-11-22T10:00", "keep-last"),
            ("2026-11-22T09:00", ""),
            ("2026-11-21T09:00", ""),
        ],
    },
    Case {
        name: "keep-last larger than the set keeps all",
        policy: Some("keep-last = 10"),
        backups: &[
            ("2026-11-22T11:00", "newest, keep-last"),
            ("2026-11-21T11:00", "keep-last"),
            ("2026-11-20T11:00", "keep-last"),
        ],
    },
    Case {
        name: "keep-hourly keeps the newest of each UTC hour",
        policy: Some("keep-hourly = 2"),
        backups: &[
            ("2026-11-22T11:50", "newest, keep-hourly"),
            ("2026-11-22T11:10", ""),
            ("2026-11-22T10:30", "keep-hourly"),
            ("2026-11-22T09:59", ""),
            ("2026-11-22T09:01", ""),
        ],
    },
    Case {
        name: "calendar rules count buckets that have a backup, not calendar time",
        policy: Some("keep-hourly = 3"),
        backups: &[
            ("2026-11-22T11:50", "newest, keep-hourly"),
            ("2026-11-22T11:10", ""),
            ("2026-11-20T08:30", "keep-hourly"),
        ],
    },
    Case {
        name: "keep-daily splits days at UTC midnight",
        policy: Some("keep-daily = 2"),
        backups: &[
            ("2026-11-22T00:00:00", "newest, keep-daily"),
            ("2026-11-21T23:59:59", "keep-daily"),
            ("2026-11-21T01:00", ""),
            ("2026-11-20T23:00", ""),
        ],
    },
    Case {
        name: "keep-daily skips days without backups",
        policy: Some("keep-daily = 2"),
        backups: &[
            ("2026-11-22T01:00", "newest, keep-daily"),
            ("2026-11-15T01:00", "keep-daily"),
            ("2026-11-01T01:00", ""),
        ],
    },
    Case {
        name: "keep-weekly uses ISO weeks, which cross the year end",
        policy: Some("keep-weekly = 3"),
        backups: &[
            ("2027-01-04T00:00", "newest, keep-weekly"), // Monday, 2027-W01
            ("2027-01-03T23:00", "keep-weekly"),         // Sunday, 2026-W53
            ("2027-01-01T10:00", ""),                    // 2026-W53 as well
            ("2026-12-31T10:00", ""),                    // 2026-W53 as well
            ("2026-12-27T10:00", "keep-weekly"),         // 2026-W52
            ("2026-12-20T10:00", ""),
        ],
    },
    Case {
        name: "keep-monthly keeps the newest of each month",
        policy: Some("keep-monthly = 2"),
        backups: &[
            ("2026-11-22T11:00", "newest, keep-monthly"),
            ("2026-11-01T00:00", ""),
            ("2026-10-31T23:59", "keep-monthly"),
            ("2026-10-01T00:00", ""),
            ("2026-09-15T00:00", ""),
        ],
    },
    Case {
        name: "keep-yearly keeps the newest of each year",
        policy: Some("keep-yearly = 2"),
        backups: &[
            ("2026-06-01T00:00", "newest, keep-yearly"),
            ("2026-01-01T00:00", ""),
            ("2025-12-31T23:59:59", "keep-yearly"),
            ("2024-05-01T00:00", ""),
        ],
    },
    Case {
        name: "keep-within keeps what is younger than the duration",
        policy: Some("keep-within = \"2d\""),
        backups: &[
            ("2026-11-22T06:00", "newest, keep-within"),
            ("2026-11-20T12:00:01", "keep-within"),
            ("2026-11-20T12:00:00", ""), // exactly 2 days old
            ("2026-11-19T12:00", ""),
        ],
    },
    Case {
        name: "the newest backup is kept even when every rule would remove it",
        policy: Some("keep-within = \"1d\""),
        backups: &[
            ("2026-10-01T01:00", "newest"),
            ("2026-09-30T01:00", ""),
            ("2026-09-29T01:00", ""),
        ],
    },
    Case {
        name: "the newest rule passes over a newer safety copy",
        policy: Some("keep-within = \"1d\""),
        backups: &[
            ("!2026-11-22T11:00", "pre-restore-within"),
            ("2026-11-10T01:00", "newest"),
            ("2026-11-09T01:00", ""),
        ],
    },
    Case {
        name: "safety copies do not count for keep-last",
        policy: Some("keep-last = 2"),
        backups: &[
            ("2026-11-22T10:00", "newest, keep-last"),
            ("!2026-11-22T09:00", "pre-restore-within"),
            ("2026-11-22T08:00", "keep-last"),
            ("2026-11-22T07:00", ""),
        ],
    },
    Case {
        name: "safety copies do not take a daily bucket",
        policy: Some("keep-daily = 1"),
        backups: &[
            ("!2026-11-22T11:00", "pre-restore-within"),
            ("2026-11-22T09:00", "newest, keep-daily"),
            ("2026-11-21T09:00", ""),
        ],
    },
    Case {
        name: "safety copies are kept 7 days by default, whatever keep-last allows",
        policy: Some("keep-last = 5"),
        backups: &[
            ("2026-11-22T10:00", "newest, keep-last"),
            ("!2026-11-16T12:00", "pre-restore-within"), // 6 days old
            ("!2026-11-14T12:00", ""),                   // 8 days old
            ("2026-11-10T10:00", "keep-last"),
        ],
    },
    Case {
        name: "pre-restore-within can be set",
        policy: Some("keep-last = 1\npre-restore-within = \"1h\""),
        backups: &[
            ("!2026-11-22T11:30", "pre-restore-within"),
            ("!2026-11-22T10:00", ""),
            ("2026-11-22T09:00", "newest, keep-last"),
        ],
    },
    Case {
        name: "a set of only safety copies has no newest",
        policy: Some("keep-last = 3"),
        backups: &[
            ("!2026-11-22T11:00", "pre-restore-within"),
            ("!2026-11-01T11:00", ""),
        ],
    },
    Case {
        name: "rules combine: kept if any rule keeps it",
        policy: Some("keep-last = 1\nkeep-daily = 3\nkeep-weekly = 2"),
        backups: &[
            (
                "2026-11-22T11:00",
                "newest, keep-last, keep-daily, keep-weekly",
            ),
            ("2026-11-22T03:00", ""),
            ("2026-11-21T23:00", "keep-daily"),
            ("2026-11-20T10:00", "keep-daily"),
            ("2026-11-19T10:00", ""),
            ("2026-11-15T10:00", "keep-weekly"), // Sunday of 2026-W46
            ("2026-11-08T10:00", ""),            // 2026-W45: weekly used up
        ],
    },
    Case {
        name: "rules that pick the same backup each say so",
        policy: Some("keep-daily = 2\nkeep-monthly = 2"),
        backups: &[
            ("2026-11-22T11:00", "newest, keep-daily, keep-monthly"),
            ("2026-11-21T11:00", "keep-daily"),
            ("2026-10-15T11:00", "keep-monthly"),
            ("2026-09-15T11:00", ""),
        ],
    },
    Case {
        name: "keep-within and a calendar rule together",
        policy: Some("keep-within = \"1d\"\nkeep-monthly = 3"),
        backups: &[
            ("2026-11-22T11:00", "newest, keep-monthly, keep-within"),
            ("2026-11-21T13:00", "keep-within"),
            ("2026-11-21T11:00", ""),
            ("2026-10-02T11:00", "keep-monthly"),
            ("2026-10-01T11:00", ""),
            ("2026-08-01T11:00", "keep-monthly"),
            ("2025-08-01T11:00", ""),
        ],
    },
];

#[test]
fn the_rules_keep_what_the_table_says() {
    assert!(CASES.len() >= 20);
    let now: Timestamp = NOW.parse().unwrap();
    for case in CASES {
        let policy: Option<Retention> = case.policy.map(|p| toml::from_str(p).unwrap());
        // Given oldest first, as the catalog lists them.
        let backups: Vec<Manifest> = case.backups.iter().rev().map(|(b, _)| backup(b)).collect();
        let plan = plan(&backups, policy.as_ref(), now);
        let got: Vec<(String, String)> = plan
            .backups
            .iter()
            .map(|d| {
                let rules: Vec<String> = d.rules.iter().map(Rule::to_string).collect();
                (d.started_at.to_string(), rules.join(", "))
            })
            .collect();
        let want: Vec<(String, String)> = case
            .backups
            .iter()
            .map(|(b, rules)| (backup(b).started_at.to_string(), (*rules).to_owned()))
            .collect();
        assert_eq!(got, want, "case: {}", case.name);
        assert_eq!(
            plan.kept().count() + plan.removed().count(),
            backups.len(),
            "case: {}",
            case.name
        );
    }
}

#[test]
fn the_backup_a_run_just_made_is_spared() {
    // Another host's clock put a backup an hour ahead of this run's.
    let backups = [backup("2026-11-22T11:00"), backup("2026-11-22T12:00")];
    let policy: Retention = toml::from_str("keep-last = 1").unwrap();
    let mut plan = plan(&backups, Some(&policy), NOW.parse().unwrap());
    assert_eq!(plan.removed().count(), 1);
    plan.spare(&backups[0].id);
    assert_eq!(plan.removed().count(), 0);
    assert_eq!(plan.backups[1].rules, [Rule::JustMade]);
}
