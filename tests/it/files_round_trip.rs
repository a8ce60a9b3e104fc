//! A directory goes in and comes back byte for byte.

use std::{fs, os::unix::fs::PermissionsExt};

use crate::support::{World, has_sluice_leftovers, random_bytes, tree};

#[test]
fn a_directory_round_trips_byte_for_byte() {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir_all(data.join("nested/deeper/still")).unwrap();
    fs::write(data.join("nested/deeper/still/leaf.txt"), "leaf\n").unwrap();
    fs::write(data.join("ünïcødé – 名前.txt"), "unicode name\n").unwrap();
    fs::write(data.join("empty"), "").unwrap();
    fs::write(data.join("big.bin"), random_bytes(50 * 1024 * 1024, 7)).unwrap();
    fs::write(data.join("script.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(data.join("script.sh"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("nested/deeper/still/leaf.txt", data.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/outside", data.join("dangling")).unwrap();
    let long = "d".repeat(120);
    fs::create_dir_all(data.join(&long).join(&long)).unwrap();
    fs::write(data.join(&long).join(&long).join("long-path.txt"), "long").unwrap();

    let backup = w.backup("docs", &[&format!("docs=files:{}", data.display())]);

    let out = w.path("out");
    w.sluice()
        .args(["restore", &backup, "--store", &w.store_url(), "-i"])
        .arg(w.key())
        .arg("--into")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(tree(&out), tree(&data));
    assert!(!has_sluice_leftovers(&out));
    let object = fs::metadata(w.object_path(&backup, "docs.tar.zst.age")).unwrap();
    assert!(
        object.len() > 50 * 1024 * 1024,
        "50 MB of random data cannot shrink"
    );
}

#[test]
fn a_non_empty_target_needs_yes_and_is_then_replaced() {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("new.txt"), "from the backup").unwrap();
    let backup = w.backup("docs", &[&format!("docs=files:{}", data.display())]);

    let out = w.path("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("old.txt"), "already there").unwrap();
    let restore = |yes: bool| {
        let mut cmd = w.sluice();
        cmd.args(["restore", &backup, "--store", &w.store_url(), "-i"])
            .arg(w.key())
            .arg("--into")
            .arg(&out);
        if yes {
            cmd.arg("--yes");
        }
        cmd.assert()
    };
    let refused = restore(false).failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("--yes"), "{stderr}");
    assert_eq!(
        fs::read_to_string(out.join("old.txt")).unwrap(),
        "already there"
    );

    restore(true).success();
    assert_eq!(tree(&out), tree(&data));
    assert!(!has_sluice_leftovers(&out));
}

#[test]
fn excluded_paths_are_left_out() {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir_all(data.join("cache/x")).unwrap();
    fs::write(data.join("cache/x/big"), "cached").unwrap();
    fs::write(data.join("keep"), "keep").unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[[sets.media.sources]]\nname = \"media\"\nkind = \"files\"\npath = \"{}\"\nexclude = [\"cache/**\"]\n",
            w.store_url(),
            w.recipient,
            data.display()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "media"]).assert().success();
    let out = w.path("out");
    w.sluice()
        .args(["restore", "media@latest", "-i"])
        .arg(w.key())
        .arg("--into")
        .arg(&out)
        .assert()
        .success();
    assert!(out.join("keep").exists());
    assert!(out.join("cache").is_dir());
    assert!(!out.join("cache/x").exists());
}

/// Needs root, to mount a tmpfs (as `scripts/test.sh` runs in CI).
#[test]
fn a_mount_point_inside_the_target_is_refused_before_anything_changes() {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("new.txt"), "new").unwrap();
    let backup = w.backup("docs", &[&format!("docs=files:{}", data.display())]);
    let target = w.path("target");
    fs::create_dir_all(target.join("mnt")).unwrap();
    fs::write(target.join("old.txt"), "old").unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "sluice-test",
            target.join("mnt").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(mounted.success(), "this test mounts a tmpfs and needs root");
    let out = w
        .sluice()
        .args(["restore", &backup, "--yes", "--store", &w.store_url(), "-i"])
        .arg(w.key())
        .arg("--into")
        .arg(&target)
        .output()
        .unwrap();
    let _ = std::process::Command::new("umount")
        .arg(target.join("mnt"))
        .status();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a mount point"));
    assert_eq!(fs::read_to_string(target.join("old.txt")).unwrap(), "old");
    assert!(!has_sluice_leftovers(&target));
}

#[test]
fn replacing_targets_needs_yes_or_their_names_typed_at_a_terminal() {
    let w = World::new();
    let backed_up = b"backed up".to_vec();
    let (first, second) = w.back_up_two_directories("a.txt", [backed_up.clone(), backed_up]);
    for dir in [&first, &second] {
        fs::write(dir.join("a.txt"), "changed since").unwrap();
    }

    // A script: refused, naming both targets.
    let out = w
        .sluice()
        .args(["restore", "both", "-i", "key.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "restoring into {} and {} replaces what is there now",
            first.display(),
            second.display()
        )),
        "{stderr}"
    );

    // At a terminal: each name is asked for; a wrong one stops everything.
    let at_terminal = |typed: &str| {
        let sluice = assert_cmd::cargo::cargo_bin("sluice");
        let command =
            shell_words::join([sluice.to_str().unwrap(), "restore", "both", "-i", "key.txt"]);
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(w.dir.path())
            .env("SLUICE_TRUSTED_SIGNERS", &w.signer)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(typed.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, shown) = at_terminal("first\nsecnd\n");
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("Type `second` to go on"), "{shown}");
    assert!(
        shown.contains("`secnd` is not `second`, so nothing was restored"),
        "{shown}"
    );
    for dir in [&first, &second] {
        assert_eq!(
            fs::read_to_string(dir.join("a.txt")).unwrap(),
            "changed since"
        );
    }
    let (code, shown) = at_terminal("first\nsecond\n");
    assert_eq!(code, Some(0), "{shown}");
    for dir in [&first, &second] {
        assert_eq!(fs::read_to_string(dir.join("a.txt")).unwrap(), "backed up");
    }
}

#[test]
fn a_target_whose_parent_is_missing_is_refused_and_nothing_is_created() {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "a").unwrap();
    let backup = w.backup("docs", &[&format!("docs=files:{}", data.display())]);
    let target = w.path("nwe/host/docs");
    let out = w
        .sluice()
        .args([
            "restore",
            &backup,
            "-i",
            "key.txt",
            "--store",
            &w.store_url(),
            "--into",
        ])
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "its parent `{}` does not exist; create it first",
            w.path("nwe/host").display()
        )),
        "{stderr}"
    );
    assert!(!w.path("nwe").exists());
}
