//! `sluice verify`: reads every object of a backup back through every check
//! a restore makes, and writes nothing anywhere.
//!
//! With an identity that opens an object, that is the whole restore stream
//! into a sink: each part's SHA-256, the object's, age's authentication of
//! every chunk, zstd's content checksum and the plaintext size. Without one,
//! what can be checked still is: the stored size, each part's and the
//! object's SHA-256, and that the object starts with a well-formed age
//! header.

pub mod drill;

use std::{io, sync::Arc};

use tokio::task::spawn_blocking;

use crate::{
    Cancel, Error,
    catalog::{Manifest, ObjectRecord},
    keys::Identities,
    pipeline::{PipelineError, is_secondary, start_download},
    progress::Meter,
    restore::{self, RestoreError},
    store::Store,
};

/// How far an object was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Decrypted and decompressed: every check a restore makes passed.
    Fully,
    /// Only the stored bytes (sizes, SHA-256s, the age header): none of the
    /// identities given opens the object, or none was given.
    Ciphertext,
}

/// Checks one object of `manifest` as deeply as `identities` allow.
pub async fn object(
    store: Arc<dyn Store>,
    manifest: &Manifest,
    record: &ObjectRecord,
    identities: Option<Arc<Identities>>,
    parallel_parts: usize,
    cancel: &Cancel,
) -> Result<Checked, Error> {
    if let Some(identities) = identities {
        let settings = restore::Settings {
            parallel_parts,
            postgres: restore::postgres::Options::default(),
            meter: Meter::default(),
            verified: Default::default(),
        };
        let store = Arc::clone(&store);
        match restore::verify(store, manifest, record, identities, &settings, cancel).await {
            Ok(()) => return Ok(Checked::Fully),
            // Encrypted to other keys (an anonymized copy, say): check
            // what can be checked without opening it.
            Err(Error::Restore(RestoreError::Pipeline(PipelineError::WrongIdentity {
                ..
            }))) => {}
            Err(e) => return Err(e),
        }
    }
    ciphertext(store, manifest, record, parallel_parts, cancel).await?;
    Ok(Checked::Ciphertext)
}

/// Downloads the object with every part checked, and parses its age header.
async fn ciphertext(
    store: Arc<dyn Store>,
    manifest: &Manifest,
    record: &ObjectRecord,
    parallel_parts: usize,
    cancel: &Cancel,
) -> Result<(), Error> {
    let key = manifest.object_key(record);
    let (mut reader, download) = start_download(
        store,
        key,
        record.clone(),
        parallel_parts,
        &Meter::default(),
    );
    let object = record.name.clone();
    let read = spawn_blocking(move || -> Result<(), PipelineError> {
        match age::Decryptor::new(&mut reader) {
            Ok(_) => {}
            // The download stopped; its own error says why.
            Err(age::DecryptError::Io(e)) if is_secondary(&e) => return Ok(()),
            Err(e) => {
                return Err(PipelineError::Decode {
                    object,
                    reason: format!("not an age file ({e})"),
                });
            }
        }
        // The rest passes unread but not unchecked: the download compares
        // each part with its SHA-256, and its result is the verdict (a
        // reader only ever fails because the download did).
        let _ = io::copy(&mut reader, &mut io::sink());
        Ok(())
    });
    let (downloaded, read) = tokio::select! {
        joined = async { tokio::join!(download, read) } => joined,
        () = cancel.fired() => return Err(Error::Interrupted),
    };
    downloaded.expect("download task panicked")?;
    read.expect("verify reader panicked")?;
    Ok(())
}
