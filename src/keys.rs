//! age recipients (who can open a backup) and identities (the private keys
//! that open it). The backup host holds only recipients; identities come from
//! `--identity FILE` or `SLUICE_IDENTITY_FILE`, never from the config.

use std::{
    fs::{self, OpenOptions},
    io::{self, BufReader, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    str::FromStr,
};

use age::secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

mod passphrase;

pub use passphrase::PASSPHRASE_ENV;

/// A recipient or identity problem.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A string in `recipients` or `--recipient` is not a public key.
    #[error(
        "`{shown}` is not an age recipient: expected an X25519 key (age1…), `ssh-ed25519 …` or `ssh-rsa …`{hint}"
    )]
    InvalidRecipient {
        /// The value, cut short (or hidden if it looks like a secret).
        shown: String,
        /// Extra guidance.
        hint: &'static str,
    },
    /// A backup needs at least one recipient.
    #[error(
        "no recipients for set `{set}`: add `recipients = [\"age1…\"]` under [keys] in the config, or pass --recipient age1… (make a key pair with `sluice keygen -o key.txt`)"
    )]
    NoRecipients {
        /// The set being backed up.
        set: String,
    },
    /// Reading an object needs an identity.
    #[error(
        "no identity to decrypt with: pass --identity FILE or set SLUICE_IDENTITY_FILE (the file `sluice keygen` wrote)"
    )]
    NoIdentity,
    /// An identity file could not be read.
    #[error("could not read identity file `{}`: {source}", path.display())]
    ReadIdentity {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An identity file holds something other than identities.
    #[error(
        "identity file `{}` holds no usable identity: {reason}. It should contain an AGE-SECRET-KEY-1… line (from `sluice keygen` or `age-keygen`) or an unencrypted OpenSSH private key",
        path.display()
    )]
    InvalidIdentity {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A passphrase-protected identity file could not be opened.
    #[error("identity file `{}` is passphrase-protected, and {reason}", path.display())]
    Passphrase {
        /// The file.
        path: PathBuf,
        /// Why it did not open.
        reason: String,
    },
    /// The new identity file could not be written.
    #[error(
        "could not write identity file `{}`: {source}{}",
        path.display(),
        if source.kind() == io::ErrorKind::AlreadyExists {
            ". sluice never overwrites a key (backups may depend on it): pick another file name, or move the old key away first"
        } else {
            ""
        }
    )]
    WriteIdentity {
        /// The file.
        path: PathBuf,
        /// The cause (an existing file is never overwritten).
        source: io::Error,
    },
    /// age refused the recipient list.
    #[error("cannot encrypt to these recipients: {0}")]
    Encrypt(String),
}

/// A short, stable name for a public key: `sha256:` and the first 16 hex
/// digits of the SHA-256 of the key as written (without an SSH comment).
/// Manifests record these so a user can tell which key opens an object.
pub fn fingerprint(recipient: &str) -> String {
    let digest = Sha256::digest(canonical_recipient(recipient).as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `ssh-ed25519 AAAA… comment` → `ssh-ed25519 AAAA…`; age keys unchanged.
fn canonical_recipient(recipient: &str) -> String {
    let mut parts = recipient.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind), Some(key)) if kind.starts_with("ssh-") => format!("{kind} {key}"),
        _ => recipient.trim().to_owned(),
    }
}

enum AnyRecipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

/// The public keys a backup object is encrypted to.
pub struct Recipients {
    keys: Vec<AnyRecipient>,
    fingerprints: Vec<String>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Recipients")
            .field(&self.fingerprints)
            .finish()
    }
}

impl Recipients {
    /// Parses recipient strings; `set` names the set in the error when the
    /// list is empty.
    pub fn parse(list: &[String], set: &str) -> Result<Self, KeyError> {
        if list.is_empty() {
            return Err(KeyError::NoRecipients {
                set: set.to_owned(),
            });
        }
        let mut keys = Vec::with_capacity(list.len());
        let mut fingerprints = Vec::with_capacity(list.len());
        for value in list {
            let value = value.trim();
            let key = if value.starts_with("age1") {
                age::x25519::Recipient::from_str(value)
                    .map(AnyRecipient::X25519)
                    .map_err(|_| invalid_recipient(value))?
            } else if value.starts_with("ssh-") {
                age::ssh::Recipient::from_str(value)
                    .map(AnyRecipient::Ssh)
                    .map_err(|_| invalid_recipient(value))?
            } else {
                return Err(invalid_recipient(value));
            };
            keys.push(key);
            fingerprints.push(fingerprint(value));
        }
        Ok(Self { keys, fingerprints })
    }

    /// Fingerprints of the recipients, in order.
    pub fn fingerprints(&self) -> &[String] {
        &self.fingerprints
    }

    /// A fresh encryptor (new file key) for one object.
    pub fn encryptor(&self) -> Result<age::Encryptor, KeyError> {
        let refs = self.keys.iter().map(|k| match k {
            AnyRecipient::X25519(r) => r as &dyn age::Recipient,
            AnyRecipient::Ssh(r) => r as &dyn age::Recipient,
        });
        age::Encryptor::with_recipients(refs).map_err(|e| KeyError::Encrypt(e.to_string()))
    }
}

fn invalid_recipient(value: &str) -> KeyError {
    if value.starts_with("AGE-SECRET-KEY-") {
        return KeyError::InvalidRecipient {
            shown: "AGE-SECRET-KEY-…".to_owned(),
            hint: ". That is a private identity: keep it off the backup host and give its public key (the `age1…` line `sluice keygen` printed) instead",
        };
    }
    let shown: String = value.chars().take(24).collect();
    let shown = if value.chars().count() > 24 {
        format!("{shown}…")
    } else {
        shown
    };
    KeyError::InvalidRecipient { shown, hint: "" }
}

/// Private keys that can open backup objects.
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    fingerprints: Vec<String>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Identities")
            .field(&self.fingerprints)
            .finish()
    }
}

impl Identities {
    /// Reads identity files: age identity files (`AGE-SECRET-KEY-1…` lines),
    /// also passphrase-protected ones (asking for the passphrase), or
    /// unencrypted OpenSSH private keys. Warns when a file is readable by
    /// others.
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        if paths.is_empty() {
            return Err(KeyError::NoIdentity);
        }
        let mut keys: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
        let mut fingerprints = Vec::new();
        for path in paths {
            let read_err = |source| KeyError::ReadIdentity {
                path: path.clone(),
                source,
            };
            let bytes = fs::read(path).map_err(read_err)?;
            let text = if passphrase::is_encrypted(&bytes) {
                passphrase::open(path, &bytes)?
            } else {
                String::from_utf8(bytes).map_err(|e| {
                    read_err(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))
                })?
            };
            if let Ok(meta) = fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    "identity file `{}` is readable by other users; restrict it with `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
            let invalid = |reason: String| KeyError::InvalidIdentity {
                path: path.clone(),
                reason,
            };
            if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
                let identity = age::ssh::Identity::from_buffer(
                    BufReader::new(text.as_bytes()),
                    Some(path.display().to_string()),
                )
                .map_err(|e| invalid(e.to_string()))?;
                match identity {
                    age::ssh::Identity::Unencrypted(_) => keys.push(Box::new(identity)),
                    age::ssh::Identity::Encrypted(_) => {
                        return Err(invalid(
                            "the SSH key is passphrase-protected, which sluice cannot prompt for yet; use an unencrypted copy in a protected location".to_owned(),
                        ));
                    }
                    age::ssh::Identity::Unsupported(_) => {
                        return Err(invalid("this SSH key type is not supported".to_owned()));
                    }
                }
                continue;
            }
            let mut found = 0;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let identity = age::x25519::Identity::from_str(line).map_err(|_| {
                    invalid(
                        "it has a line that is neither a comment nor an AGE-SECRET-KEY-1… identity"
                            .to_owned(),
                    )
                })?;
                fingerprints.push(fingerprint(&identity.to_public().to_string()));
                keys.push(Box::new(identity));
                found += 1;
            }
            if found == 0 {
                return Err(invalid("the file is empty".to_owned()));
            }
        }
        Ok(Self { keys, fingerprints })
    }

    /// Fingerprints of the public keys of the X25519 identities.
    pub fn fingerprints(&self) -> &[String] {
        &self.fingerprints
    }

    /// The identities as age wants them.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity)
    }
}

/// A new X25519 key pair.
pub struct NewKey {
    /// The identity file's contents (secret).
    pub identity_file: String,
    /// The public key (`age1…`).
    pub recipient: String,
}

/// Generates a new X25519 key pair, in age's identity-file format.
pub fn generate() -> NewKey {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    let identity_file = format!(
        "# created: {created}\n# public key: {recipient}\n# fingerprint: {}\n{}\n",
        fingerprint(&recipient),
        identity.to_string().expose_secret()
    );
    NewKey {
        identity_file,
        recipient,
    }
}

/// Writes a new identity file with mode 0600, encrypted with a passphrase
/// when `protect` is set; never overwrites a file.
pub fn write_identity(path: &Path, key: &NewKey, protect: bool) -> Result<(), KeyError> {
    let err = |source| KeyError::WriteIdentity {
        path: path.to_owned(),
        source,
    };
    let contents = if protect {
        passphrase::protect(&key.identity_file).map_err(err)?
    } else {
        key.identity_file.clone().into_bytes()
    };
    create_private(path, &contents).map_err(err)
}

/// Creates `path` with mode 0600 holding `contents` (a secret key), synced
/// to disk; fails if the file exists.
pub(crate) fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents).and_then(|()| file.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_of_each_kind_parse_and_get_stable_fingerprints() {
        let key = generate();
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
        let recipients = Recipients::parse(&[key.recipient.clone(), ssh.to_owned()], "s").unwrap();
        assert_eq!(recipients.fingerprints().len(), 2);
        assert_eq!(recipients.fingerprints()[0], fingerprint(&key.recipient));
        assert_eq!(
            fingerprint(ssh),
            fingerprint(&ssh.replace(" alice@rust", ""))
        );
        assert!(recipients.encryptor().is_ok());
    }

    #[test]
    fn a_secret_key_given_as_recipient_is_refused_without_echoing_it() {
        let key = generate();
        let secret = key.identity_file.lines().last().unwrap().to_owned();
        let err = Recipients::parse(std::slice::from_ref(&secret), "s")
            .unwrap_err()
            .to_string();
        assert!(!err.contains(&secret[16..]), "{err}");
        assert!(err.contains("private identity"), "{err}");
    }

    #[test]
    fn garbage_recipients_and_empty_lists_are_refused() {
        assert!(Recipients::parse(&["age1nope".to_owned()], "s").is_err());
        assert!(Recipients::parse(&["hello".to_owned()], "s").is_err());
        let err = Recipients::parse(&[], "prod").unwrap_err().to_string();
        assert!(err.contains("set `prod`"), "{err}");
    }

    #[test]
    fn identity_files_are_written_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        let key = generate();
        write_identity(&path, &key, false).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            write_identity(&path, &key, false).is_err(),
            "overwrote a key"
        );
        let identities = Identities::load(&[path]).unwrap();
        assert_eq!(identities.fingerprints(), [fingerprint(&key.recipient)]);
    }

    #[test]
    fn an_identity_file_with_other_content_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        fs::write(&path, "password=hunter2\n").unwrap();
        let err = Identities::load(&[path]).unwrap_err().to_string();
        assert!(err.contains("neither a comment"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
