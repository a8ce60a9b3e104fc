//! A backup whose tar tries to escape its target is refused, and nothing is
//! written outside (or inside) the target. Such a backup can be planted by
//! anyone who can write to the store, since recipients are public keys; here
//! it is planted through the library, the way such an attacker would. Such
//! a backup is unsigned, so restore refuses it unless told
//! `--allow-unsigned`; these tests pass that flag to show that extraction
//! is safe even then.

use std::{fs, io::Write, path::Path};

use sluice::{
    Cancel,
    catalog::{self, BackupId, BackupKind, Manifest, ObjectRecord},
    config::Compression,
    keys::Recipients,
    pipeline::{UploadSettings, upload},
    store,
};

use crate::support::{World, has_sluice_leftovers, tree};

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

/// A tar with raw names (no checks), as an attacker would write it.
fn evil_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, kind, link, data): (&str, tar::EntryType, Option<&str>, &[u8]) = match entry {
            Entry::File(name, data) => (name, tar::EntryType::Regular, None, data),
            Entry::Symlink(name, to) => (name, tar::EntryType::Symlink, Some(to), b""),
            Entry::HardLink(name, to) => (name, tar::EntryType::Link, Some(to), b""),
        };
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Stores `tar` as the `files` backup `evil@<id>` and returns `evil@<id>`.
fn plant(w: &World, tar: Vec<u8>) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = store::open(&sluice::config::StoreConfig::new(w.store_url()))
            .await
            .unwrap();
        let recipients = Recipients::parse(std::slice::from_ref(&w.recipient), "evil").unwrap();
        let id = BackupId::generate(jiff::Timestamp::now());
        let name = "media.tar.zst.age";
        let settings = UploadSettings {
            compression: Compression::default(),
            part_size: 1 << 20,
            parallel_parts: 2,
            stall_timeout: std::time::Duration::ZERO,
            meter: sluice::progress::Meter::default(),
        };
        let key = catalog::object_key("evil", &id, name);
        let stored = upload(
            store.as_ref(),
            &key,
            recipients.encryptor().unwrap(),
            &settings,
            &Cancel::new(),
            move |out: &mut dyn Write| {
                out.write_all(&tar)
                    .map_err(sluice::source::SourceError::Output)
            },
        )
        .await
        .unwrap();
        let manifest = Manifest {
            format_version: catalog::FORMAT_VERSION,
            set: "evil".into(),
            id: id.clone(),
            kind: BackupKind::Manual,
            target: None,
            note: None,
            started_at: jiff::Timestamp::now(),
            finished_at: jiff::Timestamp::now(),
            sluice_version: "0".into(),
            host: "attacker".into(),
            objects: vec![ObjectRecord {
                source: "media".into(),
                source_kind: "files".into(),
                format: "tar".into(),
                name: name.into(),
                compression_level: 3,
                anonymized: false,
                anonymized_copy_failed: None,
                recipients: vec![],
                plaintext_size: stored.plaintext_size,
                stored_size: stored.stored_size,
                part_size: settings.part_size,
                sha256: stored.sha256,
                parts: stored.parts,
            }],
            seal: Default::default(),
        };
        // Unsigned, as an attacker's would be: the tests restore it with
        // --allow-unsigned, to show extraction is safe even then.
        catalog::commit(store.as_ref(), manifest, None)
            .await
            .unwrap();
        format!("evil@{id}")
    })
}

/// Restores the planted backup into `root/jail/target`; checks it failed,
/// that nothing appeared anywhere under `root/jail` but the untouched
/// target, and returns stderr.
fn restore_is_refused(w: &World, backup: &str) -> String {
    let jail = w.path("jail");
    let target = jail.join("target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("existing"), "keep").unwrap();
    let before = tree(&jail);
    let out = w
        .sluice()
        .args(["restore", backup, "--yes", "--allow-unsigned"])
        .args(["--store", &w.store_url(), "-i"])
        .arg(w.key())
        .arg("--into")
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(&jail), before, "something was written");
    assert!(!has_sluice_leftovers(&target));
    assert!(!Path::new("/tmp/sluice-escaped").exists());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_entry_climbing_out_with_dot_dot_is_refused() {
    let w = World::new();
    let backup = plant(
        &w,
        evil_tar(&[
            Entry::File("ok.txt", b"fine"),
            Entry::File("../escaped.txt", b"out"),
        ]),
    );
    let stderr = restore_is_refused(&w, &backup);
    assert!(stderr.contains("unsafe entry `../escaped.txt`"), "{stderr}");
    assert!(stderr.contains("`..`"), "{stderr}");
}

#[test]
fn an_absolute_entry_is_refused() {
    let w = World::new();
    let backup = plant(&w, evil_tar(&[Entry::File("/tmp/sluice-escaped", b"out")]));
    let stderr = restore_is_refused(&w, &backup);
    assert!(stderr.contains("absolute path"), "{stderr}");
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let w = World::new();
    let outside = w.path("jail");
    let backup = plant(
        &w,
        evil_tar(&[
            Entry::Symlink("link", outside.to_str().unwrap()),
            Entry::File("link/pwned.txt", b"out"),
        ]),
    );
    restore_is_refused(&w, &backup);
}

#[test]
fn a_hard_link_out_of_the_target_is_refused() {
    let w = World::new();
    let backup = plant(
        &w,
        evil_tar(&[Entry::HardLink("passwd", "../../../../etc/passwd")]),
    );
    let stderr = restore_is_refused(&w, &backup);
    assert!(stderr.contains("hard link"), "{stderr}");
}
