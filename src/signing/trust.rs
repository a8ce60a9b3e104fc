//! Which signatures a reader accepts: the set's trusted signers (several
//! at once during a key rotation), and the check `restore`, `fetch` and
//! `verify` make right after reading a manifest, before anything else.

use std::fmt;

use super::{Seal, SignerKey, SigningError};
use crate::catalog::Manifest;

/// The public keys whose signatures a set accepts (`trusted-signers`,
/// `--trusted-signer`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedSigners(Vec<SignerKey>);

impl TrustedSigners {
    /// Parses `sluicesign1…` strings.
    pub fn parse(list: &[String]) -> Result<Self, SigningError> {
        list.iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `signer` is listed.
    pub fn contains(&self, signer: &SignerKey) -> bool {
        self.0.contains(signer)
    }

    /// What a reader with this list makes of a manifest's seal.
    pub fn judge(&self, seal: &Seal) -> Trust {
        match seal {
            Seal::Unsigned => Trust::Unsigned,
            Seal::Signed { signer, .. } if self.contains(signer) => Trust::Trusted,
            Seal::Signed { .. } => Trust::Untrusted,
            Seal::Broken { .. } => Trust::Altered,
        }
    }
}

/// What a reader makes of a manifest's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Signed by a trusted signer.
    Trusted,
    /// Signed, by a key the set does not trust.
    Untrusted,
    /// Not signed.
    Unsigned,
    /// Changed after it was signed, or its signature is malformed.
    Altered,
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trust::Trusted => "trusted",
            Trust::Untrusted => "untrusted",
            Trust::Unsigned => "unsigned",
            Trust::Altered => "ALTERED",
        })
    }
}

/// How `restore`, `fetch` and `verify` treat a backup's signature.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The set's trusted signers.
    pub trusted: TrustedSigners,
    /// `--allow-unsigned`: use an unsigned backup, or one a key outside
    /// `trusted` signed, with a warning.
    pub allow_unsigned: bool,
}

impl Policy {
    /// Accepts a manifest a trusted signer signed. An unsigned one, or one
    /// signed by another key, is refused unless `allow_unsigned` (then it
    /// is used with a warning); one changed after it was signed is always
    /// refused. Called right after the manifest is read, before any object
    /// of it is.
    pub fn check(&self, manifest: &Manifest) -> Result<(), SigningError> {
        let backup = format!("{}@{}", manifest.set, manifest.id);
        let refusal = match &manifest.seal {
            Seal::Signed { signer, .. } if self.trusted.contains(signer) => {
                tracing::info!("backup {backup} is signed by trusted signer {signer}");
                return Ok(());
            }
            Seal::Broken { reason, .. } => {
                return Err(SigningError::Altered {
                    backup,
                    set: manifest.set.clone(),
                    reason: reason.clone(),
                });
            }
            Seal::Unsigned => SigningError::Unsigned { backup },
            Seal::Signed { signer, .. } => SigningError::Untrusted {
                backup,
                set: manifest.set.clone(),
                signer: signer.to_string(),
                why: if self.trusted.is_empty() {
                    format!(
                        "and set `{}` has no trusted-signers (under [keys], or --trusted-signer / SLUICE_TRUSTED_SIGNERS)",
                        manifest.set
                    )
                } else {
                    format!(
                        "which is not among set `{}`'s trusted-signers",
                        manifest.set
                    )
                },
            },
        };
        if !self.allow_unsigned {
            return Err(refusal);
        }
        let what = match &manifest.seal {
            Seal::Signed { signer, .. } => format!(
                "signed by {signer}, which set `{}` does not trust",
                manifest.set
            ),
            _ => "unsigned, so nothing shows who wrote it".to_owned(),
        };
        tracing::warn!(
            "using backup {}@{} although it is {what}: --allow-unsigned was given",
            manifest.set,
            manifest.id
        );
        Ok(())
    }
}
