//! The developer path: one pg_dump feeds the full copy (operators' key) and
//! the anonymized copy (developers' key); a developer loads the anonymized
//! copy into a local database, where no original personal value remains and
//! joins on anonymized emails still match; a new column without a rule fails
//! only the anonymized copy, and fetch falls back to the newest backup that
//! has one.

use std::{fs, process::Command};

use crate::support::{
    World,
    db::{PG_ENV, PgDb, psql},
};

const SALT: &str = "integration-salt-0123456789abcdef";

fn fill(db: &str) {
    psql(
        db,
        "CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text, phone text);
         CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users(id), user_email text, total numeric(10,2));
         INSERT INTO users (email, name, phone) SELECT 'person' || g || '@corp.example', 'Person Number' || g, '+1 555 01' || lpad(g::text, 2, '0') FROM generate_series(1, 50) g;
         INSERT INTO orders (user_id, user_email, total) SELECT 1 + g % 50, 'person' || (1 + g % 50) || '@corp.example', g FROM generate_series(1, 200) g;",
    );
}

const RULES: &str = r#"
"public.users.id" = "keep"
"public.users.email" = "email"
"public.users.name" = "full-name"
"public.users.phone" = "phone"
"public.orders.id" = "keep"
"public.orders.user_id" = "keep"
"public.orders.user_email" = "email"
"public.orders.total" = "keep"
"#;

fn setup(w: &World, db: &str) -> String {
    w.sluice()
        .args(["keygen", "-o", "dev.txt"])
        .assert()
        .success();
    let dev = fs::read_to_string(w.path("dev.txt")).unwrap();
    let dev_recipient = dev
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    fs::write(w.path("anonymize.toml"), RULES).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\nanonymized-recipients = [\"{dev_recipient}\"]\n\
             [[sets.prod.sources]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\ndatabase = \"{db}\"\nanonymize = \"anonymize.toml\"\n",
            w.store_url(),
            w.recipient
        ),
    )
    .unwrap();
    dev_recipient
}

fn dump_text(db: &str) -> String {
    let out = Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_developer_loads_the_anonymized_copy_and_only_that() {
    let w = World::new();
    let source = PgDb::create("anon backup source");
    fill(&source.name);
    setup(&w, &source.name);
    w.sluice()
        .args(["backup", "prod"])
        .env("SLUICE_ANON_SALT", SALT)
        .assert()
        .success();

    let show = w
        .sluice()
        .args(["show", "prod", "--json"])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let objects = manifest["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1]["name"], "db.anon.sql.zst.age");
    assert_eq!(objects[1]["anonymized"], true);
    assert_ne!(objects[0]["recipients"], objects[1]["recipients"]);
    // One source, listed once, though it has two objects.
    let list = w
        .sluice()
        .args(["list", "prod", "--json"])
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed[0]["sources"], serde_json::json!(["db"]));

    // The developer's key does not open the full copy.
    let full = w
        .sluice()
        .args(["fetch", "prod", "-i", "dev.txt", "-o", "full.pgdump"])
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&full.stderr).contains("none of the identities"));

    let dev = PgDb::create("anon backup dev");
    psql("postgres", &format!("DROP DATABASE \"{}\"", dev.name));
    w.sluice()
        .args(["fetch", "prod", "--anonymized", "-i", "dev.txt", "--into"])
        .arg(format!("postgres://postgres@127.0.0.1/{}", dev.name))
        .assert()
        .success()
        // psql's query results are not sluice's results.
        .stdout("");
    assert_eq!(psql(&dev.name, "SELECT count(*) FROM users").trim(), "50");
    assert_eq!(psql(&dev.name, "SELECT count(*) FROM orders").trim(), "200");
    let joined = psql(
        &dev.name,
        "SELECT count(*) FROM orders o JOIN users u ON u.email = o.user_email AND u.id = o.user_id",
    );
    assert_eq!(
        joined.trim(),
        "200",
        "joins on anonymized emails no longer match"
    );
    let text = dump_text(&dev.name);
    for g in 1..=50 {
        for original in [
            format!("person{g}@corp.example"),
            format!("Person Number{g}"),
            format!("+1 555 01{g:02}"),
        ] {
            assert!(
                !text.contains(&original),
                "{original} survived anonymization"
            );
        }
    }
    // The operators' key does not open the anonymized copy either.
    let ops = w
        .sluice()
        .args([
            "fetch",
            "prod",
            "--anonymized",
            "-i",
            "key.txt",
            "-o",
            "anon.sql",
        ])
        .output()
        .unwrap();
    assert_eq!(ops.status.code(), Some(1));
}

#[test]
fn a_new_column_without_a_rule_fails_only_the_anonymized_copy() {
    let w = World::new();
    let source = PgDb::create("anon new column source");
    fill(&source.name);
    setup(&w, &source.name);
    w.sluice()
        .args(["backup", "prod"])
        .env("SLUICE_ANON_SALT", SALT)
        .assert()
        .success();
    let first = w.listed_ids("prod");
    std::thread::sleep(std::time::Duration::from_millis(1100));

    psql(
        &source.name,
        "ALTER TABLE users ADD COLUMN passport text; UPDATE users SET passport = 'P' || id;",
    );
    let out = w
        .sluice()
        .args(["backup", "prod"])
        .env("SLUICE_ANON_SALT", SALT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public.users.passport"), "{stderr}");
    assert!(
        stderr.contains("committed with its full copies"),
        "{stderr}"
    );

    // The full copy committed; the manifest says the anonymized one failed.
    let ids = w.listed_ids("prod");
    assert_eq!(ids.len(), 2);
    let show = w
        .sluice()
        .args(["show", &format!("prod@{}", ids[1]), "--json"])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(manifest["objects"].as_array().unwrap().len(), 1);
    let reason = manifest["objects"][0]["anonymized_copy_failed"]
        .as_str()
        .unwrap();
    assert!(reason.contains("public.users.passport"), "{reason}");
    assert!(!reason.contains("P1"), "the manifest holds data: {reason}");

    // Developers still get the previous night's anonymized copy.
    let fetched = w
        .sluice()
        .args([
            "fetch",
            "prod",
            "--anonymized",
            "-i",
            "dev.txt",
            "-o",
            "dev.sql",
        ])
        .envs(PG_ENV)
        .output()
        .unwrap();
    assert!(
        fetched.status.success(),
        "{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert!(String::from_utf8_lossy(&fetched.stderr).contains(&first[0]));
    assert!(
        !fs::read_to_string(w.path("dev.sql"))
            .unwrap()
            .contains("passport")
    );
}

#[test]
fn a_mariadb_source_gets_an_anonymized_copy_too() {
    use crate::support::db::{MyDb, mariadb};
    let w = World::new();
    let source = MyDb::create("anon mariadb source");
    mariadb(
        Some(&source.name),
        "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(255) UNIQUE NOT NULL, name VARCHAR(100));
         INSERT INTO users SELECT seq, CONCAT('person', seq, '@corp.example'), CONCAT('Person Number', seq) FROM seq_1_to_30;",
    );
    setup(&w, "unused");
    fs::write(
        w.path("anonymize.toml"),
        "\"*.users.id\" = \"keep\"\n\"*.users.email\" = \"email\"\n\"*.users.name\" = \"full-name\"\n",
    )
    .unwrap();
    let config = fs::read_to_string(w.path("sluice.toml")).unwrap();
    let config = config
        .split("[[sets.prod.sources]]")
        .next()
        .unwrap()
        .to_owned()
        + &format!(
            "[[sets.prod.sources]]\nname = \"shop\"\nkind = \"mysql\"\nurl = \"{}\"\nanonymize = \"anonymize.toml\"\n",
            source.url()
        );
    fs::write(w.path("sluice.toml"), config).unwrap();
    w.sluice()
        .args(["backup", "prod"])
        .env("SLUICE_ANON_SALT", SALT)
        .assert()
        .success();

    let dev = MyDb::named("anon mariadb dev");
    w.sluice()
        .args([
            "fetch",
            "prod",
            "--anonymized",
            "-i",
            "dev.txt",
            "--into",
            &dev.url(),
        ])
        .assert()
        .success();
    assert_eq!(
        mariadb(Some(&dev.name), "SELECT COUNT(*) FROM users").trim(),
        "30"
    );
    let emails = mariadb(
        Some(&dev.name),
        "SELECT GROUP_CONCAT(email, name) FROM users",
    );
    assert!(
        !emails.contains("corp.example") && !emails.contains("Person Number"),
        "{emails}"
    );
}

#[test]
fn an_anonymized_copy_without_developer_keys_is_a_config_error() {
    let w = World::new();
    fs::write(w.path("anonymize.toml"), RULES).unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.prod.sources]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"sluice_never_dumped\"\nanonymize = \"anonymize.toml\"\n",
            w.store_url(),
            w.recipient
        ),
    )
    .unwrap();
    let out = w
        .sluice()
        .args(["backup", "prod"])
        .env("SLUICE_ANON_SALT", SALT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `anonymized-recipients`"));
}
