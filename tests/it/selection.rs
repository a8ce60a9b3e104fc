//! Which backup a command means: `@latest` is the newest complete one; a
//! backup without a manifest does not exist.

use std::fs;

use crate::support::World;

#[test]
fn latest_is_the_newest_complete_backup() {
    let w = World::new();
    let first = w.backup("s", &["x=command:echo one"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = w.backup("s", &["x=command:echo two"]);
    assert!(first < second);

    // A failed run after them leaves nothing that could be picked.
    w.sluice()
        .args(["backup", "s", "--store", &w.store_url(), "-r", &w.recipient])
        .args(["--source", "x=command:false"])
        .assert()
        .code(1);
    // Nor does a crashed run's object without a manifest.
    let orphan = w.path("store/s/29991231T235959Z-ffff");
    fs::create_dir_all(&orphan).unwrap();
    fs::write(orphan.join("x.out.zst.age"), "garbage").unwrap();

    let fetch = |which: &str| {
        let out = w
            .sluice()
            .args(["fetch", which, "--store", &w.store_url(), "-i"])
            .arg(w.key())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(fetch("s@latest"), "two\n");
    assert_eq!(fetch("s"), "two\n");
    assert_eq!(fetch(&first), "one\n");
    let (_, first_id) = first.split_once('@').unwrap();
    assert_eq!(
        fetch(&format!("s@{}", &first_id[..17])),
        "one\n",
        "a unique prefix selects"
    );
    assert_eq!(w.listed_ids("s").len(), 2);

    let out = w
        .sluice()
        .args([
            "fetch",
            "s@29991231T235959Z-ffff",
            "--store",
            &w.store_url(),
            "-i",
        ])
        .arg(w.key())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no backup `29991231T235959Z-ffff`"));
}

#[test]
fn an_unknown_set_has_no_backups() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["restore", "nothing@latest", "--store", &w.store_url(), "-i"])
        .arg(w.key())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set `nothing` has no backups"));
}

#[test]
fn backups_made_in_the_same_second_keep_their_order() {
    let w = World::new();
    let made: Vec<String> = (1..=6)
        .map(|n| w.backup("s", &[&format!("x=command:echo v{n}")]))
        .collect();
    let ids: Vec<String> = made
        .iter()
        .map(|b| b.split_once('@').unwrap().1.to_owned())
        .collect();
    assert_eq!(w.listed_ids("s"), ids, "list is not in the order of making");
    let out = w
        .sluice()
        .args(["fetch", "s@latest", "--store", &w.store_url(), "-i"])
        .arg(w.key())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v6\n");
}
