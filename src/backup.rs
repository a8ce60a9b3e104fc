//! A backup run: every source of a set streamed into its object, then the
//! manifest, written last, commits the backup.

use std::io::Write;

use jiff::Timestamp;

use crate::{
    Cancel, Error,
    catalog::{self, BackupId, BackupKind, Manifest, ObjectRecord},
    config::{ConfigError, SetPlan},
    keys::Recipients,
    pipeline::{self, PipelineError, UploadSettings},
    store,
};

/// How a backup is labelled.
#[derive(Clone, Debug)]
pub struct Options {
    /// Kept in the manifest and shown by `list`.
    pub note: Option<String>,
    /// Manual or scheduled.
    pub kind: BackupKind,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            note: None,
            kind: BackupKind::Manual,
        }
    }
}

/// Backs up every source of `set`, one after another, and commits the
/// manifest only if all of them were stored. A failure leaves no manifest,
/// so the backup does not exist for `list`, `restore` or retention.
pub async fn run(set: &SetPlan, options: &Options, cancel: &Cancel) -> Result<Manifest, Error> {
    let sources = set.require_sources(&[])?;
    let store = store::open(&set.store).await?;
    let recipients = Recipients::parse(&set.keys.recipients, &set.name)?;
    if set.store.part_size.0 < 1024 * 1024 || set.store.part_size.0 > 5 * 1024 * 1024 * 1024 {
        return Err(ConfigError::Invalid(format!(
            "part-size {} is out of range: use 1MiB to 5GiB",
            set.store.part_size
        ))
        .into());
    }
    let settings = UploadSettings {
        compression: set.compression,
        part_size: set.store.part_size.0,
        parallel_parts: set.store.parallel_parts,
    };
    let started_at = Timestamp::now();
    let id = BackupId::generate(started_at);
    let mut objects = Vec::with_capacity(sources.len());
    for source in sources {
        let name = source.object_name();
        let key = catalog::object_key(&set.name, &id, &name);
        let encryptor = recipients.encryptor()?;
        let started = std::time::Instant::now();
        let produce = {
            let (source, cancel) = (source.clone(), cancel.clone());
            move |out: &mut dyn Write| source.dump(out, &cancel)
        };
        let stored = pipeline::upload(store.as_ref(), &key, encryptor, &settings, cancel, produce)
            .await
            .map_err(|e| match e {
                PipelineError::Interrupted => Error::Interrupted,
                e => e.into(),
            })?;
        tracing::info!(
            source = source.name(),
            "stored {name}: {} read, {} stored, in {:.1?}",
            crate::config::human_bytes(stored.plaintext_size),
            crate::config::human_bytes(stored.stored_size),
            started.elapsed()
        );
        objects.push(ObjectRecord {
            source: source.name().to_owned(),
            source_kind: source.kind().to_owned(),
            format: source.format().to_owned(),
            name,
            compression_level: set.compression.level,
            anonymized: false,
            recipients: recipients.fingerprints().to_vec(),
            plaintext_size: stored.plaintext_size,
            stored_size: stored.stored_size,
            part_size: settings.part_size,
            sha256: stored.sha256,
            parts: stored.parts,
        });
    }
    let manifest = Manifest {
        format_version: catalog::FORMAT_VERSION,
        set: set.name.clone(),
        id,
        kind: options.kind,
        target: None,
        note: options.note.clone(),
        started_at,
        finished_at: Timestamp::now(),
        sluice_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        objects,
    };
    if cancel.is_fired() {
        return Err(Error::Interrupted);
    }
    catalog::commit(store.as_ref(), &manifest).await?;
    Ok(manifest)
}
