//! A command's output goes in and comes back; a failing command leaves no
//! backup.

use std::fs;

use crate::support::{World, random_bytes};

#[test]
fn a_commands_output_round_trips_through_fetch() {
    let w = World::new();
    let input = w.path("input.bin");
    fs::write(&input, random_bytes(3 * 1024 * 1024, 3)).unwrap();
    let backup = w.backup("dump", &[&format!("db=command:cat '{}'", input.display())]);

    let fetched = w.path("fetched.bin");
    w.sluice()
        .args(["fetch", &backup, "--store", &w.store_url(), "-o"])
        .arg(&fetched)
        .arg("-i")
        .arg(w.key())
        .assert()
        .success();
    assert_eq!(fs::read(&fetched).unwrap(), fs::read(&input).unwrap());

    let out = w
        .sluice()
        .args(["fetch", &backup, "--store", &w.store_url(), "-i"])
        .arg(w.key())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, fs::read(&input).unwrap());
}

#[test]
fn a_failing_source_leaves_no_backup_and_shows_its_stderr() {
    let w = World::new();
    w.backup("dump", &["db=command:echo first"]);
    let before = w.listed_ids("dump");

    let out = w
        .sluice()
        .args(["backup", "dump", "--store", &w.store_url(), "-r", &w.recipient])
        .args(["--source", "db=command:sh -c 'echo half a dump; echo \"pg_dump: error: connection refused\" >&2; exit 1'"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(stderr.contains("exited with code 1"), "{stderr}");
    assert_eq!(w.listed_ids("dump"), before);
    // No half-written object under any final name either.
    // (The set's lease stays, marked released.)
    let objects: Vec<_> = walkdir::WalkDir::new(w.path("store/dump"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() != "lease.json")
        .collect();
    assert_eq!(
        objects.len(),
        2,
        "one manifest and one object of the first backup"
    );
}

#[test]
fn a_source_killed_by_a_signal_fails_the_backup() {
    let w = World::new();
    let out = w
        .sluice()
        .args([
            "backup",
            "dump",
            "--store",
            &w.store_url(),
            "-r",
            &w.recipient,
        ])
        .args(["--source", "db=command:sh -c 'echo data; kill -9 $$'"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("killed by signal 9"));
    assert!(w.listed_ids("dump").is_empty());
}

#[test]
fn a_restore_command_that_stops_reading_fails_the_restore() {
    let w = World::new();
    let input = w.path("input.bin");
    fs::write(&input, random_bytes(4 * 1024 * 1024, 4)).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[[sets.s.sources]]\nname = \"x\"\nkind = \"command\"\nbackup = [\"cat\", \"{}\"]\nrestore = [\"head\", \"-c\", \"100\"]\n",
            w.store_url(),
            w.recipient,
            input.display()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "s"]).assert().success();
    let out = w
        .sluice()
        .args(["restore", "s", "--yes", "-i", "key.txt"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a restore that applied 100 bytes of 4 MiB succeeded"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not feed the whole backup to `head`")
    );
}

#[test]
fn a_password_in_a_bad_source_flag_is_never_echoed() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["backup", "s", "--store", &w.store_url(), "-r", &w.recipient])
        .args(["--source", "db=postgres:postgres://u:Sup3rSecret@h:99999/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Sup3rSecret"), "{stderr}");
    assert!(stderr.contains("invalid PostgreSQL URL"), "{stderr}");
}
