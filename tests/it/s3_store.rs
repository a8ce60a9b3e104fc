//! The real `sluice` binary against `s3://bucket/backups` on s3s-fs, with
//! faults injected by a proxy between them: multipart round trips, retried
//! and exhausted part uploads, a damaged object, and listings past one page.

use std::{
    fs,
    thread::sleep,
    time::{Duration, Instant},
};

use crate::support::{
    random_bytes,
    s3::{Fault, S3World},
    tree,
};

/// A 12 MiB random file in `data/`: three 5 MiB parts once encrypted.
fn data_dir(s: &S3World) -> std::path::PathBuf {
    let data = s.world.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("big.bin"), random_bytes(12 * 1024 * 1024, 11)).unwrap();
    fs::write(data.join("small.txt"), "small\n").unwrap();
    data
}

fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "sluice failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

fn restore(s: &S3World, backup: &str, into: &str) -> std::process::Output {
    s.sluice()
        .args(["restore", backup, "--yes", "-i"])
        .arg(s.world.key())
        .arg("--into")
        .arg(s.world.path(into))
        .output()
        .unwrap()
}

/// The files s3s-fs holds under a set: its objects (the set's lease is
/// gone once a run ends).
/// The set's files on the server, but its lease (left marked released).
fn stored_files(s: &S3World, set: &str) -> Vec<String> {
    walkdir::WalkDir::new(s.server.object_file(set))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() != "lease.json")
        .map(|e| e.path().display().to_string())
        .collect()
}

fn listed_ids(s: &S3World, set: &str) -> Vec<String> {
    let out = succeeded(&s.sluice().args(["list", set, "--json"]).output().unwrap());
    let entries: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_multi_part_backup_round_trips_through_s3() {
    let s = S3World::new();
    let data = data_dir(&s);
    let backup = succeeded(&s.backup("docs", &format!("docs=files:{}", data.display())));
    let (set, id) = backup.split_once('@').unwrap();

    assert_eq!(listed_ids(&s, set), [id]);
    let all = succeeded(&s.sluice().args(["list", "--json"]).output().unwrap());
    assert!(all.contains(id), "{all}");
    assert!(s.server.upload_part_requests() >= 3);
    let object = s
        .server
        .object_file(&format!("{set}/{id}/docs.tar.zst.age"));
    assert!(fs::metadata(object).unwrap().len() > 12 * 1024 * 1024);
    assert!(
        s.server
            .object_file(&format!("{set}/{id}/manifest.json"))
            .is_file()
    );
    assert_eq!(s.server.pending_uploads(), 0);

    succeeded(&restore(&s, &backup, "out"));
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}

#[test]
fn an_object_fetched_with_plain_get_object_opens_with_stock_age_and_zstd() {
    let s = S3World::new();
    let data = data_dir(&s);
    let backup = succeeded(&s.backup("docs", &format!("docs=files:{}", data.display())));
    let (set, id) = backup.split_once('@').unwrap();

    let key = format!("backups/{set}/{id}/docs.tar.zst.age");
    let body = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let object = s
            .server
            .client()
            .get_object()
            .bucket("bucket")
            .key(&key)
            .send()
            .await;
        object.unwrap().body.collect().await.unwrap().into_bytes()
    });
    let fetched = s.world.path("fetched.tar.zst.age");
    fs::write(&fetched, &body).unwrap();
    let out = s.world.path("out");
    fs::create_dir(&out).unwrap();
    let opened = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i '{}' '{}' | zstd -d | tar -x -C '{}'",
            s.world.key().display(),
            fetched.display(),
            out.display()
        ))
        .output()
        .expect("sh runs; install age and zstd (apt-get install -y age zstd)");
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert_eq!(tree(&out), tree(&data));
}

#[test]
fn a_part_failing_twice_is_retried_and_the_backup_succeeds() {
    let s = S3World::new();
    let data = data_dir(&s);
    s.server
        .fail_upload_parts(|n| (n == 2 || n == 3).then_some(Fault::InternalError));
    let out = s.backup("docs", &format!("docs=files:{}", data.display()));
    let backup = succeeded(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(s.server.upload_part_requests() >= 5);

    succeeded(&restore(&s, &backup, "out"));
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}

#[test]
fn a_connection_dropped_mid_part_is_retried() {
    let s = S3World::new();
    let data = data_dir(&s);
    s.server
        .fail_upload_parts(|n| (n == 1).then_some(Fault::Drop));
    let backup = succeeded(&s.backup("docs", &format!("docs=files:{}", data.display())));

    succeeded(&restore(&s, &backup, "out"));
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}

#[test]
fn a_part_the_server_never_answers_times_out_and_is_retried() {
    let s = S3World::with_store_settings("read-timeout = \"1s\"");
    let data = data_dir(&s);
    s.server
        .fail_upload_parts(|n| (n == 2).then_some(Fault::Hang));
    let started = std::time::Instant::now();
    let out = s.backup("docs", &format!("docs=files:{}", data.display()));
    let backup = succeeded(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    succeeded(&restore(&s, &backup, "out"));
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}

#[test]
fn a_completed_upload_whose_answer_was_lost_still_makes_the_backup() {
    let s = S3World::new();
    let data = data_dir(&s);
    s.server
        .fail_completes(|n| (n == 1).then_some(Fault::LoseAnswer));
    let backup = succeeded(&s.backup("docs", &format!("docs=files:{}", data.display())));

    assert_eq!(s.server.pending_uploads(), 0);
    succeeded(&restore(&s, &backup, "out"));
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}

#[test]
fn a_server_that_keeps_failing_fails_the_backup_and_leaves_no_upload() {
    let s = S3World::new();
    let data = data_dir(&s);
    s.server.fail_upload_parts(|_| Some(Fault::InternalError));
    let out = s.backup("docs", &format!("docs=files:{}", data.display()));

    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not upload part"), "{stderr}");
    assert!(stderr.contains("after 4 attempt(s)"), "{stderr}");
    assert!(stderr.contains("s3://bucket/backups/docs/"), "{stderr}");
    assert!(!stderr.contains(crate::support::s3::SECRET_KEY), "{stderr}");
    assert_eq!(
        s.server.pending_uploads(),
        0,
        "the multipart upload was not aborted"
    );
    assert!(listed_ids(&s, "docs").is_empty());
    assert_eq!(stored_files(&s, "docs"), Vec::<String>::new());
}

#[test]
fn sigterm_during_an_s3_backup_aborts_the_multipart_upload() {
    let s = S3World::new();
    let data = data_dir(&s);
    // Parts never get an answer, so the run is mid-upload when stopped.
    s.server.fail_upload_parts(|_| Some(Fault::Hang));
    let mut sluice = s
        .command()
        .args(["backup", "docs", "-r", &s.world.recipient, "--source"])
        .arg(format!("docs=files:{}", data.display()))
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(s.world.path("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.server.pending_uploads() == 0 {
        if Instant::now() > deadline || sluice.try_wait().unwrap().is_some() {
            let _ = sluice.kill();
            panic!(
                "no multipart upload started: {}",
                fs::read_to_string(s.world.path("stderr.txt")).unwrap()
            );
        }
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_millis(300));
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &sluice.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = sluice.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sluice did not stop after SIGTERM"
        );
        sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        s.server.pending_uploads(),
        0,
        "the multipart upload was left behind"
    );
    assert_eq!(stored_files(&s, "docs"), Vec::<String>::new());
}

#[test]
fn a_byte_altered_on_the_server_fails_the_restore() {
    let s = S3World::new();
    let data = data_dir(&s);
    let backup = succeeded(&s.backup("docs", &format!("docs=files:{}", data.display())));
    let (set, id) = backup.split_once('@').unwrap();
    let object = s
        .server
        .object_file(&format!("{set}/{id}/docs.tar.zst.age"));
    let mut bytes = fs::read(&object).unwrap();
    let middle = 7 * 1024 * 1024;
    bytes[middle] ^= 0x01;
    fs::write(&object, bytes).unwrap();

    let out = restore(&s, &backup, "out");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("part 2 of `docs.tar.zst.age`")
            && stderr.contains("does not match its SHA-256"),
        "{stderr}"
    );
    let out_dir = s.world.path("out");
    assert!(!out_dir.exists() || fs::read_dir(&out_dir).unwrap().next().is_none());
}

#[test]
fn latest_is_found_past_the_first_page_of_a_listing() {
    let s = S3World::new();
    let data = s.world.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("newest.txt"), "the newest backup\n").unwrap();
    let backup = succeeded(&s.backup("docs", &format!("docs=files:{}", data.display())));
    let (set, id) = backup.split_once('@').unwrap();

    // 1,500 older backups, written straight into the server's directory:
    // their ids sort first, so the real one is on the second page of the listing.
    let manifest =
        fs::read_to_string(s.server.object_file(&format!("{set}/{id}/manifest.json"))).unwrap();
    for i in 0..1500u32 {
        let old = format!(
            "2020{:02}{:02}T{:02}0000Z-{i:04x}",
            1 + i % 12,
            1 + i % 28,
            i % 24
        );
        let dir = s.server.object_file(&format!("{set}/{old}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("manifest.json"), manifest.replace(id, &old)).unwrap();
    }

    let ids = listed_ids(&s, set);
    assert_eq!(ids.len(), 1501);
    assert_eq!(ids.last().unwrap(), id);
    succeeded(&restore(&s, "docs@latest", "out"));
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}

#[test]
fn a_server_that_stops_answering_trips_the_stall_watchdog() {
    // The per-attempt read timeout is far away; only the watchdog can stop this.
    let s = S3World::with_store_settings("read-timeout = \"600s\"\nstall-timeout = \"2s\"");
    let data = data_dir(&s);
    s.server.fail_upload_parts(|_| Some(Fault::Hang));
    let started = Instant::now();
    let out = s.backup("docs", &format!("docs=files:{}", data.display()));

    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no part stored for 2s"), "{stderr}");
    assert!(stderr.contains("stall-timeout"), "{stderr}");
    assert_eq!(s.server.pending_uploads(), 0, "the upload was not aborted");
    assert!(listed_ids(&s, "docs").is_empty());
}

#[test]
fn a_dump_that_hangs_is_stopped_by_the_watchdog_and_killed() {
    let s = S3World::with_store_settings("stall-timeout = \"2s\"");
    let started = Instant::now();
    let out = s.backup("db", "db=command:sh -c 'echo begin; exec sleep 90'");

    assert_eq!(out.status.code(), Some(1));
    // Well before `sleep` would end on its own: the dump was killed.
    assert!(started.elapsed() < Duration::from_secs(45));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no byte was read from the source"),
        "{stderr}"
    );
    assert!(listed_ids(&s, "db").is_empty());
}
