//! `sluice verify --drill` against the local PostgreSQL and MariaDB: each
//! database is restored into a scratch database and each directory into a
//! temporary directory, counted, checked with the configured queries, and
//! removed again, also when a check or the restore fails.

use std::{fs, process::Output};

use crate::support::{
    World,
    db::{MyDb, PgDb, mariadb, psql},
};

struct Drill {
    w: World,
    pg: PgDb,
    _my: MyDb,
    backup: String,
}

/// A set `prod` of a PostgreSQL database, a MariaDB database and a
/// directory, with `pg_checks` on the PostgreSQL source; backed up once.
fn backed_up(tag: &str, pg_checks: &str) -> Drill {
    let w = World::new();
    let pg = PgDb::create(&format!("drill-pg-{tag}"));
    psql(
        &pg.name,
        "CREATE SCHEMA app; CREATE TABLE app.\"Users\" (id int PRIMARY KEY, name text);
         INSERT INTO app.\"Users\" SELECT g, 'user ' || g FROM generate_series(1, 250) g;
         CREATE TABLE public.empty (id int);",
    );
    let my = MyDb::create(&format!("drill-my-{tag}"));
    mariadb(
        Some(&my.name),
        "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2), (3);",
    );
    let data = w.path("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a.txt"), "12345").unwrap();
    fs::write(data.join("sub/b.txt"), "123").unwrap();
    fs::create_dir(w.path("tmp")).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            r#"
[store]
url = "{store}"
[keys]
recipients = ["{recipient}"]
[[sets.prod.sources]]
name = "db"
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/{pg}"
checks = [{pg_checks}]
[[sets.prod.sources]]
name = "shop"
kind = "mysql"
url = "{my_url}"
checks = ["SELECT COUNT(*) = 3 FROM orders"]
[[sets.prod.sources]]
name = "media"
kind = "files"
path = "{data}"
"#,
            store = w.store_url(),
            recipient = w.recipient,
            pg = pg.name,
            my_url = my.url(),
            data = data.display(),
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
    Drill {
        w,
        pg,
        _my: my,
        backup,
    }
}

impl Drill {
    fn drill(&self) -> Output {
        self.w
            .sluice()
            .args(["verify", "prod", "--drill", "-i"])
            .arg(self.w.key())
            .env("TMPDIR", self.w.path("tmp"))
            .output()
            .unwrap()
    }

    /// The scratch database's name, `sluice_drill_<id>`.
    fn scratch(&self) -> String {
        let id = self.backup.split_once('@').unwrap().1;
        format!("sluice_drill_{}", id.to_lowercase().replace('-', "_"))
    }

    /// Asserts that no scratch copy is left: databases or directories.
    fn assert_no_scratch_left(&self) {
        let scratch = self.scratch();
        let pg = psql(
            "postgres",
            &format!("SELECT datname FROM pg_database WHERE datname LIKE '{scratch}%'"),
        );
        assert_eq!(pg.trim(), "", "PostgreSQL scratch left");
        let my = mariadb(None, &format!("SHOW DATABASES LIKE '{scratch}'"));
        assert_eq!(my.trim(), "", "MariaDB scratch left");
        assert_eq!(fs::read_dir(self.w.path("tmp")).unwrap().count(), 0);
    }
}

#[test]
fn a_drill_restores_counts_checks_and_removes_its_scratch_copies() {
    let d = backed_up("pass", r#""SELECT count(*) = 250 FROM app.\"Users\"""#);
    let out = d.drill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let scratch = d.scratch();
    assert!(
        stdout.contains(&format!("ok      db.pgdump.zst.age  restored into postgres://postgres@127.0.0.1:5432/{scratch} and removed again")),
        "{stdout}"
    );
    assert!(stdout.contains("rows in app.\"Users\": 250"), "{stdout}");
    assert!(stdout.contains("rows in public.empty: 0"), "{stdout}");
    assert!(
        stdout.contains(r#"check holds: SELECT count(*) = 250 FROM app."Users""#),
        "{stdout}"
    );
    assert!(stdout.contains("rows in orders: 3"), "{stdout}");
    assert!(
        stdout.contains("check holds: SELECT COUNT(*) = 3 FROM orders"),
        "{stdout}"
    );
    assert!(stdout.contains("files: 2\n          bytes: 8"), "{stdout}");
    d.assert_no_scratch_left();
    // The source database itself is untouched.
    assert_eq!(
        psql(&d.pg.name, "SELECT count(*) FROM app.\"Users\"").trim(),
        "250"
    );
}

#[test]
fn a_failing_check_fails_the_drill_and_the_scratch_is_still_removed() {
    let d = backed_up("fail", r#""SELECT count(*) > 1000 FROM app.\"Users\"""#);
    let out = d.drill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED  db.pgdump.zst.age"), "{stdout}");
    assert!(
        stdout.contains(
            r#"check FAILED: SELECT count(*) > 1000 FROM app."Users" (returned "f", not true)"#
        ),
        "{stdout}"
    );
    assert!(stdout.contains("ok      shop.sql.zst.age"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 3 object(s)"), "{stderr}");
    d.assert_no_scratch_left();
}

#[test]
fn a_damaged_backup_fails_the_drill_and_leaves_no_scratch() {
    let d = backed_up("damaged", "");
    let object = d.w.object_path(&d.backup, "db.pgdump.zst.age");
    let mut bytes = fs::read(&object).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x10;
    fs::write(&object, bytes).unwrap();

    let out = d.drill();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED  db.pgdump.zst.age  drill:"),
        "{stdout}"
    );
    assert!(stdout.contains("does not match its SHA-256"), "{stdout}");
    d.assert_no_scratch_left();
}

#[test]
fn a_drill_needs_the_identity() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["verify", "prod", "--drill", "--store", &w.store_url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--drill restores the backup, so it needs the identity"),
        "{stderr}"
    );
}
