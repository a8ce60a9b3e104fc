//! `object-lock` under [store].
//!
//! - The requests: on s3s-fs behind the recording proxy, a multipart
//!   upload is created with the lock mode and a retain-until date `days`
//!   ahead, each part carries the SHA-256 the manifest records as its
//!   `x-amz-checksum-sha256`, and the manifest's `PutObject` carries the
//!   lock and a checksum too.
//! - The server's view: moto implements Object Lock and refuses a locked
//!   write without `Content-MD5` or `x-amz-sdk-checksum-algorithm`; objects
//!   written with `PutObject` and the manifest come out locked, and prune
//!   keeps and reports what is still locked, with exit 1. (moto 5.2.5
//!   drops the lock headers of `CreateMultipartUpload`, so multipart
//!   objects are checked on the proxy, not on moto.)
//! - A file:// store refuses the setting.

use std::fs;

use crate::support::{World, moto::MotoWorld, random_bytes, s3::S3World, sha256_hex, stdout_of};

/// A retain-until header value `days` ahead of `now` (RFC 3339), within
/// ten minutes.
fn assert_days_ahead(until: &str, days: i64, now: i64, what: &str) {
    let until: jiff::Timestamp = until
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{what}: {until}: {e}"));
    let ahead = until.as_second() - now;
    assert!(
        (days * 86_400 - 600..=days * 86_400 + 60).contains(&ahead),
        "{what}: retained {ahead} s"
    );
}

/// The value of header `name` in a request head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[test]
fn locked_writes_carry_the_lock_and_the_manifests_part_hashes_as_checksums() {
    let s = S3World::with_store_settings("object-lock = { mode = \"compliance\", days = 3 }");
    let data = s.world.path("data");
    fs::create_dir(&data).unwrap();
    // Incompressible and over one 5 MiB part: a multipart upload.
    fs::write(data.join("big.bin"), random_bytes(7 * 1024 * 1024, 3)).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let out = s.backup("docs", &format!("big=files:{}", data.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = stdout_of(&out).trim().to_owned();
    let shown = s
        .sluice()
        .args(["show", &backup, "--json"])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let parts: Vec<String> = manifest["objects"][0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hex| {
            let hex = hex.as_str().unwrap();
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            aws_smithy_types::base64::encode(bytes)
        })
        .collect();
    assert_eq!(parts.len(), 2);

    let heads = s.server.request_heads();
    let create = heads
        .iter()
        .find(|h| h.starts_with("POST ") && h.lines().next().unwrap().contains("uploads"))
        .expect("no CreateMultipartUpload");
    assert_eq!(header(create, "x-amz-object-lock-mode"), Some("COMPLIANCE"));
    assert_days_ahead(
        header(create, "x-amz-object-lock-retain-until-date").unwrap(),
        3,
        now,
        "the multipart upload",
    );
    let mut sent: Vec<&str> = heads
        .iter()
        .filter(|h| h.starts_with("PUT ") && h.lines().next().unwrap().contains("partNumber="))
        .map(|h| header(h, "x-amz-checksum-sha256").expect("a part without a checksum"))
        .collect();
    sent.sort();
    let mut expected: Vec<&str> = parts.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(sent, expected, "part checksums are the manifest's hashes");

    let put_manifest = heads
        .iter()
        .find(|h| h.starts_with("PUT ") && h.lines().next().unwrap().contains("manifest.json"))
        .expect("no manifest PutObject");
    assert_eq!(
        header(put_manifest, "x-amz-object-lock-mode"),
        Some("COMPLIANCE")
    );
    assert_days_ahead(
        header(put_manifest, "x-amz-object-lock-retain-until-date").unwrap(),
        3,
        now,
        "the manifest",
    );
    let stored = fs::read(s.server.object_file(&format!(
        "docs/{}/manifest.json",
        backup.strip_prefix("docs@").unwrap()
    )))
    .unwrap();
    let checksum = header(put_manifest, "x-amz-checksum-sha256").expect("no manifest checksum");
    let hex = sha256_hex(&stored);
    let digest: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(checksum, aws_smithy_types::base64::encode(digest));
    // The lease is not an object of the backup: its renewals carry no lock.
    for head in heads.iter().filter(|h| header(h, "if-match").is_some()) {
        assert_eq!(header(head, "x-amz-object-lock-mode"), None, "{head}");
    }
}

#[test]
fn moto_locks_each_object_and_manifest_and_prune_keeps_what_is_locked() {
    let m = MotoWorld::with_object_lock("object-lock = { mode = \"governance\", days = 2 }");
    fs::write(m.world.path("small.txt"), "small").unwrap();
    let source = format!("small=command:cat {}", m.world.path("small.txt").display());
    let backup = || {
        let out = m
            .sluice()
            .args(["backup", "docs", "-r", &m.world.recipient])
            .args(["--source", &source])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout_of(&out).trim().to_owned()
    };
    let now = jiff::Timestamp::now().as_second();
    let first = backup();
    let id = first.strip_prefix("docs@").unwrap();
    let keys: Vec<String> = m
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("docs/{id}/")))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let (mode, until) = m.retention(key);
        assert_eq!(mode, "GOVERNANCE", "{key}");
        let ahead = until - now;
        assert!(
            (2 * 86_400 - 600..=2 * 86_400 + 60).contains(&ahead),
            "{key}: retained {ahead} s"
        );
    }

    backup();
    fs::write(
        m.world.path("sluice.toml"),
        fs::read_to_string(m.world.path("sluice.toml")).unwrap()
            + "\n[sets.docs]\nretention = { keep-last = 1 }\n",
    )
    .unwrap();
    let out = m.sluice().args(["prune", "docs"]).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "keep        {first}  manual       object lock until"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "1 backup(s) of set `docs` that retention no longer keeps are still under Object Lock, the last until"
        ),
        "{stderr}"
    );
    let listed = m.sluice().args(["list", "docs"]).output().unwrap();
    assert!(
        stdout_of(&listed).contains(id),
        "a locked backup was removed"
    );

    // A backup's own prune only warns: the backup succeeded.
    let out = m
        .sluice()
        .args(["backup", "docs", "-r", &m.world.recipient])
        .args(["--source", &source])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("still under Object Lock") && stderr.contains("they are kept until then"),
        "{stderr}"
    );
}

#[test]
fn a_file_store_refuses_object_lock() {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\nobject-lock = {{ mode = \"compliance\", days = 30 }}\n",
            w.store_url()
        ),
    )
    .unwrap();
    let out = w
        .sluice()
        .args(["--config", "sluice.toml", "list", "docs"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is a file:// store"), "{stderr}");
    assert!(stderr.contains("no Object Lock"), "{stderr}");
}
