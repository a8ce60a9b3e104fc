//! `sluice prune` and retention, with the real binary on `file://` and on
//! s3s-fs: old backups are made by copying a real one (objects and
//! manifest) under old ids and start times, so they stay restorable.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use crate::support::{World, s3::S3World, stdout_of, tree};

/// The clock every plan here is made at.
const NOW: &str = "2026-11-22T12:00:00Z";

/// Kept: the real backup (newest, and the newest day) and the newest of
/// the 22nd (daily), and the young safety copy.
const POLICY: &str = "retention = { keep-daily = 2, pre-restore-within = \"1d\" }";
const KEPT_OLD: &str = "20261122T010000Z-0001";
const YOUNG_SAFETY: &str = "20261122T060000Z-0005";
const REMOVED: [&str; 3] = [
    "20261121T010000Z-0002",
    "20261120T010000Z-0003",
    "20261115T060000Z-0004",
];

/// Copies backup `dir/real_id` to `dir/id`, its manifest saying `id`, the
/// start time the id reads as, and `kind`, and unsigned (as backups made
/// before sluice signed them): restoring one needs --allow-unsigned.
fn fabricate(set_dir: &Path, real_id: &str, id: &str, kind: &str) {
    let (from, to) = (set_dir.join(real_id), set_dir.join(id));
    fs::create_dir_all(&to).unwrap();
    for entry in fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let manifest = to.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let started = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &id[0..4],
        &id[4..6],
        &id[6..8],
        &id[9..11],
        &id[11..13],
        &id[13..15]
    );
    m["id"] = id.into();
    m["started_at"] = started.clone().into();
    m["finished_at"] = started.into();
    m["kind"] = kind.into();
    if kind == "pre-restore" {
        m["target"] = "app".into();
    }
    m.as_object_mut().unwrap().shift_remove("signature");
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

/// The old backups of [`POLICY`]'s plan, next to the real one.
fn fabricate_history(set_dir: &Path, real_id: &str) {
    fabricate(set_dir, real_id, KEPT_OLD, "scheduled");
    fabricate(set_dir, real_id, YOUNG_SAFETY, "pre-restore");
    fabricate(set_dir, real_id, REMOVED[0], "scheduled");
    fabricate(set_dir, real_id, REMOVED[1], "manual");
    fabricate(set_dir, real_id, REMOVED[2], "pre-restore");
}

fn data_dir(w: &World) -> PathBuf {
    let data = w.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a.txt"), "kept through pruning\n").unwrap();
    data
}

/// Ids of the plan's `kept` and `removed` in `prune --json` output.
fn planned(json: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let sets: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    assert_eq!(sets.len(), 1, "{json}");
    let ids = |field: &str| {
        sets[0][field]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    (ids("kept"), ids("removed"))
}

/// The store's files and directories without the set's lease, which every
/// run that holds it rewrites (and leaves marked released).
fn backups(root: &std::path::Path) -> Vec<(String, String)> {
    tree(root)
        .into_iter()
        .filter(|(path, _)| !path.ends_with("lease.json"))
        .collect()
}

#[test]
fn prune_removes_exactly_what_its_dry_run_planned() {
    let w = World::new();
    let data = data_dir(&w);
    let real = w.backup("docs", &[&format!("docs=files:{}", data.display())]);
    let real_id = real.split_once('@').unwrap().1.to_owned();
    let set_dir = w.path("store").join("docs");
    fabricate_history(&set_dir, &real_id);
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[sets.docs]\n{POLICY}\n",
            w.store_url()
        ),
    )
    .unwrap();
    let prune = |args: &[&str]| {
        stdout_of(
            &w.sluice()
                .args(["prune", "docs", "--now", NOW])
                .args(args)
                .output()
                .unwrap(),
        )
    };

    let before = backups(&w.path("store"));
    let dry = prune(&["--dry-run"]);
    assert_eq!(
        backups(&w.path("store")),
        before,
        "a dry run changed the store"
    );
    assert!(
        dry.contains(&format!(
            "keep        docs@{real_id}  manual       newest, keep-daily"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "keep        docs@{KEPT_OLD}  scheduled    keep-daily"
        )),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "keep        docs@{YOUNG_SAFETY}  pre-restore  pre-restore-within"
        )),
        "{dry}"
    );
    for id in REMOVED {
        assert!(dry.contains(&format!("remove      docs@{id}")), "{dry}");
    }
    assert!(
        dry.contains("would keep 3 backup(s) and remove 3 (dry run: nothing was removed)"),
        "{dry}"
    );
    let (kept, removed) = planned(&prune(&["--dry-run", "--json"]));
    assert_eq!(
        kept,
        [&real_id, KEPT_OLD, YOUNG_SAFETY].map(str::to_owned).into()
    );
    assert_eq!(removed, REMOVED.map(str::to_owned).into());
    assert_eq!(
        backups(&w.path("store")),
        before,
        "a dry run changed the store"
    );

    let done = prune(&[]);
    assert!(done.contains("kept 3 backup(s), removed 3"), "{done}");
    let mut listed = w.listed_ids("docs");
    listed.sort();
    assert_eq!(listed, [KEPT_OLD, YOUNG_SAFETY, &real_id]);
    // Exactly the removed backups' manifests and objects are gone.
    let after = backups(&w.path("store"));
    let expected: Vec<_> = before
        .into_iter()
        .filter(|(path, _)| {
            !REMOVED
                .iter()
                .any(|id| path.starts_with(&format!("docs/{id}")))
        })
        .collect();
    assert_eq!(after, expected);

    // An old kept backup still restores.
    let out = w
        .sluice()
        .args(["restore", &format!("docs@{KEPT_OLD}"), "--yes"])
        .args(["--allow-unsigned", "-i"])
        .arg(w.key())
        .arg("--into")
        .arg(w.path("out"))
        .output()
        .unwrap();
    stdout_of(&out);
    assert_eq!(tree(&w.path("out")), tree(&data));
}

#[test]
fn a_backup_of_a_set_with_retention_prunes_it_afterwards() {
    let w = World::new();
    let data = data_dir(&w);
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[sets.docs]\nretention = {{ keep-last = 2 }}\n[[sets.docs.sources]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\n",
            w.store_url(),
            w.recipient,
            data.display()
        ),
    )
    .unwrap();
    let mut made = Vec::new();
    for removed in [0, 0, 1, 1] {
        let out = w.sluice().args(["backup", "docs"]).output().unwrap();
        let stdout = stdout_of(&out);
        made.push(stdout.trim().split_once('@').unwrap().1.to_owned());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kept = made.len().min(2);
        assert!(
            stderr.contains(&format!(
                "set `docs`: kept {kept} backup(s), removed {removed}"
            )),
            "{stderr}"
        );
    }
    // Ids made in the same second sort by their random part, not by time.
    let mut listed = w.listed_ids("docs");
    listed.sort();
    let mut newest = made[2..].to_vec();
    newest.sort();
    assert_eq!(listed, newest);
    assert!(!w.path("store").join("docs").join(&made[0]).exists());
    assert!(!w.path("store").join("docs").join(&made[1]).exists());
}

#[test]
fn a_set_without_retention_keeps_everything_and_says_so() {
    let w = World::new();
    let data = data_dir(&w);
    let source = format!("docs=files:{}", data.display());
    w.backup("docs", &[&source]);
    w.backup("docs", &[&source]);
    let before = backups(&w.path("store"));
    let out = w
        .sluice()
        .args(["prune", "docs", "--store", &w.store_url()])
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    assert_eq!(
        stdout.matches("no retention configured").count(),
        3,
        "{stdout}"
    );
    assert!(
        stdout.contains("set `docs` has no retention configured: keeping all 2 backup(s)"),
        "{stdout}"
    );
    assert_eq!(backups(&w.path("store")), before);

    // Nothing to prune at all is a usage error.
    let out = w.sluice().args(["prune"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing to prune"), "{stderr}");
}

#[test]
fn a_backup_with_an_unreadable_manifest_is_reported_and_never_removed() {
    let w = World::new();
    let data = data_dir(&w);
    w.backup("docs", &[&format!("docs=files:{}", data.display())]);
    let broken = w.path("store").join("docs").join("20200101T000000Z-0bad");
    fs::create_dir(&broken).unwrap();
    fs::write(broken.join("manifest.json"), "{ not json").unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[sets.docs]\nretention = {{ keep-last = 1 }}\n",
            w.store_url()
        ),
    )
    .unwrap();
    let out = w.sluice().args(["prune"]).output().unwrap();
    let stdout = stdout_of(&out);
    assert!(
        stdout.contains("keep        docs@20200101T000000Z-0bad  unreadable   never removed"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prune never removes it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(broken.join("manifest.json").exists());
}

#[test]
fn prune_on_s3_removes_exactly_what_its_dry_run_planned() {
    let s = S3World::new();
    let data = data_dir(&s.world);
    let real = stdout_of(&s.backup("docs", &format!("docs=files:{}", data.display())));
    let real_id = real.trim().split_once('@').unwrap().1.to_owned();
    let set_dir = s.server.object_file("docs");
    fabricate_history(&set_dir, &real_id);
    let config = s.world.path("sluice.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("[sets.docs]\n{POLICY}\n"));
    fs::write(&config, text).unwrap();
    let prune = |args: &[&str]| {
        stdout_of(
            &s.sluice()
                .args(["prune", "--now", NOW])
                .args(args)
                .output()
                .unwrap(),
        )
    };

    let before = backups(&set_dir);
    let (kept, removed) = planned(&prune(&["--dry-run", "--json"]));
    assert_eq!(backups(&set_dir), before, "a dry run changed the bucket");
    assert_eq!(
        kept,
        [&real_id, KEPT_OLD, YOUNG_SAFETY].map(str::to_owned).into()
    );
    assert_eq!(removed, REMOVED.map(str::to_owned).into());

    prune(&[]);
    let listed = stdout_of(
        &s.sluice()
            .args(["list", "docs", "--json"])
            .output()
            .unwrap(),
    );
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let listed: BTreeSet<String> = listed
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, kept);
    for id in REMOVED {
        assert!(
            !backups(&set_dir)
                .iter()
                .any(|(path, _)| path.starts_with(id) && path.contains('/')),
            "objects of {id} are left"
        );
    }
    let out = s
        .sluice()
        .args(["restore", &format!("docs@{KEPT_OLD}"), "--yes"])
        .args(["--allow-unsigned", "-i"])
        .arg(s.world.key())
        .arg("--into")
        .arg(s.world.path("out"))
        .output()
        .unwrap();
    stdout_of(&out);
    assert_eq!(tree(&s.world.path("out")), tree(&data));
}
