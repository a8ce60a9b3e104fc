//! `sluice daemon`: each set's schedule fires by the daemon's clock (started
//! at a chosen instant through SLUICE_DAEMON_CLOCK_START), one backup per
//! fire and one at a time per set; SIGTERM stops it cleanly, idle or in the
//! middle of a backup, and a second signal kills the backup at once.

use std::{
    fs,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::support::World;

/// A config with `sets` (TOML for [sets.*] tables, where @DIR@ stands
/// for the world's directory, and `$$` for `$`, as in the config's
/// `${VAR}` interpolation) under the world's store and key.
fn world(sets: &str) -> World {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n{}",
            w.store_url(),
            w.recipient,
            sets.replace("@DIR@", &w.dir.path().display().to_string())
        ),
    )
    .unwrap();
    w
}

/// `sluice daemon` with its clock starting at `clock`, stdout and stderr
/// in daemon.out and daemon.log.
fn start_daemon(w: &World, clock: &str) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("sluice"))
        .current_dir(w.dir.path())
        .args(["--config", "sluice.toml", "daemon"])
        .env("SLUICE_DAEMON_CLOCK_START", clock)
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_STORE")
        .env_remove("SLUICE_LOG")
        .stdin(Stdio::null())
        .stdout(fs::File::create(w.path("daemon.out")).unwrap())
        .stderr(fs::File::create(w.path("daemon.log")).unwrap())
        .spawn()
        .unwrap()
}

fn log(w: &World) -> String {
    fs::read_to_string(w.path("daemon.log")).unwrap()
}

/// Waits up to `limit` for `done`, failing with the daemon's log.
fn wait_for(w: &World, what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the daemon's log:\n{}",
            log(w)
        );
        sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The daemon's exit status, which must come within `limit`.
fn exit_within(w: &World, child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the daemon did not stop; its log:\n{}", log(w));
        }
        sleep(Duration::from_millis(50));
    }
}

fn store_files(w: &World) -> Vec<String> {
    walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().display().to_string())
        .collect()
}

/// Whether the process whose pid a file holds is gone.
fn is_gone(pid_file: &Path) -> bool {
    let pid = fs::read_to_string(pid_file).unwrap();
    assert!(pid.trim().parse::<u32>().is_ok(), "pid file holds {pid:?}");
    !Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[test]
fn a_set_is_backed_up_when_its_schedule_fires_and_only_then() {
    let w = world(
        "[sets.nightly]\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n\
         [[sets.nightly.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"nightly\"]\n\
         [sets.noon]\nschedule = \"0 12 * * *\"\n\
         [[sets.noon.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"noon\"]\n\
         [sets.manual]\n[[sets.manual.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"manual\"]\n",
    );
    // 02:29:57 in Berlin.
    let started = Instant::now();
    let mut daemon = start_daemon(&w, "2026-01-01T01:29:57Z");
    wait_for(&w, "the nightly backup", Duration::from_secs(30), || {
        !w.listed_ids("nightly").is_empty()
    });
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the backup ran before 02:30"
    );
    sleep(Duration::from_secs(2));
    assert_eq!(w.listed_ids("nightly").len(), 1);
    assert!(w.listed_ids("noon").is_empty());
    assert!(w.listed_ids("manual").is_empty());

    let log = log(&w);
    for line in [
        "set `nightly`: next backup at 2026-01-01T02:30:00+01:00[Europe/Berlin]",
        "set `noon`: next backup at 2026-01-01T12:00:00+00:00[UTC]",
        "next backup at 2026-01-02T02:30:00+01:00[Europe/Berlin]",
        "set `nightly`: backup done",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert!(!log.contains("manual"), "{log}");
    let out = fs::read_to_string(w.path("daemon.out")).unwrap();
    assert!(out.starts_with("nightly@"), "{out}");

    // Idle, SIGTERM stops it at once.
    signal(&daemon, "TERM");
    let status = exit_within(&w, &mut daemon, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", self::log(&w));
}

#[test]
fn sigterm_aborts_the_running_backup_cleanly_after_an_overlapping_fire_was_skipped() {
    let w = world(
        "[sets.slow]\nschedule = \"* * * * *\"\n[[sets.slow.sources]]\nname = \"db\"\nkind = \"command\"\n\
         backup = [\"sh\", \"-c\", \"echo $$$$ > @DIR@/dumper.pid; head -c 5000000 /dev/urandom; sleep 120\"]\n",
    );
    let pid_file = w.path("dumper.pid");
    let mut daemon = start_daemon(&w, "2026-01-01T02:29:58Z");
    wait_for(&w, "the dump to start", Duration::from_secs(30), || {
        fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))
    });
    // The next minute's fire finds the backup still running.
    wait_for(&w, "the skipped fire", Duration::from_secs(90), || {
        log(&w).contains("set `slow`: skipped the backup due at 2026-01-01T02:31:00+00:00[UTC]: the previous one is still running; next backup at 2026-01-01T02:32:00+00:00[UTC]")
    });

    signal(&daemon, "TERM");
    let status = exit_within(&w, &mut daemon, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", log(&w));
    assert!(log(&w).contains("stopping"), "{}", log(&w));
    assert!(is_gone(&pid_file), "the dump process survived");
    assert!(w.listed_ids("slow").is_empty());
    // No object, no temporary file, and the lease was given back.
    assert_eq!(
        store_files(&w),
        [w.path("store/slow/lease.json").display().to_string()]
    );
    let lease = fs::read_to_string(w.path("store/slow/lease.json")).unwrap();
    assert!(lease.contains(r#""released": true"#), "{lease}");
}

#[test]
fn a_second_signal_kills_a_backup_that_is_still_stopping() {
    // The after hook runs even when the backup is stopped, and keeps it
    // busy for a minute.
    let w = world(
        "[sets.slow]\nschedule = \"30 2 * * *\"\n\
         after = [\"sh\", \"-c\", \"echo $$$$ > @DIR@/after.pid; sleep 60\"]\n\
         [[sets.slow.sources]]\nname = \"db\"\nkind = \"command\"\n\
         backup = [\"sh\", \"-c\", \"echo $$$$ > @DIR@/dumper.pid; sleep 120\"]\n",
    );
    let mut daemon = start_daemon(&w, "2026-01-01T02:29:58Z");
    wait_for(&w, "the dump to start", Duration::from_secs(30), || {
        fs::read_to_string(w.path("dumper.pid")).is_ok_and(|p| p.ends_with('\n'))
    });
    signal(&daemon, "TERM");
    wait_for(&w, "the after hook", Duration::from_secs(30), || {
        fs::read_to_string(w.path("after.pid")).is_ok_and(|p| p.ends_with('\n'))
    });
    signal(&daemon, "TERM");
    let status = exit_within(&w, &mut daemon, Duration::from_secs(10));
    // The hook runs in its own process group and outlives the backup.
    let hook = fs::read_to_string(w.path("after.pid")).unwrap();
    let _ = Command::new("kill").args(["-KILL", hook.trim()]).status();
    assert_eq!(status.code(), Some(1), "{}", log(&w));
    let log = log(&w);
    assert!(
        log.contains("stopped by a second signal, killing the backups of `slow`"),
        "{log}"
    );
    assert!(is_gone(&w.path("dumper.pid")), "the dump process survived");
}

#[test]
fn sets_without_a_schedule_are_refused_with_the_fix() {
    let manual = "[sets.manual]\n[[sets.manual.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"x\"]\n";
    let refused = |w: &World, args: &[&str]| {
        let out = w
            .sluice()
            .args(["--config", "sluice.toml", "daemon"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let w = world(manual);
    let stderr = refused(&w, &[]);
    assert!(
        stderr.contains("no set in `sluice.toml` has a `schedule`: add one to a [sets.NAME]"),
        "{stderr}"
    );
    let stderr = refused(&w, &["manual"]);
    assert!(
        stderr.contains("set `manual` has no `schedule`: add one to [sets.manual]"),
        "{stderr}"
    );

    let w = world(&format!(
        "{manual}[sets.mars]\nschedule = \"0 0 * * *\"\ntimezone = \"Mars/Olympus\"\n\
         [[sets.mars.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"x\"]\n\
         [sets.never]\nschedule = \"0 0 30 2 *\"\n\
         [[sets.never.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"x\"]\n"
    ));
    let stderr = refused(&w, &["mars"]);
    assert!(
        stderr.contains("set `mars`: unknown time zone `Mars/Olympus`"),
        "{stderr}"
    );
    let stderr = refused(&w, &["never"]);
    assert!(stderr.contains("`0 0 30 2 *` never fires"), "{stderr}");
    let stderr = refused(&w, &["staging"]);
    assert!(stderr.contains("set `staging` is not in"), "{stderr}");
}
