//! A damaged, truncated or missing object, or the wrong key, fails the
//! restore before anything is applied: a directory target is untouched (and
//! no staging directory is left), a restore command never sees the end of
//! its input.

use std::{fs, path::PathBuf};

use crate::support::{World, has_sluice_leftovers, random_bytes, tree};

/// A world with a config: set `media` (a directory of 5 MB) and set `db` (a
/// command whose restore writes `restored.partial`, then renames it to
/// `restored.txt` only when its input ended cleanly), 1 MiB parts.
fn world() -> (World, PathBuf) {
    let w = World::new();
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("blob"), random_bytes(5 * 1024 * 1024, 1)).unwrap();
    let dump = w.path("dump.bin");
    fs::write(&dump, random_bytes(5 * 1024 * 1024, 2)).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            r#"
[store]
url = "{store}"
part-size = "1MiB"
[keys]
recipients = ["{recipient}"]
[[sets.media.sources]]
name = "media"
kind = "files"
path = "{data}"
[[sets.db.sources]]
name = "db"
kind = "command"
backup = ["cat", "{dump}"]
restore = ["sh", "-c", "cat > restored.partial && mv restored.partial restored.txt"]
"#,
            store = w.store_url(),
            recipient = w.recipient,
            data = data.display(),
            dump = dump.display()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "media"]).assert().success();
    w.sluice().args(["backup", "db"]).assert().success();
    (w, data)
}

fn only_object(w: &World, set: &str) -> PathBuf {
    walkdir::WalkDir::new(w.path("store").join(set))
        .into_iter()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".zst.age"))
        .unwrap()
        .into_path()
}

fn flip_byte(path: &PathBuf, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn truncate(path: &PathBuf) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

/// Restores set `media` over a populated target; returns stderr after
/// checking the restore failed and the target is exactly as before.
fn media_restore_fails_and_leaves_target(w: &World, identity: &PathBuf) -> String {
    let target = w.path("target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("precious.txt"), "do not lose me").unwrap();
    let before = tree(&target);
    let out = w
        .sluice()
        .args(["restore", "media", "--yes", "-i"])
        .arg(identity)
        .arg("--into")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(tree(&target), before, "the target changed");
    assert!(
        !has_sluice_leftovers(&target),
        "a staging directory was left behind"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Restores set `db` into its command; returns stderr after checking the
/// restore failed and the command never saw a clean end of input.
fn db_restore_fails_without_a_clean_end(w: &World) -> String {
    let out = w
        .sluice()
        .args(["restore", "db", "--yes", "-i"])
        .arg(w.key())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !w.path("restored.txt").exists(),
        "the restore command saw a clean end of a broken stream"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_intact_backup_restores_into_its_command() {
    let (w, _) = world();
    w.sluice()
        .args(["restore", "db", "--yes", "-i"])
        .arg(w.key())
        .assert()
        .success();
    assert_eq!(
        fs::read(w.path("restored.txt")).unwrap(),
        fs::read(w.path("dump.bin")).unwrap()
    );
}

#[test]
fn a_flipped_byte_fails_a_directory_restore_and_leaves_the_target() {
    let (w, _) = world();
    flip_byte(&only_object(&w, "media"), 2 * 1024 * 1024 + 100);
    let stderr = media_restore_fails_and_leaves_target(&w, &w.key());
    assert!(
        stderr.contains("part 3 of `media.tar.zst.age` does not match its SHA-256"),
        "{stderr}"
    );
}

#[test]
fn a_truncated_object_fails_a_directory_restore_and_leaves_the_target() {
    let (w, _) = world();
    truncate(&only_object(&w, "media"));
    let stderr = media_restore_fails_and_leaves_target(&w, &w.key());
    assert!(stderr.contains("truncated or replaced"), "{stderr}");
}

#[test]
fn a_flipped_byte_in_the_last_part_kills_the_restore_command() {
    let (w, _) = world();
    let object = only_object(&w, "db");
    let len = fs::metadata(&object).unwrap().len() as usize;
    flip_byte(&object, len - 10);
    let stderr = db_restore_fails_without_a_clean_end(&w);
    assert!(stderr.contains("does not match its SHA-256"), "{stderr}");
}

#[test]
fn a_truncated_object_never_reaches_the_restore_command() {
    let (w, _) = world();
    truncate(&only_object(&w, "db"));
    let stderr = db_restore_fails_without_a_clean_end(&w);
    assert!(stderr.contains("truncated or replaced"), "{stderr}");
    assert!(
        !w.path("restored.partial").exists(),
        "the command was started for a truncated object"
    );
}

#[test]
fn the_wrong_identity_fails_with_a_clear_message() {
    let (w, _) = world();
    w.sluice()
        .args(["keygen", "-o", "other.txt"])
        .assert()
        .success();
    let stderr = media_restore_fails_and_leaves_target(&w, &w.path("other.txt"));
    assert!(
        stderr.contains("none of the identities given can open `media.tar.zst.age`"),
        "{stderr}"
    );
    assert!(stderr.contains("--identity"), "{stderr}");
}

#[test]
fn a_missing_object_is_named() {
    let (w, _) = world();
    fs::remove_file(only_object(&w, "media")).unwrap();
    let stderr = media_restore_fails_and_leaves_target(&w, &w.key());
    assert!(
        stderr.contains("`media.tar.zst.age` is missing from the store"),
        "{stderr}"
    );
}

#[test]
fn a_damaged_later_object_leaves_every_target_of_the_set_as_it_was() {
    let w = World::new();
    let (first, second) = w.back_up_two_directories(
        "blob",
        [random_bytes(1024 * 1024, 3), random_bytes(1024 * 1024, 4)],
    );
    // Both targets move on after the backup; the second object is damaged.
    for dir in [&first, &second] {
        fs::write(dir.join("newer.txt"), "written after the backup").unwrap();
    }
    let before = (tree(&first), tree(&second));
    let damaged = walkdir::WalkDir::new(w.path("store/both"))
        .into_iter()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("second."))
        .unwrap()
        .into_path();
    flip_byte(&damaged, 300_000);

    let out = w
        .sluice()
        .args(["restore", "both", "--yes", "-i", "key.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: nothing was restored"), "{stderr}");
    assert!(stderr.contains("second."), "{stderr}");
    assert!(stderr.contains("SHA-256"), "{stderr}");
    assert_eq!((tree(&first), tree(&second)), before);
    assert!(!has_sluice_leftovers(&first) && !has_sluice_leftovers(&second));
}
