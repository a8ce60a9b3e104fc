//! Secrets stay secret: after backups, restores and failed runs that use
//! known passwords (PostgreSQL and MariaDB connection passwords from the
//! config's `${VARS}`, an identity passphrase) and the signing key, none of
//! them appears in sluice's output or logs (at debug level), in anything in the store
//! (manifests, leases), in the metrics file, in any notification sent (a
//! local endpoint records them), or in the argv of any dump or restore tool
//! sluice ran (recorded by wrappers placed first on PATH).

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Output};

use crate::{
    notify::Endpoint,
    support::{
        World,
        db::{MyDb, PgDb, mariadb, psql},
    },
};

const PG_SECRET: &str = "pg-Secret-7f3a9c";
const MY_SECRET: &str = "my-Secret-41bd2e";
const MY_WRONG: &str = "my-Wrong-9e0c11";
const PASSPHRASE: &str = "phrase-Secret-c0ffee";

/// Puts a wrapper for each database tool in `bin/` that appends its argv to
/// `argv.log`, then runs the real tool.
fn wrap_tools(w: &World) {
    fs::create_dir(w.path("bin")).unwrap();
    let log = w.path("argv.log");
    for tool in [
        "pg_dump",
        "pg_dumpall",
        "pg_restore",
        "psql",
        "mariadb-dump",
        "mariadb",
        "mysqldump",
        "mysql",
    ] {
        let Ok(real) = which(tool) else { continue };
        let wrapper = w.path("bin").join(tool);
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"{tool} $*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn which(tool: &str) -> Result<String, ()> {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map_err(|_| ())?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !path.is_empty() {
        Ok(path)
    } else {
        Err(())
    }
}

/// Every file under `dir`, as text.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let bytes = fs::read(e.path()).unwrap();
            (
                e.path().display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
        .collect()
}

#[test]
fn no_password_or_passphrase_appears_in_output_logs_store_metrics_or_argv() {
    let w = World::new();
    wrap_tools(&w);
    let pg = PgDb::create("secrets pg");
    psql(
        &pg.name,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one')",
    );
    let my = MyDb::create("secrets my");
    let user = format!("sec_{}", std::process::id());
    mariadb(
        None,
        &format!(
            "DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'; \
             CREATE USER '{user}'@'%' IDENTIFIED BY '{MY_SECRET}'; \
             CREATE USER '{user}'@'localhost' IDENTIFIED BY '{MY_SECRET}'; \
             GRANT ALL PRIVILEGES ON `{0}`.* TO '{user}'@'%'; \
             GRANT ALL PRIVILEGES ON `{0}`.* TO '{user}'@'localhost'",
            my.name
        ),
    );
    mariadb(
        Some(&my.name),
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one')",
    );

    let out = w
        .sluice()
        .args(["keygen", "--passphrase", "-o", "k.age"])
        .env("SLUICE_IDENTITY_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(out.status.success());
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let endpoint = Endpoint::start(Some(200));
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{store}\"\n[keys]\nrecipients = [\"{recipient}\"]\n\
             [notify]\nstart = \"{url}/start\"\nsuccess = \"{url}/ok\"\nfailure = \"{url}/fail\"\n\
             webhook = \"{url}/hook\"\n\
             [sets.prod]\nmetrics-file = \"{metrics}\"\n\
             [[sets.prod.sources]]\nname = \"pg\"\nkind = \"postgres\"\n\
             url = \"postgres://postgres:${{PG_PASS}}@127.0.0.1:5432/{pg}\"\n\
             [[sets.prod.sources]]\nname = \"my\"\nkind = \"mysql\"\n\
             url = \"mysql://{user}:${{MY_PASS}}@127.0.0.1:3306/{my}\"\n\
             [sets.broken]\nmetrics-file = \"{metrics}\"\n\
             [[sets.broken.sources]]\nname = \"my\"\nkind = \"mysql\"\n\
             url = \"mysql://{user}:${{MY_WRONG}}@127.0.0.1:3306/{my}\"\n\
             [[sets.broken.sources]]\nname = \"pg\"\nkind = \"postgres\"\n\
             url = \"postgres://postgres:${{PG_PASS}}@127.0.0.1:5432/{pg}_missing\"\n",
            store = w.store_url(),
            url = endpoint.url,
            metrics = w.path("prod.prom").display(),
            pg = pg.name,
            my = my.name,
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        w.path("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let run = |args: &[&str]| -> Output {
        w.sluice()
            .arg("-v")
            .args(args)
            .env("PATH", &path)
            .env("PG_PASS", PG_SECRET)
            .env("MY_PASS", MY_SECRET)
            .env("MY_WRONG", MY_WRONG)
            .env("SLUICE_IDENTITY_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap()
    };

    let mut outputs = Vec::new();
    let backup = run(&["backup", "prod"]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    outputs.push(backup);
    for source in ["pg", "my"] {
        let restore = run(&[
            "restore",
            "prod@latest",
            "--source",
            source,
            "-i",
            "k.age",
            "--yes",
        ]);
        assert!(
            restore.status.success(),
            "{}",
            String::from_utf8_lossy(&restore.stderr)
        );
        outputs.push(restore);
    }
    let failed = run(&["backup", "broken"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("Access denied"),
        "the failed run shows the tool's own message: {}",
        String::from_utf8_lossy(&failed.stderr)
    );
    outputs.push(failed);
    outputs.push(run(&["list", "prod", "--json"]));
    outputs.push(run(&["show", "prod@latest", "--json"]));

    let mut places: Vec<(String, String)> = outputs
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            [
                (
                    format!("run {i} stdout"),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                ),
                (
                    format!("run {i} stderr"),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                ),
            ]
        })
        .collect();
    places.extend(files_under(&w.path("store")));
    places.push((
        "metrics".into(),
        fs::read_to_string(w.path("prod.prom")).unwrap(),
    ));
    let argv = fs::read_to_string(w.path("argv.log")).unwrap();
    assert!(
        argv.contains("pg_dump ")
            && (argv.contains("mariadb-dump ") || argv.contains("mysqldump ")),
        "the wrappers ran: {argv}"
    );
    places.push(("the tools' argv".into(), argv));
    let sent = endpoint.received();
    assert!(
        sent.iter().any(|r| r.path == "/fail") && sent.iter().any(|r| r.path == "/hook"),
        "the notifications were sent: {sent:?}"
    );
    places.extend(sent.into_iter().map(|r| {
        (
            format!("notification to {}", r.path),
            format!("{}\n{}", r.head, r.body),
        )
    }));

    assert!(
        places.iter().any(|(_, text)| text.contains(&my.name)),
        "the search sees what sluice wrote"
    );
    // The backups were signed with the world's signing key: its secret
    // line is as secret as the passwords.
    let signing_key = fs::read_to_string(w.path("signing.key")).unwrap();
    let signing_secret = signing_key
        .lines()
        .find(|l| l.starts_with("SLUICE-SIGNING-KEY-1"))
        .unwrap()
        .trim_start_matches("SLUICE-SIGNING-KEY-1");
    assert!(
        places
            .iter()
            .any(|(place, text)| place.ends_with("manifest.json") && text.contains(&w.signer)),
        "the backups were signed"
    );
    for (place, text) in &places {
        for secret in [PG_SECRET, MY_SECRET, MY_WRONG, PASSPHRASE, signing_secret] {
            assert!(
                !text.contains(secret),
                "`{secret}` appears in {place}:\n{text}"
            );
        }
    }
    mariadb(
        None,
        &format!("DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"),
    );
}
