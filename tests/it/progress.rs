//! Progress bars: drawn on a terminal (a pseudo-terminal from util-linux's
//! `script`), never when stderr is a pipe, with `-q` or with JSON logs.
//! Only bars show a rate (`MiB/s`); log lines do not.

use std::{fs, process::Command};

use crate::support::World;

/// Runs `sluice ARGS` on a pseudo-terminal in `w`'s directory and returns
/// everything it wrote there (stdout and stderr together).
fn on_terminal(w: &World, args: &[&str]) -> String {
    let sluice = assert_cmd::cargo::cargo_bin("sluice");
    let command =
        shell_words::join(std::iter::once(sluice.to_str().unwrap()).chain(args.iter().copied()));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(w.dir.path())
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_STORE")
        .env_remove("SLUICE_LOG")
        .env("SLUICE_SIGNING_KEY_FILE", w.path("signing.key"))
        .env("SLUICE_TRUSTED_SIGNERS", &w.signer)
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed on a terminal: {text}"
    );
    text
}

/// Writes 3 MiB to back up; returns `backup p …` of it into `w`'s store.
fn backup_args(w: &World) -> Vec<String> {
    fs::create_dir(w.path("data")).unwrap();
    fs::write(
        w.path("data/a.bin"),
        crate::support::random_bytes(3 << 20, 7),
    )
    .unwrap();
    let source = format!("d=files:{}", w.path("data").display());
    [
        "backup",
        "p",
        "--store",
        &w.store_url(),
        "-r",
        &w.recipient,
        "--source",
        &source,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `flags` before `args`, as one argument list.
fn with<'a>(flags: &[&'a str], args: &'a [String]) -> Vec<&'a str> {
    flags
        .iter()
        .copied()
        .chain(args.iter().map(String::as_str))
        .collect()
}

#[test]
fn backup_and_restore_draw_bars_on_a_terminal() {
    let w = World::new();
    let backup = on_terminal(&w, &with(&[], &backup_args(&w)));
    assert!(
        backup.contains("d.tar.zst.age: 3.00 MiB read,") && backup.contains("stored,"),
        "no backup bar: {backup}"
    );
    let key = w.key();
    let restore = on_terminal(
        &w,
        &[
            "restore",
            "p@latest",
            "--store",
            &w.store_url(),
            "-i",
            key.to_str().unwrap(),
            "--into",
            "out",
        ],
    );
    assert!(
        restore.contains("d.tar.zst.age [") && restore.contains("/3.00 MiB"),
        "no restore bar: {restore}"
    );
    assert_eq!(
        fs::read(w.path("out/a.bin")).unwrap(),
        fs::read(w.path("data/a.bin")).unwrap()
    );
}

#[test]
fn no_bars_off_a_terminal_with_quiet_or_json_logs() {
    let w = World::new();
    let args = backup_args(&w);
    let piped = w.sluice().args(&args).output().unwrap();
    assert!(piped.status.success());
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(stderr.contains("stored d.tar.zst.age"), "{stderr}");
    assert!(!stderr.contains("MiB/s") && !stderr.contains('\r') && !stderr.contains('\x1b'));

    let quiet = on_terminal(&w, &with(&["-q"], &args));
    assert!(!quiet.contains("MiB/s"), "a bar despite -q: {quiet}");
    assert!(quiet.trim().starts_with("p@"), "{quiet}");

    let json = on_terminal(&w, &with(&["--log-format", "json"], &args));
    assert!(!json.contains("MiB/s"), "a bar with JSON logs: {json}");
    for line in json.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(line).expect("each log line is JSON");
    }
    assert!(json.contains(r#""level":"INFO""#), "{json}");
}
