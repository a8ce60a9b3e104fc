//! Stored objects open with the stock `age` and `zstd` tools, and the
//! manifest's checksums are those of the stored bytes.

use std::{fs, process::Command};

use crate::support::{World, random_bytes, sha256_hex};

#[test]
fn a_stored_object_opens_with_stock_age_and_zstd() {
    let w = World::new();
    let input = w.path("input.txt");
    let mut text = Vec::new();
    for i in 0..200_000 {
        text.extend_from_slice(format!("{i}\tuser{i}@example.com\t{}\n", i * 7).as_bytes());
    }
    text.extend_from_slice(&random_bytes(1024 * 1024, 11));
    fs::write(&input, &text).unwrap();
    let backup = w.backup("dump", &[&format!("db=command:cat {}", input.display())]);
    let object = w.object_path(&backup, "db.out.zst.age");

    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i '{}' '{}' | zstd -d",
            w.key().display(),
            object.display()
        ))
        .output()
        .expect("sh runs; install age and zstd (apt-get install -y age zstd)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, text);
}

#[test]
fn the_manifest_checksums_match_the_stored_object() {
    let w = World::new();
    let input = w.path("input.bin");
    fs::write(&input, random_bytes(5 * 1024 * 1024, 5)).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\npart-size = \"1MiB\"\n[keys]\nrecipients = [\"{}\"]\n[[sets.dump.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"cat\", \"{}\"]\n",
            w.store_url(),
            w.recipient,
            input.display()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "dump"]).assert().success();
    let out = w
        .sluice()
        .args(["show", "dump@latest", "--json"])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let object = &manifest["objects"][0];
    let id = manifest["id"].as_str().unwrap();
    let stored = fs::read(w.object_path(&format!("dump@{id}"), "db.out.zst.age")).unwrap();

    assert_eq!(object["sha256"], sha256_hex(&stored));
    assert_eq!(object["stored_size"], stored.len() as u64);
    assert_eq!(object["plaintext_size"], 5 * 1024 * 1024);
    let parts = object["parts"].as_array().unwrap();
    assert_eq!(parts.len(), stored.len().div_ceil(1024 * 1024));
    for (i, chunk) in stored.chunks(1024 * 1024).enumerate() {
        assert_eq!(parts[i], sha256_hex(chunk), "part {}", i + 1);
    }
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(object["recipients"].as_array().unwrap().len(), 1);
}
