//! `sluice anonymize` as a filter: it refuses to run without a salt, fails
//! closed (exit 1, no output file) on personal data a glob `keep` would
//! leak, and writes the anonymized dump only when the whole dump passed.

use std::fs;

use crate::support::World;

const SALT: &str = "cli-test-salt-0123456789";

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn without_a_salt_it_refuses_to_run() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["anonymize", "--rules"])
        .arg(fixture("pg_rules.toml"))
        .env_remove("SLUICE_ANON_SALT")
        .pipe_stdin(fixture("pg_plain.sql"))
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SLUICE_ANON_SALT"));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_glob_keep_over_personal_data_fails_closed_and_writes_nothing() {
    let w = World::new();
    fs::write(w.path("keep.toml"), "\"*.*.*\" = \"keep\"\n").unwrap();
    let out = w
        .sluice()
        .args(["anonymize", "--rules", "keep.toml", "-o", "out.sql"])
        .env("SLUICE_ANON_SALT", SALT)
        .pipe_stdin(fixture("pg_plain.sql"))
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public.users.email"), "{stderr}");
    assert!(stderr.contains("suggested rule"), "{stderr}");
    assert!(!w.path("out.sql").exists());
    assert!(!w.path(".out.sql.sluice-partial-anonymize").exists());
}

#[test]
fn a_covered_dump_is_written_without_its_originals() {
    let w = World::new();
    w.sluice()
        .args(["anonymize", "--report", "--rules"])
        .arg(fixture("pg_rules.toml"))
        .args(["-o", "out.sql"])
        .env("SLUICE_ANON_SALT", SALT)
        .pipe_stdin(fixture("pg_plain.sql"))
        .unwrap()
        .assert()
        .success()
        .stderr(predicates::str::contains("transformed"));
    let output = fs::read_to_string(w.path("out.sql")).unwrap();
    let originals = fs::read_to_string(fixture("pg_originals.txt")).unwrap();
    for original in originals.lines().filter(|l| !l.trim().is_empty()) {
        assert!(!output.contains(original), "{original:?} survived");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(w.path("out.sql"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn init_writes_rules_that_cover_the_dump() {
    let w = World::new();
    let out = w
        .sluice()
        .args(["anonymize", "--init"])
        .pipe_stdin(fixture("mariadb.sql"))
        .unwrap()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(w.path("rules.toml"), &out.stdout).unwrap();
    w.sluice()
        .args(["anonymize", "--rules", "rules.toml"])
        .env("SLUICE_ANON_SALT", SALT)
        .pipe_stdin(fixture("mariadb.sql"))
        .unwrap()
        .assert()
        .success();
}
