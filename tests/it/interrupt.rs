//! SIGTERM (or Ctrl-C) stops a run cleanly: a restore command is killed
//! before its stdin could close, and a backup leaves no object, manifest or
//! temporary file.

use std::{
    fs,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::support::{World, random_bytes};

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_with_deadline(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sluice did not stop after SIGTERM"
        );
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_during_a_restore_kills_the_restore_command_first() {
    let w = World::new();
    let dump = w.path("dump.bin");
    fs::write(&dump, random_bytes(8 * 1024 * 1024, 9)).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[[sets.db.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"cat\", \"{}\"]\n\
             restore = [\"sh\", \"-c\", \"echo $$$$ > restorer.pid; sleep 3; cat > restored.partial && mv restored.partial restored.txt\"]\n",
            w.store_url(),
            w.recipient,
            dump.display()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "db"]).assert().success();

    let mut sluice = w
        .command()
        .args(["restore", "db", "--yes", "-i", "key.txt"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.path("restorer.pid").exists() {
        assert!(
            Instant::now() < deadline,
            "the restore command never started"
        );
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_millis(300));
    sigterm(sluice.id());
    let status = wait_with_deadline(&mut sluice);
    assert_eq!(status.code(), Some(1));

    // The restore command was killed, not left to read a clean EOF later.
    sleep(Duration::from_millis(3500));
    assert!(
        !w.path("restored.txt").exists(),
        "the restore command saw a clean end of input"
    );
    let pid = fs::read_to_string(w.path("restorer.pid")).unwrap();
    assert!(pid.trim().parse::<u32>().is_ok(), "pid file holds {pid:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the restore command survived"
    );
}

#[test]
fn sigterm_during_a_backup_leaves_nothing_behind() {
    let w = World::new();
    let mut sluice = w
        .command()
        .args(["backup", "s", "--store", &w.store_url(), "-r", &w.recipient])
        .args([
            "--source",
            "x=command:sh -c 'head -c 1000000 /dev/urandom; sleep 30'",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(700));
    sigterm(sluice.id());
    let status = wait_with_deadline(&mut sluice);
    assert_eq!(status.code(), Some(1));
    // Nothing but the set's lease, given back (marked released).
    let files: Vec<_> = walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() != "lease.json")
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(files.is_empty(), "left behind: {files:?}");
}
