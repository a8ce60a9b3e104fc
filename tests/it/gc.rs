//! `sluice gc SET`: unfinished uploads of the set older than the threshold
//! are aborted, on moto (S3 with ListMultipartUploads) and on `file://`; a
//! server without ListMultipartUploads (s3s-fs) gets the fix, not a crash.

use std::{
    fs,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::support::{World, moto::MotoWorld, s3::S3World, stdout_of};

const PROD_DB: &str = "prod/20261122T010000Z-3fa9/db.pgdump.zst.age";
const PROD_MEDIA: &str = "prod/20261122T020000Z-0b1c/media.tar.zst.age";
/// Another set whose name starts with the first one's.
const PRODUCTION_DB: &str = "production/20261122T010000Z-77aa/db.pgdump.zst.age";

#[test]
fn gc_aborts_only_the_sets_uploads_older_than_the_threshold_on_s3() {
    let m = MotoWorld::new();
    for key in [PROD_DB, PROD_MEDIA, PRODUCTION_DB] {
        m.start_upload(key);
    }
    let gc = |args: &[&str]| stdout_of(&m.sluice().arg("gc").args(args).output().unwrap());

    let dry = gc(&["prod", "--older-than", "0s", "--dry-run"]);
    assert_eq!(dry.matches("would abort  ").count(), 2, "{dry}");
    assert!(dry.contains(PROD_DB) && dry.contains(PROD_MEDIA), "{dry}");
    assert!(!dry.contains("production"), "{dry}");
    assert!(dry.contains("nothing was aborted"), "{dry}");
    assert_eq!(m.pending_uploads().len(), 3);

    // moto 5.2.5 reports every upload as initiated at this fixed time, so
    // "younger than the threshold" needs a threshold past it here (the
    // file:// test has a really fresh one). It shows that the age is the
    // server's Initiated.
    assert!(dry.contains("started 2010-11-10T20:48:33Z"), "{dry}");
    let young = gc(&["prod", "--older-than", "1000000h"]);
    assert!(
        young.contains("no unfinished uploads under `prod/` older than 1000000h"),
        "{young}"
    );
    assert!(
        young.contains("2 upload(s) younger than 1000000h left alone"),
        "{young}"
    );
    assert_eq!(m.pending_uploads().len(), 3);

    let done = gc(&["prod", "--older-than", "0s"]);
    assert_eq!(done.matches("aborted      started").count(), 2, "{done}");
    assert!(
        done.contains("aborted 2 unfinished upload(s) under `prod/`"),
        "{done}"
    );
    assert_eq!(m.pending_uploads(), [PRODUCTION_DB]);

    let again = gc(&["prod", "--older-than", "0s"]);
    assert!(again.contains("no unfinished uploads"), "{again}");
}

#[test]
fn gc_on_a_server_without_list_multipart_uploads_names_the_fix() {
    let s = S3World::new();
    let out = s.sluice().args(["gc", "docs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("S3 server at {}", s.server.endpoint)),
        "{stderr}"
    );
    assert!(stderr.contains("ListMultipartUploads"), "{stderr}");
    assert!(
        stderr.contains("AbortIncompleteMultipartUpload lifecycle rule"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Makes `name` in the store's temporary directory, last written `age` ago
/// (as `touch -d` reads it).
fn temp_file(w: &World, name: &str, age: &str) -> std::path::PathBuf {
    let dir = w.path("store/.sluice-tmp");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, "part of a backup").unwrap();
    let touched = Command::new("touch")
        .arg("-d")
        .arg(age)
        .arg(&path)
        .status()
        .unwrap();
    assert!(touched.success());
    path
}

#[test]
fn gc_on_file_removes_only_the_sets_old_temporary_files() {
    let w = World::new();
    let encode = |key: &str| key.replace('/', "%2F");
    let old = temp_file(
        &w,
        &format!("00000000000000a1.{}.part", encode(PROD_DB)),
        "2 days ago",
    );
    let fresh = temp_file(
        &w,
        &format!("00000000000000a2.{}.part", encode(PROD_MEDIA)),
        "now",
    );
    let other = temp_file(
        &w,
        &format!("00000000000000a3.{}.part", encode(PRODUCTION_DB)),
        "2 days ago",
    );
    // From a key too long for a file name: not attributed to any set.
    let keyless = temp_file(&w, "00000000000000a4.part", "2 days ago");

    let out = w
        .sluice()
        .args(["gc", "prod", "--store", &w.store_url()])
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert!(stdout.contains("aborted      started"), "{stdout}");
    assert!(stdout.contains(PROD_DB), "{stdout}");
    assert!(
        stdout.contains("1 upload(s) younger than 24h left alone"),
        "{stdout}"
    );
    assert!(!old.exists());
    assert!(fresh.exists() && other.exists() && keyless.exists());
}

#[test]
fn gc_refuses_a_threshold_that_is_not_a_duration() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["gc", "prod", "--older-than", "soon"])
        .args(["--store", &w.store_url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a duration"), "{stderr}");
}

#[test]
fn gc_help_says_what_it_leaves_and_the_alternative() {
    let w = World::new();
    let help = stdout_of(&w.sluice().args(["gc", "--help"]).output().unwrap());
    for needle in [
        "[default: 24h]",
        "0s",
        "holds the set's lease",
        "AbortIncompleteMultipartUpload",
        "no manifest names",
        "lease",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

/// Runs `sluice backup prod` (as `command` sets it up) of a source that
/// writes `bytes` random bytes and then waits, and SIGKILLs sluice, and
/// then the source, once `started()` says the upload is open: so sluice
/// gets no chance to clean up.
fn kill_a_backup(world: &World, mut command: Command, bytes: u64, started: impl Fn() -> bool) {
    let pid_file = world.path("source.pid");
    // `exec` keeps the shell's pid for the waiter, so it can be killed.
    let source = format!(
        "dump=command:sh -c 'echo $$ > {}; head -c {bytes} /dev/urandom; exec sleep 120'",
        pid_file.display()
    );
    let mut sluice = command
        .args([
            "backup",
            "prod",
            "-r",
            &world.recipient,
            "--source",
            &source,
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(world.path("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started() {
        if Instant::now() > deadline || sluice.try_wait().unwrap().is_some() {
            let _ = sluice.kill();
            panic!(
                "no upload started: {}",
                fs::read_to_string(world.path("stderr.txt")).unwrap()
            );
        }
        sleep(Duration::from_millis(50));
    }
    sluice.kill().unwrap();
    sluice.wait().unwrap();
    let pid = fs::read_to_string(&pid_file).unwrap();
    Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
}

#[test]
fn gc_aborts_the_upload_of_a_backup_killed_on_s3() {
    let m = MotoWorld::new();
    // Far more than the pipeline holds back (zstd's jobs, channels, the
    // first part), so the multipart upload is open.
    kill_a_backup(&m.world, m.command(), 120_000_000, || {
        !m.pending_uploads().is_empty()
    });

    let left = m.pending_uploads();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with("prod/") && left[0].ends_with("/dump.out.zst.age"),
        "{left:?}"
    );
    // The killed run's lease still holds the set, until it lapses or is broken.
    let refused = m
        .sluice()
        .args(["gc", "prod", "--older-than", "0s"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is in use by `sluice backup`"), "{stderr}");
    assert_eq!(m.pending_uploads(), left);
    stdout_of(&m.sluice().args(["lock", "break", "prod"]).output().unwrap());
    let out = stdout_of(
        &m.sluice()
            .args(["gc", "prod", "--older-than", "0s"])
            .output()
            .unwrap(),
    );
    assert!(out.contains(&left[0]), "{out}");
    assert!(m.pending_uploads().is_empty());
}

#[test]
fn gc_removes_the_temporary_file_of_a_backup_killed_on_file() {
    let w = World::new();
    let tmp = w.path("store/.sluice-tmp");
    let mut command = w.command();
    command.args(["--store", &w.store_url()]);
    kill_a_backup(&w, command, 1_000_000, || w.upload_started());
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 1);

    let lock = |action: &str| {
        w.sluice()
            .args(["lock", action, "prod", "--store", &w.store_url()])
            .output()
            .unwrap()
    };
    let status = stdout_of(&lock("status"));
    assert!(status.contains("lease held"), "{status}");
    assert!(status.contains("`sluice backup` on"), "{status}");
    assert!(status.contains("no longer runs on this host"), "{status}");
    stdout_of(&lock("break"));
    assert!(stdout_of(&lock("status")).contains("is free"));

    let out = stdout_of(
        &w.sluice()
            .args([
                "gc",
                "prod",
                "--older-than",
                "0s",
                "--store",
                &w.store_url(),
            ])
            .output()
            .unwrap(),
    );
    assert!(out.contains("aborted 1 unfinished upload(s)"), "{out}");
    assert!(out.contains("/dump.out.zst.age"), "{out}");
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
}

#[test]
fn gc_removes_the_finished_objects_of_a_backup_killed_part_way() {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "stored before the kill").unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[[sets.prod.sources]]\nname = \"media\"\nkind = \"files\"\npath = \"{}\"\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"sleep\", \"60\"]\n",
            w.store_url(),
            w.recipient,
            data.display()
        ),
    )
    .unwrap();
    let sluice = |args: &[&str]| {
        w.sluice()
            .args(["--config", "sluice.toml"])
            .args(args)
            .output()
            .unwrap()
    };
    // A committed backup of another set, which gc must leave alone.
    let kept = w.backup("other", &[&format!("media=files:{}", data.display())]);

    let mut backup = w
        .command()
        .args(["--config", "sluice.toml", "backup", "prod"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let finished = || {
        walkdir::WalkDir::new(w.path("store/prod"))
            .into_iter()
            .flatten()
            .find(|e| e.file_name() == "media.tar.zst.age")
            .map(|e| e.into_path())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let object = loop {
        if let Some(object) = finished() {
            break object;
        }
        assert!(Instant::now() < deadline, "the first object never appeared");
        sleep(Duration::from_millis(20));
    };
    backup.kill().unwrap();
    backup.wait().unwrap();
    let id = object
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    stdout_of(&sluice(&["lock", "break", "prod"]));
    let dry = stdout_of(&sluice(&["gc", "prod", "--older-than", "0s", "--dry-run"]));
    assert!(
        dry.contains(&format!("would remove  1 object(s) of prod@{id}")),
        "{dry}"
    );
    assert!(object.exists());
    let young = stdout_of(&sluice(&["gc", "prod", "--older-than", "1h"]));
    assert!(young.contains("no objects without a manifest"), "{young}");
    assert!(object.exists());

    let out = stdout_of(&sluice(&["gc", "prod", "--older-than", "0s"]));
    assert!(
        out.contains(&format!("removed      1 object(s) of prod@{id}")),
        "{out}"
    );
    assert!(!object.exists());
    assert!(!w.path("store/prod").join(&id).exists());
    assert_eq!(w.listed_ids("other"), [kept.split_once('@').unwrap().1]);
}
