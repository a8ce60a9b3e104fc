//! Mistakes get one clear message naming the thing and the fix, and the
//! exit codes of DESIGN.md: 2 for usage and config errors, 1 for failures.

use std::fs;

use crate::support::World;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_store_directory_is_named_with_the_fix() {
    let w = World::new();
    let out = w
        .sluice()
        .args([
            "backup",
            "s",
            "--store",
            "file:///nonexistent/sluice-store",
            "-r",
            &w.recipient,
        ])
        .args(["--source", "x=command:echo hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("store directory `/nonexistent/sluice-store` does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("mkdir -p"), "{stderr}");
}

#[test]
fn a_bad_config_line_is_named_and_exits_2() {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        "[store]\nurl = \"file:///x\"\nparallel_parts = 8\n",
    )
    .unwrap();
    let out = w.sluice().args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("sluice.toml"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(
        stderr.contains("unknown field `parallel_parts`"),
        "{stderr}"
    );
}

#[test]
fn a_set_without_sources_says_how_to_add_some() {
    let w = World::new();
    let out = w
        .sluice()
        .args([
            "backup",
            "prod",
            "--store",
            &w.store_url(),
            "-r",
            &w.recipient,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("--source NAME=KIND:ARG"));
}

#[test]
fn a_backup_without_recipients_says_how_to_make_a_key() {
    let w = World::new();
    let out = w
        .sluice()
        .args([
            "backup",
            "prod",
            "--store",
            &w.store_url(),
            "--source",
            "x=command:echo",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("no recipients for set `prod`"), "{stderr}");
    assert!(stderr.contains("sluice keygen"), "{stderr}");
}

#[test]
fn a_bad_source_flag_is_a_usage_error() {
    let w = World::new();
    let out = w
        .sluice()
        .args([
            "backup",
            "prod",
            "--store",
            &w.store_url(),
            "--source",
            "x=ftp:host",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("unknown source kind `ftp`"));
}

#[test]
fn restore_without_an_identity_says_where_to_give_one() {
    let w = World::new();
    w.backup("s", &["x=command:echo hi"]);
    let out = w
        .sluice()
        .args(["restore", "s", "--store", &w.store_url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("SLUICE_IDENTITY_FILE"));
}

#[test]
fn an_unreadable_source_directory_fails_the_backup() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["backup", "s", "--store", &w.store_url(), "-r", &w.recipient])
        .args(["--source", "x=files:/nonexistent/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("could not read `/nonexistent/dir`"));
    assert!(w.listed_ids("s").is_empty());
}

#[test]
fn keygen_never_overwrites_an_identity() {
    let w = World::new();
    let before = fs::read(w.key()).unwrap();
    let out = w
        .sluice()
        .args(["keygen", "-o", "key.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read(w.key()).unwrap(), before);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sluice never overwrites a key"), "{stderr}");
}

#[test]
fn an_identity_printed_to_a_file_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let path = w.path("redirected.txt");
    let file = fs::File::create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("sluice"))
        .arg("keygen")
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        fs::read_to_string(&path)
            .unwrap()
            .contains("AGE-SECRET-KEY-1")
    );
}
