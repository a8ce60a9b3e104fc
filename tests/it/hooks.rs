//! `before` and `after` hooks around a backup: a failing `before` skips the
//! dump and `after` still runs with the outcome; a hook that hangs is
//! killed at its time limit.

use std::{
    fs,
    time::{Duration, Instant},
};

use crate::support::World;

/// Set `prod` (one command source) with the given hook settings; `after`
/// writes its environment's SLUICE_* variables to `after.env`.
fn world(hooks: &str) -> World {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{store}\"\n[keys]\nrecipients = [\"{recipient}\"]\n[sets.prod]\n{hooks}\nafter = [\"sh\", \"-c\", \"env | grep -E '^SLUICE_(OUTCOME|SET|BACKUP_ID)=' | sort > {env}\"]\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"sh\", \"-c\", \"echo dumped; touch {marker}\"]\n",
            store = w.store_url(),
            recipient = w.recipient,
            env = w.path("after.env").display(),
            marker = w.path("dumped").display(),
        ),
    )
    .unwrap();
    w
}

fn backup(w: &World) -> std::process::Output {
    w.sluice()
        .args(["--config", "sluice.toml", "backup", "prod"])
        .output()
        .unwrap()
}

#[test]
fn after_gets_the_outcome_and_the_backup_id() {
    let w = world("before = [\"true\"]");
    let out = backup(&w);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split_once('@')
        .unwrap()
        .1
        .to_owned();
    let env = fs::read_to_string(w.path("after.env")).unwrap();
    assert_eq!(
        env,
        format!("SLUICE_BACKUP_ID={id}\nSLUICE_OUTCOME=success\nSLUICE_SET=prod\n")
    );
}

#[test]
fn a_failing_before_hook_skips_the_dump_and_after_still_runs() {
    let w = world("before = [\"sh\", \"-c\", \"echo not ready >&2; exit 3\"]");
    let out = backup(&w);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the dump was skipped"), "{stderr}");
    assert!(stderr.contains("the before hook failed"), "{stderr}");
    assert!(stderr.contains("not ready"), "{stderr}");
    assert!(!w.path("dumped").exists(), "the dump ran");
    assert!(w.listed_ids("prod").is_empty());
    let env = fs::read_to_string(w.path("after.env")).unwrap();
    assert_eq!(env, "SLUICE_OUTCOME=failure\nSLUICE_SET=prod\n");
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_time_limit() {
    let w = world("before = [\"sleep\", \"60\"]\nhook-timeout = \"1s\"");
    let started = Instant::now();
    let out = backup(&w);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the before hook `sleep` did not finish within 1s and was killed"),
        "{stderr}"
    );
    assert!(!w.path("dumped").exists());
    assert!(w.path("after.env").exists(), "after did not run");
}
