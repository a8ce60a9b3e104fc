//! Signed manifests: a backup whose manifest was altered, whose object was
//! swapped for another one encrypted to the same key, or that an untrusted
//! key (or no key) signed, is refused before any restore process runs; an
//! unsigned one restores with --allow-unsigned and a warning; during a key
//! rotation backups by either trusted key restore.

use std::{fs, path::PathBuf, process::Output};

use serde_json::Value;

use crate::support::{
    World,
    db::{PG_ENV, PgDb, pg_checksums, psql},
    random_bytes,
    s3::{BUCKET, PREFIX, S3World},
    stdout_of,
};

/// Set `db`: a command source whose dump is `dump.bin`, and whose restore
/// command first creates `restore-ran`, then writes `restored.txt`; 1 MiB
/// parts; `keys` are more lines under [keys].
fn config(w: &World, store: &str, keys: &str) -> String {
    format!(
        "[keys]\nrecipients = [\"{recipient}\"]\n{keys}\n\
         [[sets.db.sources]]\nname = \"db\"\nkind = \"command\"\n\
         backup = [\"cat\", \"{dump}\"]\n\
         restore = [\"sh\", \"-c\", \"touch restore-ran; cat > restored.txt\"]\n{store}",
        recipient = w.recipient,
        dump = w.path("dump.bin").display(),
    )
}

fn world(keys: &str) -> World {
    let w = World::new();
    let store = format!(
        "[store]\nurl = \"{}\"\npart-size = \"1MiB\"\n",
        w.store_url()
    );
    fs::write(w.path("sluice.toml"), config(&w, &store, keys)).unwrap();
    w
}

/// Writes a new 3 MiB `dump.bin`; returns its bytes.
fn new_dump(w: &World, seed: u64) -> Vec<u8> {
    let bytes = random_bytes(3 * 1024 * 1024, seed);
    fs::write(w.path("dump.bin"), &bytes).unwrap();
    bytes
}

/// A new signing key in the world's directory; returns its public key.
fn signing_key(w: &World, name: &str) -> String {
    stdout_of(
        &w.sluice()
            .args(["keygen", "--signing", "-o", name])
            .output()
            .unwrap(),
    )
    .trim()
    .to_owned()
}

/// `backup db` as `cmd` was set up; returns `db@ID`.
fn backup(cmd: &mut assert_cmd::Command) -> String {
    stdout_of(&cmd.args(["backup", "db"]).output().unwrap())
        .trim()
        .to_owned()
}

/// A backup signed with the key in `file`, by a host whose own config
/// lists no trusted signers (an attacker's, say).
fn backup_signed_by(w: &World, file: &str) -> String {
    backup(
        w.sluice()
            .env("SLUICE_SIGNING_KEY_FILE", w.path(file))
            .env_remove("SLUICE_TRUSTED_SIGNERS"),
    )
}

fn restore(w: &World, backup: &str, extra: &[&str]) -> Output {
    w.sluice()
        .args(["restore", backup, "--yes", "-i", "key.txt"])
        .args(extra)
        .output()
        .unwrap()
}

/// Restores `backup`; checks the restore failed before its restore command
/// ran; returns stderr.
fn refused(w: &World, backup: &str, extra: &[&str]) -> String {
    let out = restore(w, backup, extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !w.path("restore-ran").exists() && !w.path("restored.txt").exists(),
        "the restore command ran: {stderr}"
    );
    stderr
}

/// Restores `backup` with `extra` flags; checks its command got `dump`;
/// clears its files; returns stderr.
fn restored(w: &World, backup: &str, extra: &[&str], dump: &[u8]) -> String {
    let out = restore(w, backup, extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(fs::read(w.path("restored.txt")).unwrap() == dump);
    fs::remove_file(w.path("restored.txt")).unwrap();
    fs::remove_file(w.path("restore-ran")).unwrap();
    stderr
}

fn manifest_path(w: &World, backup: &str) -> PathBuf {
    w.object_path(backup, "manifest.json")
}

fn read_manifest(path: &PathBuf) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn write_manifest(path: &PathBuf, manifest: &Value) {
    fs::write(path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
}

/// `sluice list db --json`: each backup's id and signature verdict.
fn listed(w: &World) -> Vec<(String, String)> {
    let out = stdout_of(&w.sluice().args(["list", "db", "--json"]).output().unwrap());
    let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
    entries
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["signature"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn id(backup: &str) -> String {
    backup.split_once('@').unwrap().1.to_owned()
}

#[test]
fn a_manifest_altered_in_the_store_is_refused_before_the_restore_command_runs() {
    let w = world("");
    let dump = new_dump(&w, 1);
    let b = backup(&mut w.sluice());
    let stored = fs::read_to_string(manifest_path(&w, &b)).unwrap();
    assert!(stored.contains(&format!("\"signer\": \"{}\"", w.signer)));
    restored(&w, &b, &[], &dump);

    // A field no other check looks at: only the signature catches it.
    let mut manifest = read_manifest(&manifest_path(&w, &b));
    manifest["host"] = Value::from("elsewhere");
    write_manifest(&manifest_path(&w, &b), &manifest);
    for extra in [&[][..], &["--allow-unsigned"]] {
        let stderr = refused(&w, &b, extra);
        assert!(
            stderr.contains(&format!("refusing backup `{b}`")),
            "{stderr}"
        );
        assert!(
            stderr.contains("its manifest was changed after it was signed"),
            "{stderr}"
        );
        assert!(stderr.contains(&w.signer), "{stderr}");
    }
    let out = w
        .sluice()
        .args(["verify", &b, "-i", "key.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed after it was signed"));

    // list and show say so, and do not refuse.
    assert_eq!(listed(&w), [(id(&b), "altered".to_owned())]);
    let show = stdout_of(&w.sluice().args(["show", &b]).output().unwrap());
    assert!(show.contains("signed    ALTERED"), "{show}");
}

#[test]
fn an_object_swapped_for_one_of_another_backup_of_the_set_is_refused_before_the_restore_command_runs()
 {
    let w = world("");
    let older_dump = new_dump(&w, 1);
    let older = backup(&mut w.sluice());
    new_dump(&w, 2);
    let newer = backup(&mut w.sluice());
    let object = |b: &str| w.object_path(b, "db.out.zst.age");

    // The other object opens with the same key, but its parts are not the
    // ones the signed manifest names.
    fs::copy(object(&older), object(&newer)).unwrap();
    let stderr = refused(&w, &newer, &[]);
    // Its size, or failing that its first part's SHA-256, gives it away.
    assert!(
        stderr.contains("`db.out.zst.age` has") && stderr.contains("it was truncated or replaced")
            || stderr.contains("part 1 of `db.out.zst.age` does not match its SHA-256"),
        "{stderr}"
    );

    // Rewriting the manifest to name them breaks its signature.
    let mut manifest = read_manifest(&manifest_path(&w, &newer));
    manifest["objects"] = read_manifest(&manifest_path(&w, &older))["objects"].clone();
    write_manifest(&manifest_path(&w, &newer), &manifest);
    let stderr = refused(&w, &newer, &["--allow-unsigned"]);
    assert!(stderr.contains("changed after it was signed"), "{stderr}");

    // The backup whose object it was still restores: the refusals were
    // about the swap.
    restored(&w, &older, &[], &older_dump);
}

#[test]
fn a_backup_an_untrusted_key_signed_is_refused_by_restore_fetch_and_verify() {
    let w = world("");
    let dump = new_dump(&w, 3);
    let trusted = backup(&mut w.sluice());
    let intruder = signing_key(&w, "intruder.key");
    let planted = backup_signed_by(&w, "intruder.key");

    // `db` (@latest) is the planted backup.
    let stderr = refused(&w, "db", &[]);
    assert!(
        stderr.contains(&format!(
            "refusing backup `{planted}`: it is signed by {intruder}, which is not among set `db`'s trusted-signers"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--trusted-signer"), "{stderr}");

    let out = w
        .sluice()
        .args(["fetch", "db", "-i", "key.txt", "-o", "fetched.bin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing backup"));
    assert!(!w.path("fetched.bin").exists());
    let out = w
        .sluice()
        .args(["verify", "db", "-i", "key.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing backup"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ok "));

    // What the set's own key signed is fine; list tells them apart.
    restored(&w, &trusted, &[], &dump);
    assert_eq!(
        listed(&w),
        [
            (id(&trusted), "trusted".to_owned()),
            (id(&planted), "untrusted".to_owned())
        ]
    );
    let out = stdout_of(&w.sluice().args(["list", "db"]).output().unwrap());
    assert!(out.contains("SIGNED") && out.contains("untrusted"), "{out}");
    // Knowingly, with a warning.
    let stderr = restored(&w, &planted, &["--allow-unsigned"], &dump);
    assert!(stderr.contains("which set `db` does not trust"), "{stderr}");
}

#[test]
fn an_old_unsigned_backup_restores_only_with_allow_unsigned_and_a_warning() {
    let w = world("");
    let dump = new_dump(&w, 4);
    let out = w
        .sluice()
        .args(["backup", "db"])
        .env_remove("SLUICE_SIGNING_KEY_FILE")
        .env_remove("SLUICE_TRUSTED_SIGNERS")
        .output()
        .unwrap();
    let unsigned = stdout_of(&out).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("this backup is UNSIGNED"), "{stderr}");
    assert!(
        !fs::read_to_string(manifest_path(&w, &unsigned))
            .unwrap()
            .contains("signature")
    );

    let stderr = refused(&w, &unsigned, &[]);
    assert!(
        stderr.contains(&format!("refusing backup `{unsigned}`: it is not signed")),
        "{stderr}"
    );
    assert!(stderr.contains("pass --allow-unsigned"), "{stderr}");
    let stderr = restored(&w, &unsigned, &["--allow-unsigned"], &dump);
    assert!(
        stderr.contains("although it is unsigned") && stderr.contains("WARN"),
        "{stderr}"
    );
    assert_eq!(listed(&w), [(id(&unsigned), "unsigned".to_owned())]);
    let out = w
        .sluice()
        .args(["verify", &unsigned, "-i", "key.txt", "--allow-unsigned"])
        .output()
        .unwrap();
    assert!(stdout_of(&out).contains(&format!(
        "verifying {unsigned} (UNSIGNED, allowed by --allow-unsigned)"
    )));
}

#[test]
fn with_two_trusted_signers_backups_by_either_restore_and_no_other_key_signs() {
    let w = World::new();
    let new = signing_key(&w, "new.key");
    fs::write(
        w.path("sluice.toml"),
        config(
            &w,
            &format!("[store]\nurl = \"{}\"\n", w.store_url()),
            &format!("trusted-signers = [\"{}\", \"{new}\"]", w.signer),
        ),
    )
    .unwrap();
    // The config's list, not the test world's.
    let sluice = || {
        let mut cmd = w.sluice();
        cmd.env_remove("SLUICE_TRUSTED_SIGNERS");
        cmd
    };
    let old_dump = new_dump(&w, 5);
    let by_old = backup(&mut sluice());
    let new_dump_bytes = new_dump(&w, 6);
    let by_new = backup(sluice().env("SLUICE_SIGNING_KEY_FILE", w.path("new.key")));
    let restore_by_config = |b: &str, dump: &[u8]| {
        let out = sluice()
            .args(["restore", b, "--yes", "-i", "key.txt"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(fs::read(w.path("restored.txt")).unwrap() == dump);
    };
    restore_by_config(&by_old, &old_dump);
    restore_by_config(&by_new, &new_dump_bytes);

    // A key the set does not list cannot sign its backups, and no key at
    // all is refused too: restores would refuse what they made.
    let other = signing_key(&w, "other.key");
    let out = sluice()
        .args(["backup", "db"])
        .env("SLUICE_SIGNING_KEY_FILE", w.path("other.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "({other}) is not among set `db`'s trusted-signers"
        )),
        "{stderr}"
    );
    let out = sluice()
        .args(["backup", "db"])
        .env_remove("SLUICE_SIGNING_KEY_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("set `db` lists trusted-signers, but there is no signing key"),
        "{stderr}"
    );
    let out = stdout_of(&sluice().args(["list", "db", "--json"]).output().unwrap());
    let entries: Vec<Value> = serde_json::from_str(&out).unwrap();
    let verdicts: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["signature"].as_str().unwrap(),
                e["signer"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [("trusted", w.signer.as_str()), ("trusted", new.as_str())]
    );
}

#[test]
fn a_backup_warns_when_the_recipients_changed_since_the_previous_one() {
    let w = world("");
    new_dump(&w, 7);
    backup(&mut w.sluice());
    let other = stdout_of(
        &w.sluice()
            .args(["keygen", "-o", "other.txt"])
            .output()
            .unwrap(),
    )
    .trim()
    .to_owned();
    let run = || {
        let out = w
            .sluice()
            .args(["backup", "db", "-r", &other])
            .output()
            .unwrap();
        stdout_of(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run();
    let fingerprint = |key: &str| sluice::keys::fingerprint(key);
    assert!(
        stderr
            .contains("the recipients of set `db`'s full copies changed since its previous backup"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "added {}; removed {}",
            fingerprint(&other),
            fingerprint(&w.recipient)
        )),
        "{stderr}"
    );
    // Once, not at every backup after the change.
    assert!(!run().contains("recipients"));
}

#[test]
fn a_planted_backup_leaves_a_postgresql_target_unchanged() {
    let w = World::new();
    let source = PgDb::create("signing pg source");
    psql(
        &source.name,
        "CREATE TABLE accounts (v text); INSERT INTO accounts VALUES ('real');",
    );
    let evil = PgDb::create("signing pg evil");
    psql(
        &evil.name,
        "CREATE TABLE accounts (v text); INSERT INTO accounts VALUES ('planted');",
    );
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n\
             [[sets.pg.sources]]\nname = \"db\"\nkind = \"postgres\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\ndatabase = \"{}\"\n",
            w.store_url(),
            w.recipient,
            source.name
        ),
    )
    .unwrap();
    let run = |cmd: &mut assert_cmd::Command| {
        stdout_of(&cmd.envs(PG_ENV).output().unwrap())
            .trim()
            .to_owned()
    };
    let real = run(w.sluice().args(["backup", "pg"]));
    let target = PgDb::create("signing pg target");
    psql(
        &target.name,
        "CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me');",
    );
    let before = pg_checksums(&target.name);

    // Backups of another database, by someone who can write to the store:
    // one signed with their own key, one unsigned.
    signing_key(&w, "intruder.key");
    let evil_source = format!("db=postgres:{}", evil.name);
    let plant = |cmd: &mut assert_cmd::Command| {
        run(cmd
            .args(["backup", "pg", "--source", &evil_source])
            .env_remove("SLUICE_TRUSTED_SIGNERS"))
    };
    let signed = plant(
        w.sluice()
            .env("SLUICE_SIGNING_KEY_FILE", w.path("intruder.key")),
    );
    let unsigned = plant(w.sluice().env_remove("SLUICE_SIGNING_KEY_FILE"));
    for planted in [&signed, &unsigned] {
        let out = w
            .sluice()
            .args(["restore", planted, "--yes", "-i", "key.txt"])
            .args(["--into", &target.name])
            .envs(PG_ENV)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("refusing backup"), "{stderr}");
        assert_eq!(pg_checksums(&target.name), before, "the target changed");
        assert_eq!(target.related(), std::slice::from_ref(&target.name));
    }

    // The real one restores.
    run(w
        .sluice()
        .args(["restore", &real, "--yes", "-i", "key.txt"])
        .args(["--into", &target.name]));
    assert_eq!(psql(&target.name, "SELECT v FROM accounts").trim(), "real");
}

#[test]
fn on_s3_an_altered_manifest_and_an_untrusted_signer_are_refused_before_the_restore_command_runs() {
    let s = S3World::new();
    let w = &s.world;
    let store = fs::read_to_string(w.path("sluice.toml")).unwrap();
    fs::write(w.path("sluice.toml"), config(w, &store, "")).unwrap();
    let dump = new_dump(w, 8);
    let run = |cmd: &mut std::process::Command| cmd.output().unwrap();
    let good = stdout_of(&run(s.command().args(["backup", "db"])))
        .trim()
        .to_owned();
    restored_s3(&s, &good, &dump);

    signing_key(w, "intruder.key");
    let planted = stdout_of(&run(s
        .command()
        .args(["backup", "db"])
        .env("SLUICE_SIGNING_KEY_FILE", w.path("intruder.key"))
        .env_remove("SLUICE_TRUSTED_SIGNERS")))
    .trim()
    .to_owned();
    let refused_s3 = |backup: &str| {
        let out = run(s
            .command()
            .args(["restore", backup, "--yes", "-i", "key.txt"]));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!w.path("restore-ran").exists(), "the restore command ran");
        stderr
    };
    let stderr = refused_s3(&planted);
    assert!(
        stderr.contains("not among set `db`'s trusted-signers"),
        "{stderr}"
    );

    // Rewritten through the S3 API, as anyone with write access could.
    let key = format!("db/{}/manifest.json", id(&good));
    let mut manifest = read_manifest(&s.server.object_file(&key));
    manifest["note"] = Value::from("restore me");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        s.server
            .client()
            .put_object()
            .bucket(BUCKET)
            .key(format!("{PREFIX}/{key}"))
            .body(serde_json::to_vec_pretty(&manifest).unwrap().into())
            .send()
            .await
            .unwrap();
    });
    let stderr = refused_s3(&good);
    assert!(stderr.contains("changed after it was signed"), "{stderr}");
}

fn restored_s3(s: &S3World, backup: &str, dump: &[u8]) {
    let w = &s.world;
    let out = s
        .command()
        .args(["restore", backup, "--yes", "-i", "key.txt"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fs::read(w.path("restored.txt")).unwrap() == dump);
    fs::remove_file(w.path("restored.txt")).unwrap();
    fs::remove_file(w.path("restore-ran")).unwrap();
}

#[test]
fn planted_backups_neither_count_for_retention_nor_get_pruned() {
    // sluice.toml trusts no signer (an intruder's config); owner.toml is
    // the owner's: it trusts the world's signer and keeps one backup.
    let w = world("");
    let attacker = fs::read_to_string(w.path("sluice.toml")).unwrap();
    let owner = attacker
        .replace(
            "[keys]\n",
            &format!("[keys]\ntrusted-signers = [\"{}\"]\n", w.signer),
        )
        .replace(
            "[[sets.db.sources]]",
            "[sets.db]\nretention = { keep-last = 1 }\nprune-after-backup = false\n[[sets.db.sources]]",
        );
    fs::write(w.path("owner.toml"), owner).unwrap();
    new_dump(&w, 1);
    let real = backup(w.sluice().args(["--config", "owner.toml"]));
    signing_key(&w, "intruder.key");
    let planted = [
        backup_signed_by(&w, "intruder.key"),
        backup(
            w.sluice()
                .env_remove("SLUICE_SIGNING_KEY_FILE")
                .env_remove("SLUICE_TRUSTED_SIGNERS"),
        ),
    ];

    let out = w
        .sluice()
        .args(["--config", "owner.toml", "prune", "db"])
        .output()
        .unwrap();
    let stdout = stdout_of(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(&format!("keep        {real}  manual")),
        "the real backup is the newest that counts: {stdout}"
    );
    for (backup, trust) in planted.iter().zip(["untrusted", "unsigned"]) {
        assert!(
            stdout.contains(&format!(
                "keep        {backup}  {trust:11}  never counted or removed"
            )),
            "{stdout}"
        );
        assert!(
            stderr.contains(&format!(
                "backup {backup} is {trust}, not signed by a trusted signer"
            )),
            "{stderr}"
        );
    }
    let mut ids: Vec<String> = listed(&w).into_iter().map(|(id, _)| id).collect();
    ids.sort();
    let mut expected: Vec<String> = std::iter::once(&real)
        .chain(&planted)
        .map(|b| id(b))
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "nothing was removed");
}
