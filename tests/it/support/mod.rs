//! Shared helpers: a scratch directory with a store, a key pair and a
//! signing key, and a `sluice` command that sees neither the caller's
//! config nor its SLUICE_* environment, and that signs backups with the
//! world's signing key and trusts it.

pub mod db;
pub mod moto;
pub mod newer_postgres;

use std::{
    fs,
    path::{Path, PathBuf},
};

use assert_cmd::Command;

pub mod s3;
use sha2::{Digest, Sha256};

/// A scratch world: `root/store` is the store, `root/key.txt` the identity,
/// `root/signing.key` the signing key.
pub struct World {
    pub dir: tempfile::TempDir,
    pub recipient: String,
    /// The signing key's public key (`sluicesign1…`).
    pub signer: String,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("store")).unwrap();
        let out = Command::cargo_bin("sluice")
            .unwrap()
            .current_dir(dir.path())
            .args(["keygen", "-o", "key.txt"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recipient = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let out = Command::cargo_bin("sluice")
            .unwrap()
            .current_dir(dir.path())
            .args(["keygen", "--signing", "-o", "signing.key"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let signer = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        Self {
            dir,
            recipient,
            signer,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn store_url(&self) -> String {
        format!("file://{}", self.path("store").display())
    }

    pub fn key(&self) -> PathBuf {
        self.path("key.txt")
    }

    /// `sluice` run in the scratch directory with a clean environment, but
    /// for the world's signing key (SLUICE_SIGNING_KEY_FILE) and its public
    /// key as the one trusted signer (SLUICE_TRUSTED_SIGNERS).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("sluice"));
        cmd.current_dir(self.dir.path())
            .env_remove("SLUICE_CONFIG")
            .env_remove("SLUICE_STORE")
            .env_remove("SLUICE_IDENTITY_FILE")
            .env_remove("SLUICE_LOG")
            .env("SLUICE_SIGNING_KEY_FILE", self.path("signing.key"))
            .env("SLUICE_TRUSTED_SIGNERS", &self.signer);
        cmd
    }

    /// [`World::command`] with a time limit, for assertions.
    pub fn sluice(&self) -> Command {
        let mut cmd = Command::from_std(self.command());
        cmd.timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// `sluice backup SET --store … -r … --source SPEC…`; returns `SET@ID`.
    pub fn backup(&self, set: &str, sources: &[&str]) -> String {
        let mut cmd = self.sluice();
        cmd.args([
            "backup",
            set,
            "--store",
            &self.store_url(),
            "-r",
            &self.recipient,
        ]);
        for s in sources {
            cmd.args(["--source", s]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The one data object of a backup in the store.
    pub fn object_path(&self, backup: &str, name: &str) -> PathBuf {
        let (set, id) = backup.split_once('@').unwrap();
        self.path("store").join(set).join(id).join(name)
    }

    /// Whether a backup into the `file://` store has begun uploading: a
    /// temporary file exists for a key other than a lease (taking a lease
    /// makes short-lived temporary files of its own).
    pub fn upload_started(&self) -> bool {
        fs::read_dir(self.path("store/.sluice-tmp")).is_ok_and(|dir| {
            dir.flatten()
                .any(|e| !e.file_name().to_string_lossy().contains("lease.json"))
        })
    }

    /// Configures set `both`: two `files` sources, `first` and `second`, of
    /// the directories of those names, each holding `file` with `contents`
    /// of its own; backs it up and returns the two directories.
    pub fn back_up_two_directories(
        &self,
        file: &str,
        contents: [Vec<u8>; 2],
    ) -> (PathBuf, PathBuf) {
        let (first, second) = (self.path("first"), self.path("second"));
        for (dir, contents) in [&first, &second].into_iter().zip(contents) {
            fs::create_dir(dir).unwrap();
            fs::write(dir.join(file), contents).unwrap();
        }
        fs::write(
            self.path("sluice.toml"),
            format!(
                "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n\
                 [[sets.both.sources]]\nname = \"first\"\nkind = \"files\"\npath = \"{}\"\n\
                 [[sets.both.sources]]\nname = \"second\"\nkind = \"files\"\npath = \"{}\"\n",
                self.store_url(),
                self.recipient,
                first.display(),
                second.display()
            ),
        )
        .unwrap();
        self.sluice().args(["backup", "both"]).assert().success();
        (first, second)
    }

    /// Ids listed by `sluice list SET --json`.
    pub fn listed_ids(&self, set: &str) -> Vec<String> {
        let out = self
            .sluice()
            .args(["list", set, "--json", "--store", &self.store_url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        entries
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A successful command's stdout; its stderr in the panic otherwise.
pub fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "sluice failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough to
/// make real multi-part objects.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every path under `root` (relative, sorted), with a type-and-content
/// fingerprint, so two trees compare equal only if they hold the same
/// names, kinds, link targets, contents and modes.
pub fn tree(root: &Path) -> Vec<(String, String)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = entry.path().symlink_metadata().unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let what = if meta.file_type().is_symlink() {
            format!("link -> {}", fs::read_link(entry.path()).unwrap().display())
        } else if meta.is_dir() {
            format!("dir {mode:o}")
        } else {
            format!(
                "file {mode:o} {}",
                sha256_hex(&fs::read(entry.path()).unwrap())
            )
        };
        out.push((rel, what));
    }
    out
}

/// Whether `dir` holds a leftover staging or swap directory.
pub fn has_sluice_leftovers(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".sluice-"))
        })
        .unwrap_or(false)
}
