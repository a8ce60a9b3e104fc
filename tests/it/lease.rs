//! One lease per set: a second backup, restore, prune or gc of a set fails
//! at once with exit 3 naming the holder, while `list` goes on; an expired
//! lease is taken over; a killed run's lease lapses after its TTL; a run
//! whose lease was taken over commits nothing. True races on `file://`;
//! sequenced contenders on s3s-fs.

use std::{
    fs,
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::support::{World, s3::S3World};

/// A world whose config has set `prod`: a `slow` command source that
/// writes a line, waits `seconds`, and writes another, restored by a command
/// that waits as long.
fn world(seconds: u32, store_extra: &str) -> World {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            r#"
[store]
url = "{store}"
{store_extra}
[keys]
recipients = ["{recipient}"]
[[sets.prod.sources]]
name = "slow"
kind = "command"
backup = ["sh", "-c", "echo begin; sleep {seconds}; echo end"]
restore = ["sh", "-c", "sleep {seconds}; cat > /dev/null"]
"#,
            store = w.store_url(),
            recipient = w.recipient,
        ),
    )
    .unwrap();
    w
}

fn lease_file(w: &World) -> std::path::PathBuf {
    w.path("store/prod/lease.json")
}

/// Whether a run holds the lease: the lease exists and was not given back
/// (a finished run leaves it marked released).
fn lease_held(w: &World) -> bool {
    fs::read_to_string(lease_file(w)).is_ok_and(|text| !is_released(&text))
}

fn is_released(lease: &str) -> bool {
    lease.contains(r#""released": true"#)
}

/// Starts `sluice ARGS` in the background and waits until it holds the lease.
fn start_holding(w: &World, args: &[&str]) -> Child {
    let mut child = w_command(w)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lease_held(w) {
        assert!(child.try_wait().unwrap().is_none(), "{args:?} ended early");
        assert!(Instant::now() < deadline, "{args:?} never took the lease");
        sleep(Duration::from_millis(20));
    }
    child
}

fn w_command(w: &World) -> Command {
    let mut cmd = w.command();
    cmd.args(["--config", "sluice.toml"]);
    cmd
}

fn run(w: &World, args: &[&str]) -> Output {
    w_command(w).args(args).output().unwrap()
}

fn assert_refused(out: &Output, holder_command: &str, holder_pid: u32) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "set `prod` is in use by `sluice {holder_command}` on"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("(pid {holder_pid})")), "{stderr}");
}

#[test]
fn while_a_backup_runs_every_other_run_of_the_set_is_refused_but_list_works() {
    let w = world(10, "");
    // One backup to restore and list.
    assert!(run(&w, &["backup", "prod"]).status.success());
    let mut backup = start_holding(&w, &["backup", "prod"]);
    let started = Instant::now();

    assert_refused(&run(&w, &["backup", "prod"]), "backup", backup.id());
    let key = w.key().display().to_string();
    assert_refused(
        &run(&w, &["restore", "prod", "--yes", "-i", &key]),
        "backup",
        backup.id(),
    );
    assert_refused(&run(&w, &["prune", "prod"]), "backup", backup.id());
    assert_refused(
        &run(&w, &["gc", "prod", "--older-than", "0s"]),
        "backup",
        backup.id(),
    );
    assert!(started.elapsed() < Duration::from_secs(10), "not at once");
    // Readers take no lease.
    assert!(run(&w, &["list", "prod"]).status.success());
    assert!(run(&w, &["verify", "prod", "-i", &key]).status.success());

    assert!(backup.wait().unwrap().success());
    assert!(!lease_held(&w), "the lease was not given back");
    assert_eq!(w.listed_ids("prod").len(), 2);
}

#[test]
fn while_a_restore_runs_a_backup_is_refused() {
    let w = world(6, "");
    assert!(run(&w, &["backup", "prod"]).status.success());
    let key = w.key().display().to_string();
    let mut restore = start_holding(&w, &["restore", "prod", "--yes", "-i", &key]);

    assert_refused(&run(&w, &["backup", "prod"]), "restore", restore.id());
    assert_refused(
        &run(&w, &["restore", "prod", "--yes", "-i", &key]),
        "restore",
        restore.id(),
    );
    assert!(restore.wait().unwrap().success());
    assert!(run(&w, &["backup", "prod"]).status.success());
}

#[test]
fn two_backups_started_together_never_both_run() {
    let w = world(2, "");
    let spawn = || {
        w_command(&w)
            .args(["backup", "prod"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let codes: Vec<Option<i32>> = [a, b]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, [Some(0), Some(3)], "{codes:?}");
}

#[test]
fn an_expired_lease_is_taken_over() {
    let w = world(0, "");
    fs::create_dir_all(w.path("store/prod")).unwrap();
    fs::write(
        lease_file(&w),
        r#"{"command":"backup","host":"gone.example","pid":4242,"since":"2026-01-01T00:00:00Z","expires":"2026-01-01T00:05:00Z"}"#,
    )
    .unwrap();
    let status = run(&w, &["lock", "status", "prod"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("expired"), "{status}");

    let out = run(&w, &["backup", "prod"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("taking over the expired lease"), "{stderr}");
    assert!(stderr.contains("gone.example"), "{stderr}");
    assert!(!lease_held(&w));
}

#[test]
fn a_killed_run_leaves_a_lease_that_lapses_after_its_ttl() {
    let w = world(30, "lease-ttl = \"2s\"");
    let mut backup = start_holding(&w, &["backup", "prod"]);
    let pid = backup.id();
    backup.kill().unwrap();
    backup.wait().unwrap();
    let killed = Instant::now();

    assert_refused(&run(&w, &["backup", "prod"]), "backup", pid);
    while killed.elapsed() < Duration::from_millis(2500) {
        sleep(Duration::from_millis(100));
    }
    // The source now sleeps 30 s: a quick one shows the lease is free.
    fs::write(
        w.path("sluice.toml"),
        fs::read_to_string(w.path("sluice.toml"))
            .unwrap()
            .replace("sleep 30", "sleep 0"),
    )
    .unwrap();
    let out = run(&w, &["backup", "prod"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_run_whose_lease_was_taken_over_commits_nothing() {
    let w = world(3, "");
    let backup = start_holding(&w, &["backup", "prod"]);
    // Past taking the lease (which probes it and reads it back): its upload
    // has begun.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w.upload_started() {
        assert!(
            Instant::now() < deadline,
            "the backup never started its upload"
        );
        sleep(Duration::from_millis(20));
    }
    // Another run takes the set over (as after an expiry it missed).
    let other = w.path("other.json");
    fs::write(
        &other,
        r#"{"command":"backup","host":"elsewhere","pid":1,"since":"2026-01-01T00:00:00Z","expires":"2099-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    fs::rename(&other, lease_file(&w)).unwrap();

    let out = backup.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("this run lost the lease of set `prod`"),
        "{stderr}"
    );
    assert!(w.listed_ids("prod").is_empty(), "a manifest was written");
    // The other run's lease is left alone.
    assert!(
        fs::read_to_string(lease_file(&w))
            .unwrap()
            .contains("elsewhere")
    );
}

#[test]
fn on_s3_a_held_lease_refuses_every_writer_and_an_expired_one_is_taken_over() {
    let s = S3World::new();
    let data = s.world.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a").unwrap();
    let source = format!("docs=files:{}", data.display());
    let put_lease = |expires: &str| {
        let body = format!(
            r#"{{"command":"restore","host":"ops-1","pid":77,"since":"2026-01-01T00:00:00Z","expires":"{expires}"}}"#
        );
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            s.server
                .client()
                .put_object()
                .bucket("bucket")
                .key("backups/docs/lease.json")
                .body(body.into_bytes().into())
                .send()
                .await
                .unwrap();
        });
    };

    let first = s.backup("docs", &source);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    put_lease("2099-01-01T00:00:00Z");
    let key = s.world.key().display().to_string();
    let out_dir = s.world.path("out").display().to_string();
    let contenders: [&[&str]; 3] = [
        &["restore", "docs", "--yes", "-i", &key, "--into", &out_dir],
        &["prune", "docs"],
        &["gc", "docs"],
    ];
    for args in contenders {
        let out = s.sluice().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("in use by `sluice restore` on ops-1 (pid 77)"),
            "{stderr}"
        );
    }
    let out = s.backup("docs", &source);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("in use by `sluice restore` on ops-1 (pid 77)"),
        "{stderr}"
    );
    // Readers take no lease.
    assert!(
        s.sluice()
            .args(["list", "docs"])
            .output()
            .unwrap()
            .status
            .success()
    );

    put_lease("2026-01-01T00:05:00Z");
    let out = s.backup("docs", &source);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("taking over the expired lease"), "{stderr}");
    let lease = fs::read_to_string(s.server.object_file("docs/lease.json")).unwrap();
    assert!(is_released(&lease), "{lease}");
    // A released lease is free at once, and taken without a warning.
    let out = s.backup("docs", &source);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("taking over"), "{stderr}");
}

#[test]
fn a_run_longer_than_its_ttl_keeps_its_lease_by_renewing_it() {
    // Renewed every quarter of the TTL: a loaded machine may delay one
    // renewal, not four in a row.
    let w = world(6, "lease-ttl = \"2s\"");
    let backup = start_holding(&w, &["backup", "prod"]);
    let pid = backup.id();
    sleep(Duration::from_millis(3500));
    assert_refused(&run(&w, &["backup", "prod"]), "backup", pid);
    let out = backup.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.listed_ids("prod").len(), 1);
}
