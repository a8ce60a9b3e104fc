//! Passphrase-protected identity files: made by `keygen --passphrase`,
//! opened with the passphrase from the environment or typed at a terminal
//! (a pseudo-terminal from util-linux `script`), and by stock `age` too.

use std::{fs, os::unix::fs::PermissionsExt, process::Command};

use crate::support::World;

const PASSPHRASE: &str = "correct horse battery";

/// A world whose backup `p@…` of one file is encrypted to a new
/// passphrase-protected identity `k.age`.
fn protected_world() -> (World, String) {
    let w = World::new();
    let out = w
        .sluice()
        .args(["keygen", "--passphrase", "-o", "k.age"])
        .env("SLUICE_IDENTITY_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    fs::create_dir(w.path("d")).unwrap();
    fs::write(w.path("d/f.txt"), "the data\n").unwrap();
    let out = w
        .sluice()
        .args(["backup", "p", "--store", &w.store_url(), "-r", &recipient])
        .arg("--source")
        .arg(format!("d=files:{}", w.path("d").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backup = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (w, backup)
}

fn restore_args(w: &World, backup: &str, into: &str) -> Vec<String> {
    [
        "restore",
        backup,
        "--store",
        &w.store_url(),
        "-i",
        "k.age",
        "--into",
        into,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn keygen_writes_an_encrypted_0600_identity_that_restores_with_the_passphrase() {
    let (w, backup) = protected_world();
    let file = fs::read_to_string(w.path("k.age")).unwrap();
    assert!(
        file.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{file}"
    );
    assert!(
        !file.contains("AGE-SECRET-KEY"),
        "the identity is in the clear"
    );
    let mode = fs::metadata(w.path("k.age")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    w.sluice()
        .args(restore_args(&w, &backup, "ok"))
        .env("SLUICE_IDENTITY_PASSPHRASE", PASSPHRASE)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(w.path("ok/f.txt")).unwrap(),
        "the data\n"
    );

    let wrong = w
        .sluice()
        .args(restore_args(&w, &backup, "wrong"))
        .env("SLUICE_IDENTITY_PASSPHRASE", "not it")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr
            .contains("identity file `k.age` is passphrase-protected, and the passphrase is wrong"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not it"),
        "the passphrase was printed: {stderr}"
    );
    assert!(!w.path("wrong").exists());
}

#[test]
fn without_a_terminal_or_the_variable_it_says_how_to_give_the_passphrase() {
    let (w, backup) = protected_world();
    // setsid: no controlling terminal, whoever runs the tests.
    let out = Command::new("setsid")
        .arg(assert_cmd::cargo::cargo_bin("sluice"))
        .args(restore_args(&w, &backup, "out"))
        .current_dir(w.dir.path())
        .env_remove("SLUICE_IDENTITY_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no terminal to ask for the passphrase: run at a terminal, or set SLUICE_IDENTITY_PASSPHRASE"
        ),
        "{stderr}"
    );
    assert!(!w.path("out").exists());
}

#[test]
fn a_passphrase_typed_at_a_terminal_opens_it_in_sluice_and_in_stock_age() {
    let (w, backup) = protected_world();
    let at_terminal = |command: String| {
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(w.dir.path())
            .env_remove("SLUICE_IDENTITY_PASSPHRASE")
            .env("SLUICE_TRUSTED_SIGNERS", &w.signer)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{command}: {text}");
        text
    };
    let sluice = assert_cmd::cargo::cargo_bin("sluice");
    let mut args = vec![sluice.to_str().unwrap().to_owned()];
    args.extend(restore_args(&w, &backup, "typed"));
    let shown = at_terminal(shell_words::join(&args));
    assert!(
        shown.contains("Passphrase for identity file k.age:"),
        "{shown}"
    );
    assert_eq!(
        fs::read_to_string(w.path("typed/f.txt")).unwrap(),
        "the data\n"
    );

    let object = w.object_path(&backup, "d.tar.zst.age");
    at_terminal(format!(
        "age -d -i k.age -o plain.tar.zst {}",
        shell_words::quote(object.to_str().unwrap())
    ));
    let listed = Command::new("sh")
        .args(["-c", "zstd -dc plain.tar.zst | tar -t"])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "f.txt");
}
