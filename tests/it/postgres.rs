//! PostgreSQL sources and restores against the local server: round trips
//! with per-table checksums, restores that never half-apply, and pg_dump's
//! own failures.

use std::{fs, path::Path, process::Command};

use crate::support::{
    World,
    db::{PG_ENV, PgDb, pg_checksums, psql},
    newer_postgres::{NewerPostgres, version_of},
};

/// Several schemas, foreign keys, sequences, bytea, awkward text, NULLs, a
/// quoted identifier with a space and capitals, and a row of several MB.
fn fill(db: &str) {
    psql(
        db,
        r#"
        CREATE SCHEMA shop;
        CREATE SCHEMA "Sales Dept";
        CREATE TABLE shop.users (id bigserial PRIMARY KEY, email text UNIQUE NOT NULL, bio text, avatar bytea);
        CREATE TABLE shop.orders (id serial PRIMARY KEY, user_id bigint REFERENCES shop.users(id), total numeric(10,2), note text);
        CREATE TABLE "Sales Dept"."Order Lines" ("Line No" int PRIMARY KEY, "Item" text);
        CREATE SEQUENCE shop.invoice_no START 1000;
        SELECT nextval('shop.invoice_no') FROM generate_series(1, 5);
        INSERT INTO shop.users (email, bio, avatar)
            SELECT 'user' || g || '@example.com',
                   CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\there\nnew line \\ backslash ''quote'' "dq" ünïcødé 名前 ' || g END,
                   decode(md5(g::text), 'hex')
              FROM generate_series(1, 2000) g;
        INSERT INTO shop.orders (user_id, total, note)
            SELECT 1 + g % 2000, g * 1.25, CASE WHEN g % 3 = 0 THEN NULL ELSE 'order ' || g END FROM generate_series(1, 5000) g;
        INSERT INTO "Sales Dept"."Order Lines" SELECT g, 'item ' || g FROM generate_series(1, 100) g;
        INSERT INTO shop.users (email, bio) VALUES ('big@example.com', repeat(md5('x'), 150000));
        "#,
    );
}

fn config(w: &World, db: &str, format: &str) {
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\npart-size = \"1MiB\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.pg.sources]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\ndatabase = \"{db}\"\nformat = \"{format}\"\n",
            w.store_url(),
            w.recipient
        ),
    )
    .unwrap();
}

#[test]
fn a_database_round_trips_into_a_new_database() {
    let w = World::new();
    let source = PgDb::create("pg round trip source");
    fill(&source.name);
    config(&w, &source.name, "custom");
    w.sluice().args(["backup", "pg"]).assert().success();

    let copy = PgDb::create("pg round trip copy");
    psql("postgres", &format!("DROP DATABASE \"{}\"", copy.name));
    w.sluice()
        .args(["restore", "pg", "-i", "key.txt", "--into", &copy.name])
        .envs(PG_ENV)
        .assert()
        .success();
    let expected = pg_checksums(&source.name);
    assert_eq!(expected.len(), 3);
    assert_eq!(pg_checksums(&copy.name), expected);
    assert_eq!(
        psql(&copy.name, "SELECT last_value FROM shop.invoice_no").trim(),
        "1004"
    );

    // The stored object is a pg_dump archive that stock tools open.
    let object = walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == "db.pgdump.zst.age")
        .unwrap();
    let listing = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "age -d -i key.txt '{}' | zstd -d | pg_restore -l",
            object.path().display()
        ))
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert!(String::from_utf8_lossy(&listing.stdout).contains("TABLE DATA shop users"));
}

#[test]
fn a_backup_of_the_public_schema_alone_restores_over_its_database() {
    // pg_dump -n public writes CREATE SCHEMA public, which every new
    // database already has.
    let w = World::new();
    let source = PgDb::create("pg public schema");
    psql(
        &source.name,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two');\
         CREATE SCHEMA other; CREATE TABLE other.skipped (x int);",
    );
    config(&w, &source.name, "custom");
    let config = fs::read_to_string(w.path("sluice.toml")).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!("{config}schemas = [\"public\"]\n"),
    )
    .unwrap();
    w.sluice().args(["backup", "pg"]).assert().success();
    let before = pg_checksums(&source.name);
    psql(&source.name, "INSERT INTO t VALUES (3, 'after the backup')");
    w.sluice()
        .args(["restore", "pg", "-i", "key.txt", "--yes"])
        .envs(PG_ENV)
        .assert()
        .success();
    let restored = pg_checksums(&source.name);
    assert!(before[0].starts_with("other.skipped 0"), "{before:?}");
    assert_eq!(
        restored,
        before[1..].to_vec(),
        "public.t as backed up, and no other schema"
    );
}

/// Restores set `pg` over `target` with --yes and checks the restore failed
/// and left `target` exactly as it was, with no staging database behind.
fn restore_fails_and_leaves(w: &World, target: &PgDb, identity: &str) -> String {
    let before = pg_checksums(&target.name);
    let out = w
        .sluice()
        .args([
            "restore",
            "pg",
            "--yes",
            "-i",
            identity,
            "--into",
            &target.name,
        ])
        .envs(PG_ENV)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pg_checksums(&target.name), before, "the target changed");
    assert_eq!(
        target.related(),
        std::slice::from_ref(&target.name),
        "a staging database was left behind"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stored_object(w: &World) -> std::path::PathBuf {
    walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".zst.age"))
        .unwrap()
        .into_path()
}

#[test]
fn a_broken_or_foreign_backup_leaves_an_existing_database_untouched() {
    let w = World::new();
    let source = PgDb::create("pg broken source");
    fill(&source.name);
    // Plain SQL through psql: the format where a naive pipe commits half.
    config(&w, &source.name, "plain");
    w.sluice().args(["backup", "pg"]).assert().success();
    let target = PgDb::create("pg broken target");
    psql(
        &target.name,
        "CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me');",
    );
    let object = stored_object(&w);
    let intact = fs::read(&object).unwrap();

    // Cut at a 64 KiB boundary of the stored object.
    fs::write(&object, &intact[..(intact.len() / 2) & !0xffff]).unwrap();
    let stderr = restore_fails_and_leaves(&w, &target, "key.txt");
    assert!(stderr.contains("truncated"), "{stderr}");

    let mut tampered = intact.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 1;
    fs::write(&object, &tampered).unwrap();
    let stderr = restore_fails_and_leaves(&w, &target, "key.txt");
    assert!(stderr.contains("does not match its SHA-256"), "{stderr}");

    fs::write(&object, &intact).unwrap();
    w.sluice()
        .args(["keygen", "-o", "other.txt"])
        .assert()
        .success();
    let stderr = restore_fails_and_leaves(&w, &target, "other.txt");
    assert!(stderr.contains("none of the identities"), "{stderr}");
}

#[test]
fn replacing_a_database_needs_yes_and_keeps_the_old_one() {
    let w = World::new();
    let source = PgDb::create("pg replace source");
    fill(&source.name);
    config(&w, &source.name, "custom");
    w.sluice().args(["backup", "pg"]).assert().success();
    let target = PgDb::create("pg replace target");
    psql(
        &target.name,
        "CREATE TABLE old_stuff (v text); INSERT INTO old_stuff VALUES ('v1');",
    );
    let old = pg_checksums(&target.name);

    let refused = w
        .sluice()
        .args(["restore", "pg", "-i", "key.txt", "--into", &target.name])
        .envs(PG_ENV)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(pg_checksums(&target.name), old);

    w.sluice()
        .args([
            "restore",
            "pg",
            "--yes",
            "-i",
            "key.txt",
            "--into",
            &target.name,
        ])
        .envs(PG_ENV)
        .assert()
        .success();
    assert_eq!(pg_checksums(&target.name), pg_checksums(&source.name));
    let previous = format!("{}_sluice_previous", target.name);
    assert_eq!(
        pg_checksums(&previous),
        old,
        "the replaced database was not kept"
    );
}

/// `sluice backup pg` of the one source `spec` (`--source`), without a config.
fn back_up_ad_hoc(w: &World, spec: &str) -> std::process::Output {
    w.sluice()
        .args([
            "backup",
            "pg",
            "--store",
            &w.store_url(),
            "-r",
            &w.recipient,
        ])
        .args(["--source", spec])
        .output()
        .unwrap()
}

#[test]
fn a_failing_pg_dump_leaves_no_backup_and_shows_its_message() {
    let w = World::new();
    for (spec, message) in [
        (
            "db=postgres:postgres://postgres@127.0.0.1/sluice_no_such_db",
            "database \"sluice_no_such_db\" does not exist",
        ),
        (
            "db=postgres:postgres://sluice_no_such_role@127.0.0.1/postgres",
            "role \"sluice_no_such_role\" does not exist",
        ),
    ] {
        let out = back_up_ad_hoc(&w, spec);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(stderr.contains("pg_dump"), "{stderr}");
    }
    assert!(w.listed_ids("pg").is_empty());
}

#[test]
fn a_pg_dump_older_than_the_server_names_both_versions_and_leaves_no_backup() {
    let server = NewerPostgres::start();
    let client = version_of(Path::new("pg_dump"));
    let w = World::new();
    let out = back_up_ad_hoc(
        &w,
        &format!(
            "db=postgres:postgres://postgres@127.0.0.1:{}/postgres",
            server.port
        ),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let major = server.version.split('.').next().unwrap();
    for expected in [
        "pg_dump is older than the server".to_owned(),
        format!(
            "server version: {}; pg_dump version: {client}",
            server.version
        ),
        format!(
            "install the client tools of PostgreSQL {major} (Debian: postgresql-client-{major})"
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected}: {stderr}");
    }
    assert!(w.listed_ids("pg").is_empty());
}

#[test]
fn fetch_into_a_database_url_picks_the_backups_only_source_of_that_kind() {
    let w = World::new();
    let source = PgDb::create("pg fetch by kind source");
    fill(&source.name);
    let notes = w.path("notes");
    fs::create_dir(&notes).unwrap();
    fs::write(notes.join("n.txt"), "a note").unwrap();
    let backup = w.backup(
        "mixed",
        &[
            &format!("db=postgres:postgres://postgres@127.0.0.1/{}", source.name),
            &format!("notes=files:{}", notes.display()),
        ],
    );
    let dev = PgDb::create("pg fetch by kind dev");
    psql("postgres", &format!("DROP DATABASE \"{}\"", dev.name));
    let out = w
        .sluice()
        .args(["fetch", &backup, "-i", "key.txt", "--store", &w.store_url()])
        .args([
            "--into",
            &format!("postgres://postgres@127.0.0.1/{}", dev.name),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fetching source `db`, the backup's only postgres one"),
        "{stderr}"
    );
    assert_eq!(pg_checksums(&dev.name), pg_checksums(&source.name));
}

#[test]
fn a_developer_fetches_into_a_local_database() {
    let w = World::new();
    let source = PgDb::create("pg fetch source");
    fill(&source.name);
    config(&w, &source.name, "custom");
    w.sluice().args(["backup", "pg"]).assert().success();
    let dev = PgDb::create("pg fetch dev");
    psql("postgres", &format!("DROP DATABASE \"{}\"", dev.name));
    let url = format!("postgres://postgres@127.0.0.1/{}", dev.name);

    w.sluice()
        .args(["fetch", "pg", "-i", "key.txt", "--into", &url])
        .assert()
        .success();
    assert_eq!(pg_checksums(&dev.name), pg_checksums(&source.name));

    let again = w
        .sluice()
        .args(["fetch", "pg", "-i", "key.txt", "--into", &url])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "replacing needs --yes");
    w.sluice()
        .args(["fetch", "pg", "-i", "key.txt", "--into", &url, "--yes"])
        .assert()
        .success();
    assert_eq!(pg_checksums(&dev.name), pg_checksums(&source.name));
    let previous_exists = || {
        psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{}_sluice_previous'",
                dev.name
            ),
        )
        .trim()
            == "1"
    };
    assert!(previous_exists(), "the replaced database is kept");
    w.sluice()
        .args(["fetch", "pg", "-i", "key.txt", "--into", &url, "--yes"])
        .arg("--drop-old")
        .assert()
        .success();
    assert!(!previous_exists(), "--drop-old drops the replaced database");
    assert_eq!(pg_checksums(&dev.name), pg_checksums(&source.name));
    // The backup's object and manifest, and the lease the backup gave back.
    let store_files = walkdir::WalkDir::new(w.path("store"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count();
    assert_eq!(store_files, 3, "fetch wrote to the store");
}

#[test]
fn in_place_restores_in_one_transaction_that_a_broken_backup_never_commits() {
    let w = World::new();
    let source = PgDb::create("pg in place source");
    fill(&source.name);
    config(&w, &source.name, "custom");
    w.sluice().args(["backup", "pg"]).assert().success();
    let target = PgDb::create("pg in place target");
    psql(
        &target.name,
        "CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me');",
    );
    let before = pg_checksums(&target.name);

    let object = stored_object(&w);
    let intact = fs::read(&object).unwrap();
    let mut tampered = intact.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 1;
    fs::write(&object, &tampered).unwrap();
    let out = w
        .sluice()
        .args([
            "restore",
            "pg",
            "--yes",
            "--in-place",
            "-i",
            "key.txt",
            "--into",
            &target.name,
        ])
        .envs(PG_ENV)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(pg_checksums(&target.name), before);

    fs::write(&object, &intact).unwrap();
    w.sluice()
        .args([
            "restore",
            "pg",
            "--yes",
            "--in-place",
            "-i",
            "key.txt",
            "--into",
            &target.name,
        ])
        .envs(PG_ENV)
        .assert()
        .success();
    let mut expected = pg_checksums(&source.name);
    expected.push(before[0].clone());
    expected.sort();
    let mut actual = pg_checksums(&target.name);
    actual.sort();
    assert_eq!(
        actual, expected,
        "in place keeps unrelated tables and replaces the backup's"
    );
    assert_eq!(
        target.related(),
        std::slice::from_ref(&target.name),
        "in place makes no other database"
    );
}

#[test]
fn globals_bring_back_missing_roles_and_leave_existing_ones() {
    struct Role(String);
    impl Drop for Role {
        fn drop(&mut self) {
            psql("postgres", &format!("DROP ROLE IF EXISTS \"{}\"", self.0));
        }
    }
    let w = World::new();
    let source = PgDb::create("pg globals source");
    let role = Role(format!("{}_reader", source.name));
    psql(
        "postgres",
        &format!("CREATE ROLE \"{}\" LOGIN CONNECTION LIMIT 7", role.0),
    );
    psql(
        &source.name,
        &format!(
            "CREATE TABLE t (v int); GRANT SELECT ON t TO \"{}\";",
            role.0
        ),
    );
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.pg.sources]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\ndatabase = \"{}\"\nglobals = true\n",
            w.store_url(),
            w.recipient,
            source.name
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "pg"]).assert().success();
    let show = w.sluice().args(["show", "pg", "--json"]).output().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(manifest["objects"][0]["name"], "db.globals.sql.zst.age");

    psql(
        &source.name,
        &format!("REVOKE ALL ON t FROM \"{}\"", role.0),
    );
    psql("postgres", &format!("DROP ROLE \"{}\"", role.0));
    let copy = PgDb::create("pg globals copy");
    psql("postgres", &format!("DROP DATABASE \"{}\"", copy.name));
    w.sluice()
        .args(["restore", "pg", "-i", "key.txt", "--into", &copy.name])
        .envs(PG_ENV)
        .assert()
        .success();
    let limit = psql(
        "postgres",
        &format!(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = '{}'",
            role.0
        ),
    );
    assert_eq!(limit.trim(), "7", "the role was not recreated");
    assert_eq!(
        psql(
            &copy.name,
            &format!("SELECT has_table_privilege('{}', 't', 'SELECT')", role.0)
        )
        .trim(),
        "t"
    );
    psql(&copy.name, &format!("REVOKE ALL ON t FROM \"{}\"", role.0));
}
