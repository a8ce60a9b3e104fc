//! A set described in the config: several sources, `${VAR}` interpolation,
//! and a restore of every source to its configured target, in config order.

use std::fs;

use crate::support::{World, tree};

#[test]
fn a_configured_set_backs_up_and_restores_every_source() {
    let w = World::new();
    let media = w.path("media");
    fs::create_dir(&media).unwrap();
    fs::write(media.join("photo.jpg"), b"\xff\xd8 not really a photo").unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            r#"
[store]
url = "${{BACKUP_STORE}}"
[keys]
recipients = ["{recipient}"]
[[sets.site.sources]]
name = "media"
kind = "files"
path = "${{MEDIA_DIR}}"
[[sets.site.sources]]
name = "gitref"
kind = "command"
backup = ["sh", "-c", "echo $$GIT_SHA"]
restore = ["sh", "-c", "cat > gitref.txt"]
extension = "txt"
"#,
            recipient = w.recipient
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut cmd = w.sluice();
        cmd.args(args)
            .env("BACKUP_STORE", w.store_url())
            .env("MEDIA_DIR", &media)
            .env("GIT_SHA", "0123abc");
        cmd
    };
    run(&["backup", "site", "--note", "before the v2 migration"])
        .assert()
        .success();

    let listing = run(&["list"]).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("before the v2 migration"), "{listing}");
    assert!(listing.contains("media,gitref"), "{listing}");

    let original = tree(&media);
    fs::remove_dir_all(&media).unwrap();
    run(&["restore", "site@latest", "--yes", "-i", "key.txt"])
        .assert()
        .success();
    assert_eq!(tree(&media), original);
    assert_eq!(
        fs::read_to_string(w.path("gitref.txt")).unwrap(),
        "0123abc\n"
    );
}

#[test]
fn an_unset_variable_is_named() {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        "[store]\nurl = \"${SLUICE_TEST_NOT_SET}\"\n",
    )
    .unwrap();
    let out = w.sluice().args(["list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`SLUICE_TEST_NOT_SET` is not set"));
}

#[test]
fn a_set_runs_without_the_variables_only_other_sets_name() {
    let w = World::new();
    let docs = w.path("docs");
    fs::create_dir(&docs).unwrap();
    fs::write(docs.join("a.txt"), "a").unwrap();
    fs::write(
        w.path("sluice.toml"),
        format!(
            r#"
[store]
url = "{store}"
[keys]
recipients = ["{recipient}"]
[sets.docs]
notify = {{ failure = "${{SLUICE_TEST_DOCS_FAILURE_URL}}" }}
[[sets.docs.sources]]
name = "docs"
kind = "files"
path = "{docs}"
[[sets.prod.sources]]
name = "db"
kind = "postgres"
url = "postgres://app:${{SLUICE_TEST_PROD_DB_PASSWORD}}@127.0.0.1/app"
"#,
            store = w.store_url(),
            recipient = w.recipient,
            docs = docs.display()
        ),
    )
    .unwrap();
    // The host that runs `docs` has only docs' environment.
    w.sluice()
        .args(["backup", "docs"])
        .env("SLUICE_TEST_DOCS_FAILURE_URL", "http://127.0.0.1:9/fail")
        .assert()
        .success();
    // A backup needs its notify URL; a restore elsewhere does not.
    let out = w.sluice().args(["backup", "docs"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("set `docs` uses ${SLUICE_TEST_DOCS_FAILURE_URL}, not set"),
    );
    let elsewhere = w.path("elsewhere");
    w.sluice()
        .args(["restore", "docs", "-i", "key.txt", "--into"])
        .arg(&elsewhere)
        .assert()
        .success();
    assert_eq!(tree(&elsewhere), tree(&docs));
    let listing = w.sluice().args(["list"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&listing.stdout);
    let stderr = String::from_utf8_lossy(&listing.stderr);
    assert!(listing.status.success(), "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("docs ")), "{stdout}");
    assert!(
        stderr.contains("set `prod` uses ${SLUICE_TEST_PROD_DB_PASSWORD}, not set"),
        "{stderr}"
    );

    let out = w.sluice().args(["backup", "prod"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "set `prod` uses ${SLUICE_TEST_PROD_DB_PASSWORD}, not set; set it (a timer's service reads /etc/sluice/prod.env)"
        ),
        "{stderr}"
    );
    assert!(!w.path("store/prod").exists());
}

#[test]
fn the_example_config_parses() {
    let w = World::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sluice.toml");
    w.sluice()
        .arg("--config")
        .arg(&example)
        .args(["list", "prod", "--store", &w.store_url()])
        .env("PGPASSWORD", "x")
        .env("SHOP_DB_PASSWORD", "x")
        .env("MONGO_URI", "mongodb://localhost")
        .env("HC_UUID", "5a1e0f7c-2b6d-4c3e-9f00-5ec7e7c0ffee")
        .assert()
        .success();
}

#[test]
fn the_kubernetes_example_config_parses() {
    let w = World::new();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes/sluice.toml");
    w.sluice()
        .arg("--config")
        .arg(&example)
        .args(["list", "prod", "--store", &w.store_url()])
        .env("PGPASSWORD", "x")
        .assert()
        .success();
}

#[test]
fn a_set_with_its_own_keys_never_opens_with_the_default_key() {
    let w = World::new();
    w.sluice()
        .args(["keygen", "-o", "staging.txt"])
        .assert()
        .success();
    let staging = fs::read_to_string(w.path("staging.txt")).unwrap();
    let staging_recipient = staging
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.prod.sources]]\nname = \"x\"\nkind = \"command\"\nbackup = [\"echo\", \"prod\"]\n\
             [sets.staging.keys]\nrecipients = [\"{staging_recipient}\"]\n\
             [[sets.staging.sources]]\nname = \"x\"\nkind = \"command\"\nbackup = [\"echo\", \"staging\"]\n",
            w.store_url(),
            w.recipient
        ),
    )
    .unwrap();
    w.sluice().args(["backup", "prod"]).assert().success();
    w.sluice().args(["backup", "staging"]).assert().success();
    let fetch = |set: &str, key: &str| w.sluice().args(["fetch", set, "-i", key]).output().unwrap();
    assert_eq!(fetch("staging", "staging.txt").stdout, b"staging\n");
    assert_eq!(fetch("prod", "key.txt").stdout, b"prod\n");
    assert_eq!(
        fetch("prod", "staging.txt").status.code(),
        Some(1),
        "the staging key opened production"
    );
    assert_eq!(
        fetch("staging", "key.txt").status.code(),
        Some(1),
        "the default key opened staging"
    );
}
