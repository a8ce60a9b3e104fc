//! Signed manifests: who wrote a backup.
//!
//! age says who can open a backup, not who wrote it: recipients are public,
//! so anyone who can write to the store can encrypt a backup to them and
//! plant it. So the backup host signs every manifest with an ed25519 key
//! (`sluice keygen --signing`), and as the manifest holds the SHA-256 of
//! every stored part, the signature covers every byte of the backup.
//! `restore`, `fetch` and `verify` check it against the set's
//! `trusted-signers` before they read anything else ([`Policy::check`]).
//!
//! - [`SigningKey`] and [`SignerKey`]: the secret key (a text file like
//!   age's, `SLUICE-SIGNING-KEY-1…`) and its public half (`sluicesign1…`).
//! - [`Seal`]: a manifest's signature, checked as the manifest is read.
//! - [`TrustedSigners`], [`Trust`] and [`Policy`]: what a reader accepts.

mod seal;
mod trust;

pub use seal::{Seal, Signature};
pub use trust::{Policy, Trust, TrustedSigners};

use std::{
    fmt, fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    str::FromStr,
};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use bech32::{Bech32, Hrp, primitives::decode::CheckedHrpstring};

/// The bech32 prefix of a signer's public key: `sluicesign1…`.
const PUBLIC_HRP: &str = "sluicesign";

/// The bech32 prefix of a secret signing key, written upper case:
/// `SLUICE-SIGNING-KEY-1…`.
const SECRET_HRP: &str = "sluice-signing-key-";

/// A signing key, a signer or a signature could not be read, written or
/// accepted.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A string in `trusted-signers` or `--trusted-signer` is not a
    /// signer's public key.
    #[error(
        "`{shown}` is not a signer's public key: expected sluicesign1… (printed by `sluice keygen --signing`){hint}"
    )]
    InvalidSigner {
        /// The value, cut short (or hidden if it is a secret key).
        shown: String,
        /// Extra guidance.
        hint: &'static str,
    },
    /// A signing key file could not be read.
    #[error("could not read signing key file `{}`: {source}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A signing key file holds something other than one signing key.
    #[error(
        "signing key file `{}` holds no usable key: {reason}. It should hold one SLUICE-SIGNING-KEY-1… line (from `sluice keygen --signing`)",
        path.display()
    )]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A new signing key file could not be written.
    #[error(
        "could not write signing key file `{}`: {source}{}",
        path.display(),
        if source.kind() == io::ErrorKind::AlreadyExists {
            ". sluice never overwrites a key (the trusted-signers of restore hosts may name it): pick another file name, or move the old key away first"
        } else {
            ""
        }
    )]
    WriteKey {
        /// The file.
        path: PathBuf,
        /// The cause (an existing file is never overwritten).
        source: io::Error,
    },
    /// A backup of a set that lists trusted signers has no key to sign with.
    #[error(
        "set `{set}` lists trusted-signers, but there is no signing key to sign this backup with, and restores would refuse it unsigned: give the key with `signing-key` under [keys], SLUICE_SIGNING_KEY_FILE or --signing-key FILE (make one with `sluice keygen --signing -o FILE`)"
    )]
    NoSigningKey {
        /// The set.
        set: String,
    },
    /// A backup's signing key is not one the set trusts.
    #[error(
        "the signing key in `{}` ({signer}) is not among set `{set}`'s trusted-signers, so restores would refuse its backups: add {signer} to trusted-signers under [keys] (keep the old key listed while its backups exist), or sign with a listed key",
        path.display()
    )]
    KeyNotTrusted {
        /// The set.
        set: String,
        /// The key file.
        path: PathBuf,
        /// Its public key.
        signer: String,
    },
    /// A backup's manifest carries no signature.
    #[error(
        "refusing backup `{backup}`: it is not signed, so nothing shows who wrote it (anyone who can write to the store can plant a backup). If you know where it came from (made before sluice signed backups, by a host without a signing key, or a safety backup taken by such a host), pass --allow-unsigned"
    )]
    Unsigned {
        /// `SET@ID`.
        backup: String,
    },
    /// A backup's manifest is signed by a key the set does not trust.
    #[error(
        "refusing backup `{backup}`: it is signed by {signer}, {why}. If that is your backup host's key, add it to trusted-signers under [keys] (or pass --trusted-signer {signer}); if not, someone else wrote this backup: restore one a trusted key signed (`sluice list {set}` shows who signed each)"
    )]
    Untrusted {
        /// `SET@ID`.
        backup: String,
        /// The set.
        set: String,
        /// The signer's public key.
        signer: String,
        /// Why it is not trusted.
        why: String,
    },
    /// A backup's manifest does not match its signature.
    #[error(
        "refusing backup `{backup}`: its manifest was changed after it was signed ({reason}). Do not use it; restore another backup (`sluice list {set}` shows who signed each). --allow-unsigned does not accept an altered manifest"
    )]
    Altered {
        /// `SET@ID`.
        backup: String,
        /// The set.
        set: String,
        /// What does not match.
        reason: String,
    },
}

impl SigningError {
    /// Whether this is a refusal of a backup (exit 1) rather than a key or
    /// configuration problem (exit 2).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SigningError::Unsigned { .. }
                | SigningError::Untrusted { .. }
                | SigningError::Altered { .. }
        )
    }
}

/// A signer's public key: what `trusted-signers` lists and a signed
/// manifest names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignerKey([u8; 32]);

impl fmt::Display for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(PUBLIC_HRP);
        bech32::encode_lower_to_fmt::<Bech32, _>(f, hrp, &self.0).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({self})")
    }
}

impl FromStr for SignerKey {
    type Err = SigningError;

    fn from_str(s: &str) -> Result<Self, SigningError> {
        let s = s.trim();
        decode(s, PUBLIC_HRP)
            .map(Self)
            .ok_or_else(|| invalid_signer(s))
    }
}

fn invalid_signer(value: &str) -> SigningError {
    if value.to_ascii_lowercase().starts_with(SECRET_HRP) {
        return SigningError::InvalidSigner {
            shown: "SLUICE-SIGNING-KEY-…".to_owned(),
            hint: ". That is a secret signing key: keep it on the backup host and list its public key (the sluicesign1… line `sluice keygen --signing` printed) instead",
        };
    }
    let shown: String = value.chars().take(24).collect();
    let shown = if value.chars().count() > 24 {
        format!("{shown}…")
    } else {
        shown
    };
    SigningError::InvalidSigner { shown, hint: "" }
}

/// The 32 bytes of a bech32 string with prefix `hrp` (either case), or
/// none.
fn decode(s: &str, hrp: &str) -> Option<[u8; 32]> {
    let parsed = CheckedHrpstring::new::<Bech32>(s).ok()?;
    if parsed.hrp().to_lowercase() != hrp {
        return None;
    }
    let bytes: Vec<u8> = parsed.byte_iter().collect();
    bytes.try_into().ok()
}

/// A host's secret signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    signer: SignerKey,
    path: PathBuf,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("signer", &self.signer)
            .field("path", &self.path)
            .finish()
    }
}

impl SigningKey {
    /// Reads a signing key file (`sluice keygen --signing`): comment lines
    /// and one `SLUICE-SIGNING-KEY-1…` line. Warns when others may read it.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let text = fs::read_to_string(path).map_err(|source| SigningError::ReadKey {
            path: path.to_owned(),
            source,
        })?;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "signing key file `{}` is readable by other users; restrict it with `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
        let invalid = |reason| SigningError::InvalidKey {
            path: path.to_owned(),
            reason,
        };
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| invalid("the file is empty"))?;
        if lines.next().is_some() {
            return Err(invalid("it holds more than one line besides comments"));
        }
        let seed = decode(line, SECRET_HRP).ok_or_else(|| {
            invalid("its line is neither a comment nor a SLUICE-SIGNING-KEY-1… key")
        })?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| invalid("the key is not a valid ed25519 seed"))?;
        Ok(Self::from_pair(pair, path.to_owned()))
    }

    fn from_pair(pair: Ed25519KeyPair, path: PathBuf) -> Self {
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("ed25519 public keys are 32 bytes");
        Self {
            pair,
            signer: SignerKey(public),
            path,
        }
    }

    /// Its public key.
    pub fn signer(&self) -> &SignerKey {
        &self.signer
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// A new signing key, not yet written anywhere.
pub struct NewSigningKey {
    /// The key file's contents (secret).
    pub key_file: String,
    /// Its public key, for `trusted-signers`.
    pub signer: SignerKey,
}

/// Generates a new ed25519 signing key, in sluice's key-file format: a
/// comment with the creation time and the public key, then the secret.
pub fn generate() -> NewSigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS random source works");
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are a seed");
    let signer = SigningKey::from_pair(pair, PathBuf::new()).signer;
    let secret = bech32::encode_upper::<Bech32>(Hrp::parse_unchecked(SECRET_HRP), &seed)
        .expect("a 32-byte key fits bech32");
    seed.fill(0);
    let created = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    NewSigningKey {
        key_file: format!(
            "# sluice signing key: signs the manifests of this host's backups\n# created: {created}\n# public key: {signer}\n{secret}\n"
        ),
        signer,
    }
}

/// Writes a new signing key file with mode 0600; never overwrites a file.
pub fn write_key(path: &Path, key: &NewSigningKey) -> Result<(), SigningError> {
    crate::keys::create_private(path, key.key_file.as_bytes()).map_err(|source| {
        SigningError::WriteKey {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_written_0600_read_back_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let key = generate();
        write_key(&path, &key).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_key(&path, &generate()).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        let loaded = SigningKey::load(&path).unwrap();
        assert_eq!(loaded.signer(), &key.signer);
        assert!(
            key.key_file
                .contains(&format!("# public key: {}", key.signer))
        );
        assert!(key.key_file.contains("\nSLUICE-SIGNING-KEY-1"));
    }

    #[test]
    fn public_keys_round_trip_and_are_checked() {
        let signer = generate().signer;
        let text = signer.to_string();
        assert!(text.starts_with("sluicesign1"), "{text}");
        assert_eq!(text.parse::<SignerKey>().unwrap(), signer);
        assert_eq!(
            format!(" {} ", text.to_uppercase())
                .parse::<SignerKey>()
                .unwrap(),
            signer
        );
        let mut typo = text.clone().into_bytes();
        let last = typo.len() - 1;
        typo[last] = if typo[last] == b'q' { b'p' } else { b'q' };
        assert!(
            String::from_utf8(typo)
                .unwrap()
                .parse::<SignerKey>()
                .is_err()
        );
        assert!("age1xyz".parse::<SignerKey>().is_err());
    }

    #[test]
    fn a_secret_key_given_as_signer_is_refused_without_echoing_it() {
        let key = generate();
        let secret = key.key_file.lines().last().unwrap().to_owned();
        let err = secret.parse::<SignerKey>().unwrap_err().to_string();
        assert!(err.contains("secret signing key"), "{err}");
        assert!(!err.contains(&secret[20..]), "{err}");
    }

    #[test]
    fn a_key_file_with_other_content_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        fs::write(&path, "# comment\npassword=hunter2\n").unwrap();
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("neither a comment"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // An age identity is not a signing key.
        fs::write(&path, crate::keys::generate().identity_file).unwrap();
        assert!(SigningKey::load(&path).is_err());
    }
}
