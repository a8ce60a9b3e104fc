//! `sluice verify` reads a backup back through every check and writes
//! nothing: it passes an intact backup, and names a flipped byte, a
//! truncated object, a missing object and a wrong key, with exit code 1.

use std::{fs, path::PathBuf};

use crate::support::{World, random_bytes};

/// A backup of two sources (a directory and a command's output, 3 MiB
/// each, 1 MiB parts); returns the world and `SET@ID`.
fn backed_up() -> (World, String) {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("blob"), random_bytes(3 * 1024 * 1024, 1)).unwrap();
    fs::write(w.path("dump.bin"), random_bytes(3 * 1024 * 1024, 2)).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\npart-size = \"1MiB\"\n[keys]\nrecipients = [\"{}\"]\n[[sets.prod.sources]]\nname = \"media\"\nkind = \"files\"\npath = \"{}\"\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"cat\", \"{}\"]\n",
            w.store_url(),
            w.recipient,
            data.display(),
            w.path("dump.bin").display()
        ),
    )
    .unwrap();
    let out = w.sluice().args(["backup", "prod"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (w, backup)
}

/// `sluice verify prod@latest [-i KEY]`: (exit code, stdout, stderr).
fn verify(w: &World, identity: Option<&PathBuf>) -> (Option<i32>, String, String) {
    let mut cmd = w.sluice();
    cmd.args(["verify", "prod@latest"]);
    if let Some(identity) = identity {
        cmd.arg("-i").arg(identity);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn store_files(w: &World) -> Vec<(PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_owned(), fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn an_intact_backup_passes_every_check_and_nothing_is_written() {
    let (w, backup) = backed_up();
    let before = store_files(&w);
    let entries = fs::read_dir(w.dir.path()).unwrap().count();

    let (code, stdout, stderr) = verify(&w, Some(&w.key()));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(&format!("verifying {backup}")), "{stdout}");
    assert_eq!(stdout.matches("every check passed").count(), 2, "{stdout}");
    assert_eq!(store_files(&w), before);
    assert_eq!(fs::read_dir(w.dir.path()).unwrap().count(), entries);
}

#[test]
fn without_an_identity_the_stored_bytes_are_checked_and_the_rest_is_named() {
    let (w, _) = backed_up();
    let (code, stdout, stderr) = verify(&w, None);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout
            .matches("stored bytes only (sizes, SHA-256, age header); not decrypted without an identity (-i)")
            .count(),
        2,
        "{stdout}"
    );
}

#[test]
fn a_flipped_byte_fails_with_or_without_an_identity() {
    let (w, backup) = backed_up();
    let object = w.object_path(&backup, "db.out.zst.age");
    let mut bytes = fs::read(&object).unwrap();
    bytes[2 * 1024 * 1024 + 17] ^= 0x01;
    fs::write(&object, bytes).unwrap();

    for identity in [Some(w.key()), None] {
        let (code, stdout, stderr) = verify(&w, identity.as_ref());
        assert_eq!(code, Some(1), "{stdout}");
        assert!(stdout.contains("ok      media.tar.zst.age"), "{stdout}");
        assert!(stdout.contains("FAILED  db.out.zst.age"), "{stdout}");
        assert!(
            stdout.contains("part 3 of `db.out.zst.age` does not match its SHA-256"),
            "{stdout}"
        );
        assert!(stderr.contains("1 of 2 object(s)"), "{stderr}");
    }
}

#[test]
fn a_truncated_object_fails() {
    let (w, backup) = backed_up();
    let object = w.object_path(&backup, "media.tar.zst.age");
    let bytes = fs::read(&object).unwrap();
    fs::write(&object, &bytes[..bytes.len() - 1000]).unwrap();

    let (code, stdout, _) = verify(&w, Some(&w.key()));
    assert_eq!(code, Some(1));
    assert!(stdout.contains("FAILED  media.tar.zst.age"), "{stdout}");
    assert!(stdout.contains("truncated or replaced"), "{stdout}");
}

#[test]
fn a_missing_object_fails() {
    let (w, backup) = backed_up();
    fs::remove_file(w.object_path(&backup, "db.out.zst.age")).unwrap();

    let (code, stdout, _) = verify(&w, None);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("FAILED  db.out.zst.age"), "{stdout}");
    assert!(stdout.contains("is missing from the store"), "{stdout}");
}

#[test]
fn a_key_that_opens_nothing_fails_and_says_so() {
    let (w, backup) = backed_up();
    let other = World::new();

    let (code, stdout, stderr) = verify(&w, Some(&other.key()));
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        stdout
            .matches("not decrypted, as no identity given opens it")
            .count(),
        2
    );
    assert!(
        stderr.contains("none of the identities given opens any object"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("sluice show {backup}")),
        "{stderr}"
    );
}
