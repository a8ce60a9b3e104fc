//! MariaDB sources and restores against the local server: a round trip with
//! per-table checksums, a damaged backup that never reaches the server, and
//! the safety backup taken before a database is replaced.

use std::fs;

use crate::support::{
    World,
    db::{MyDb, mariadb, my_checksums},
};

fn fill(db: &str) {
    mariadb(
        Some(db),
        r#"
        CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) UNIQUE NOT NULL, bio MEDIUMTEXT, avatar MEDIUMBLOB);
        CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, note TEXT, FOREIGN KEY (user_id) REFERENCES users(id));
        CREATE TABLE `Order Lines` (`Line No` INT PRIMARY KEY, `Item` TEXT);
        INSERT INTO users (email, bio, avatar) SELECT CONCAT('user', seq, '@example.com'),
            IF(seq % 7 = 0, NULL, CONCAT('tab\there\nnew line \\ backslash ''quote'' "dq" ünïcødé 名前 ', seq)),
            UNHEX(MD5(seq)) FROM seq_1_to_2000;
        INSERT INTO orders (user_id, note) SELECT 1 + seq % 2000, IF(seq % 3 = 0, NULL, CONCAT('order ', seq)) FROM seq_1_to_5000;
        INSERT INTO `Order Lines` SELECT seq, CONCAT('item ', seq) FROM seq_1_to_100;
        INSERT INTO users (email, bio, avatar) VALUES ('big@example.com', REPEAT(MD5('x'), 150000), UNHEX(REPEAT('00ff', 100000)));
        "#,
    );
}

fn backup(w: &World, db: &MyDb) {
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\npart-size = \"1MiB\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.my.sources]]\nname = \"db\"\nkind = \"mysql\"\nurl = \"{}\"\n",
            w.store_url(),
            w.recipient,
            db.url()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "my"]).assert().success();
}

#[test]
fn a_database_round_trips_into_a_new_database() {
    let w = World::new();
    let source = MyDb::create("my round trip source");
    fill(&source.name);
    backup(&w, &source);
    let copy = MyDb::named("my round trip copy");
    w.sluice()
        .args(["restore", "my", "-i", "key.txt", "--into", &copy.url()])
        .assert()
        .success();
    let expected = my_checksums(&source.name);
    assert_eq!(expected.len(), 3);
    assert_eq!(my_checksums(&copy.name), expected);
}

#[test]
fn a_damaged_backup_never_reaches_the_server() {
    let w = World::new();
    let source = MyDb::create("my damaged source");
    fill(&source.name);
    backup(&w, &source);
    let target = MyDb::create("my damaged target");
    mariadb(
        Some(&target.name),
        "CREATE TABLE precious (v TEXT); INSERT INTO precious VALUES ('keep me');",
    );
    let before = my_checksums(&target.name);
    let object = walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == "db.sql.zst.age")
        .unwrap()
        .into_path();
    let mut bytes = fs::read(&object).unwrap();
    let at = bytes.len() - 50;
    bytes[at] ^= 1;
    fs::write(&object, bytes).unwrap();

    let out = w
        .sluice()
        .args([
            "restore",
            "my",
            "--yes",
            "-i",
            "key.txt",
            "--into",
            &target.url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match its SHA-256"));
    assert_eq!(my_checksums(&target.name), before);
}

#[test]
fn replacing_a_database_takes_a_safety_backup_that_restores() {
    let w = World::new();
    let source = MyDb::create("my safety source");
    fill(&source.name);
    backup(&w, &source);
    let target = MyDb::create("my safety target");
    mariadb(
        Some(&target.name),
        "CREATE TABLE old_stuff (v TEXT); INSERT INTO old_stuff VALUES ('v1');",
    );
    let old = my_checksums(&target.name);

    w.sluice()
        .args([
            "restore",
            "my",
            "--yes",
            "-i",
            "key.txt",
            "--into",
            &target.url(),
        ])
        .assert()
        .success();
    assert_eq!(my_checksums(&target.name), my_checksums(&source.name));

    let listing = w.sluice().args(["list", "my", "--json"]).output().unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&listing.stdout).unwrap();
    let safety: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "pre-restore")
        .collect();
    assert_eq!(safety.len(), 1, "{entries:?}");
    let safety_id = safety[0]["id"].as_str().unwrap();

    // @latest still means the real backup, and the safety copy restores.
    let latest = w
        .sluice()
        .args(["show", "my@latest", "--json"])
        .output()
        .unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&latest.stdout).unwrap();
    assert_eq!(latest["kind"], "manual");
    let back = MyDb::named("my safety back");
    w.sluice()
        .args([
            "restore",
            &format!("my@{safety_id}"),
            "-i",
            "key.txt",
            "--into",
            &back.url(),
        ])
        .assert()
        .success();
    assert_eq!(my_checksums(&back.name), old);
}

#[test]
fn a_restore_that_fails_part_way_names_the_safety_backup_that_undoes_it() {
    let w = World::new();
    let other = MyDb::create("my partial other");
    mariadb(
        Some(&other.name),
        "CREATE TABLE t (v INT); INSERT INTO t VALUES (1);",
    );
    let source = MyDb::create("my partial source");
    mariadb(
        Some(&source.name),
        &format!(
            "CREATE TABLE a (v INT); INSERT INTO a VALUES (1); CREATE VIEW v AS SELECT v FROM `{}`.t;",
            other.name
        ),
    );
    backup(&w, &source);
    // The view's table is gone, so applying the dump fails after it began.
    mariadb(None, &format!("DROP DATABASE `{}`", other.name));
    let target = MyDb::create("my partial target");
    mariadb(
        Some(&target.name),
        "CREATE TABLE keepme (v TEXT); INSERT INTO keepme VALUES ('precious');",
    );
    let old = my_checksums(&target.name);

    let out = w
        .sluice()
        .args([
            "restore",
            "my",
            "--yes",
            "-i",
            "key.txt",
            "--into",
            &target.url(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("may be partly restored"), "{stderr}");
    let undo = stderr
        .split("to put them back: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the error gives the command that puts the old contents back");
    let args: Vec<&str> = undo.split_whitespace().skip(1).collect();
    w.sluice()
        .args(&args)
        .args(["-i", "key.txt"])
        .assert()
        .success();
    assert_eq!(my_checksums(&target.name), old);
}

#[test]
fn a_whole_set_restore_verifies_a_later_database_once_and_still_takes_its_safety_backup() {
    let w = World::new();
    let source = MyDb::create("my whole set");
    fill(&source.name);
    let notes = w.path("notes");
    fs::create_dir(&notes).unwrap();
    fs::write(notes.join("n.txt"), "a note").unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.mixed.sources]]\nname = \"notes\"\nkind = \"files\"\npath = \"{}\"\n\
             [[sets.mixed.sources]]\nname = \"db\"\nkind = \"mysql\"\nurl = \"{}\"\n",
            w.store_url(),
            w.recipient,
            notes.display(),
            source.url()
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "mixed"]).assert().success();
    let backed_up = my_checksums(&source.name);
    mariadb(Some(&source.name), "DELETE FROM orders WHERE id % 2 = 0;");
    fs::write(notes.join("n.txt"), "changed").unwrap();

    let out = w
        .sluice()
        .args(["restore", "mixed", "--yes", "-i", "key.txt"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("db.sql.zst.age was verified before anything was replaced"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("verified db.sql.zst.age; applying"),
        "{stderr}"
    );
    assert!(stderr.contains("took safety backup mixed@"), "{stderr}");
    assert_eq!(my_checksums(&source.name), backed_up);
    assert_eq!(fs::read_to_string(notes.join("n.txt")).unwrap(), "a note");
}
