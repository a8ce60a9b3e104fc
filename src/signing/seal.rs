//! A manifest's signature, kept inside the manifest so that the manifest
//! stays the one object whose creation commits a backup:
//!
//! ```json
//! "signature": { "signer": "sluicesign1…", "ed25519": "<base64 of 64 bytes>" }
//! ```
//!
//! It signs the manifest's canonical bytes: a context line, then the
//! manifest's JSON without the `signature` field, written compactly with
//! its keys in stored order. The reader parses the stored bytes once,
//! checks the signature against that parsed value, and builds the manifest
//! from the same value, so what was checked is what is used.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{SignerKey, SigningKey};

/// The manifest field that holds the signature.
const FIELD: &str = "signature";

/// What every signature signs first, so a signing key's signature over a
/// manifest can never be taken for one over anything else.
const CONTEXT: &[u8] = b"sluice manifest signature v1\n";

/// A signature as stored in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's public key (`sluicesign1…`).
    pub signer: String,
    /// The ed25519 signature, base64.
    pub ed25519: String,
}

/// What a manifest's signature says, checked when the manifest was read.
/// Whether the signer is trusted is for the reader to decide (see
/// [`super::Policy`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Seal {
    /// No signature.
    #[default]
    Unsigned,
    /// A signature that matches the manifest's content.
    Signed {
        /// Who signed it.
        signer: SignerKey,
        /// The signature as stored.
        signature: Signature,
    },
    /// A signature that does not match the content, or cannot be read.
    Broken {
        /// The field as stored.
        stored: Value,
        /// What is wrong.
        reason: String,
    },
}

impl Seal {
    /// Signs `manifest` (a manifest's JSON, without a signature) and adds
    /// the signature to it.
    pub(crate) fn sign(manifest: &mut Map<String, Value>, key: &SigningKey) -> Seal {
        debug_assert!(!manifest.contains_key(FIELD));
        let signature = Signature {
            signer: key.signer().to_string(),
            ed25519: BASE64.encode(key.sign(&canonical(manifest))),
        };
        manifest.insert(
            FIELD.to_owned(),
            serde_json::to_value(&signature).expect("a signature serializes"),
        );
        Seal::Signed {
            signer: *key.signer(),
            signature,
        }
    }

    /// Takes the signature out of `manifest` (a manifest's JSON as stored)
    /// and checks it against what remains.
    pub(crate) fn open(manifest: &mut Map<String, Value>) -> Seal {
        let Some(stored) = manifest.shift_remove(FIELD) else {
            return Seal::Unsigned;
        };
        let broken = |stored, reason: &str| Seal::Broken {
            stored,
            reason: reason.to_owned(),
        };
        let Ok(signature) = Signature::deserialize(&stored) else {
            return broken(stored, "its `signature` field is malformed");
        };
        let Ok(signer) = signature.signer.parse::<SignerKey>() else {
            return broken(stored, "its signer is not a sluicesign1… key");
        };
        let Ok(bytes) = BASE64.decode(&signature.ed25519) else {
            return broken(stored, "its signature is not base64");
        };
        let key =
            aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &signer.0);
        if key.verify(&canonical(manifest), &bytes).is_err() {
            return broken(
                stored,
                &format!("the signature by {signer} does not match its content"),
            );
        }
        Seal::Signed { signer, signature }
    }

    /// The `signature` field as stored, if there is one.
    pub fn stored(&self) -> Option<Value> {
        match self {
            Seal::Unsigned => None,
            Seal::Signed { signature, .. } => {
                Some(serde_json::to_value(signature).expect("a signature serializes"))
            }
            Seal::Broken { stored, .. } => Some(stored.clone()),
        }
    }
}

/// The bytes a signature signs.
fn canonical(manifest: &Map<String, Value>) -> Vec<u8> {
    let mut bytes = CONTEXT.to_vec();
    serde_json::to_writer(&mut bytes, manifest).expect("JSON values serialize");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::generate;

    fn key() -> SigningKey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        crate::signing::write_key(&path, &generate()).unwrap();
        SigningKey::load(&path).unwrap()
    }

    fn manifest() -> Map<String, Value> {
        serde_json::from_str(r#"{"set":"prod","id":"x","objects":[{"sha256":"aa","parts":["aa"]}],"note":"é\u00e9"}"#)
            .unwrap()
    }

    /// Signs, stores as pretty JSON (as `commit` does), and reads back.
    fn stored_and_read(edit: impl FnOnce(&mut String)) -> Seal {
        let mut m = manifest();
        Seal::sign(&mut m, &key());
        let mut text = serde_json::to_string_pretty(&m).unwrap();
        edit(&mut text);
        let mut read: Map<String, Value> = serde_json::from_str(&text).unwrap();
        Seal::open(&mut read)
    }

    #[test]
    fn a_signed_manifest_reads_back_as_signed_by_its_key() {
        let key = key();
        let mut m = manifest();
        let sealed = Seal::sign(&mut m, &key);
        let text = serde_json::to_vec_pretty(&m).unwrap();
        let mut read: Map<String, Value> = serde_json::from_slice(&text).unwrap();
        assert_eq!(Seal::open(&mut read), sealed);
        assert_eq!(read, manifest(), "the signature field is taken out");
        assert!(matches!(sealed, Seal::Signed { signer, .. } if signer == *key.signer()));
    }

    #[test]
    fn any_change_to_the_content_breaks_the_seal() {
        for edit in [
            |t: &mut String| *t = t.replace("\"aa\"", "\"ab\""),
            |t: &mut String| *t = t.replace("prod", "prof"),
            |t: &mut String| *t = t.replacen("{", "{\"extra\": 1,", 1),
            |t: &mut String| *t = t.replace("\"note\"", "\"Note\""),
        ] {
            assert!(
                matches!(stored_and_read(edit), Seal::Broken { ref reason, .. } if reason.contains("does not match")),
            );
        }
    }

    #[test]
    fn whitespace_and_escapes_do_not_break_the_seal() {
        let seal = stored_and_read(|t| *t = t.replace("\n", "\r\n  ").replace("é", "\\u00e9"));
        assert!(matches!(seal, Seal::Signed { .. }), "{seal:?}");
    }

    #[test]
    fn a_malformed_signature_is_broken_not_unsigned() {
        let seal = stored_and_read(|t| *t = t.replace("\"ed25519\": \"", "\"ed25519\": \"!"));
        assert!(matches!(seal, Seal::Broken { ref reason, .. } if reason.contains("base64")));
        let seal =
            stored_and_read(|t| *t = t.replace("\"signer\": \"sluicesign1", "\"signer\": \"x"));
        assert!(matches!(seal, Seal::Broken { ref reason, .. } if reason.contains("signer")));
        let mut m = manifest();
        m.insert(FIELD.into(), Value::from("yes"));
        assert!(matches!(Seal::open(&mut m), Seal::Broken { .. }));
    }

    #[test]
    fn a_signature_by_another_key_claiming_the_signer_is_broken() {
        let (real, other) = (key(), key());
        let mut m = manifest();
        Seal::sign(&mut m, &other);
        m[FIELD]["signer"] = Value::from(real.signer().to_string());
        assert!(matches!(Seal::open(&mut m), Seal::Broken { .. }));
    }
}
