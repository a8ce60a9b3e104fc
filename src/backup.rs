//! A backup run: every source of a set streamed into its object (and its
//! anonymized copy, when configured), then the manifest, written last,
//! commits the backup.

mod anonymized;

use std::{io::Write, sync::Arc};

use jiff::Timestamp;

use anonymized::AnonymizedCopy;

use crate::{
    Cancel, Error,
    catalog::{self, BackupId, BackupKind, Manifest, ObjectRecord},
    config::{Compression, ConfigError, SetPlan},
    keys::Recipients,
    lease::Lease,
    pipeline::{self, PipelineError, Tee, UploadSettings, Uploaded, side_branch},
    progress::Meter,
    signing::{SigningError, SigningKey, TrustedSigners},
    source::{PostgresSource, Source},
    store,
};

/// How a backup is labelled, and the lease it runs under.
#[derive(Clone, Debug)]
pub struct Options {
    /// The set's lease, checked right before the manifest is written, so a
    /// run whose lease was taken over commits nothing.
    pub lease: Option<Arc<Lease>>,
    /// Kept in the manifest and shown by `list`.
    pub note: Option<String>,
    /// Manual, scheduled or pre-restore.
    pub kind: BackupKind,
    /// For a pre-restore safety backup: the target it protects.
    pub target: Option<String>,
    /// Where the uploads count their bytes, for a progress display.
    pub meter: Meter,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lease: None,
            note: None,
            kind: BackupKind::Manual,
            target: None,
            meter: Meter::default(),
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
        compression: Compression::default(),
        part_size: set.store.part_size.0,
        parallel_parts: set.store.parallel_parts,
        stall_timeout: set.store.stall_timeout,
        meter: options.meter.clone(),
    };
    let signing_key = signing_key(set, options.kind)?;
    let started_at = Timestamp::now();
    let newest = catalog::backup_ids(store.as_ref(), &set.name).await?;
    let id = BackupId::next(started_at, newest.last());
    let anonymized_recipients = if sources.iter().any(|s| s.anonymize_rules().is_some()) {
        if set.keys.anonymized_recipients.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "set `{}` writes anonymized copies but has no `anonymized-recipients` under [keys]: add the developers' public keys (they never open full copies)",
                set.name
            ))
            .into());
        }
        Some(Recipients::parse(
            &set.keys.anonymized_recipients,
            &set.name,
        )?)
    } else {
        None
    };
    if options.kind != BackupKind::PreRestore && !newest.is_empty() {
        warn_if_recipients_changed(
            store.as_ref(),
            &set.name,
            &recipients,
            anonymized_recipients.as_ref(),
        )
        .await;
    }
    let mut objects = Vec::with_capacity(sources.len());
    let mut anonymized_failures = Vec::new();
    for source in sources {
        if let Source::Postgres(pg) = source
            && pg.globals
        {
            objects.push(
                store_globals(
                    store.as_ref(),
                    set,
                    &id,
                    pg,
                    &recipients,
                    &UploadSettings {
                        compression: set.compression_for(source),
                        ..settings.clone()
                    },
                    cancel,
                )
                .await?,
            );
        }
        let name = source.object_name();
        let key = catalog::object_key(&set.name, &id, &name);
        let started = std::time::Instant::now();
        let settings = UploadSettings {
            compression: set.compression_for(source),
            ..settings.sized_for(size_hint(source).await)
        };
        let mut not_made = None;
        let copy = match (&anonymized_recipients, AnonymizedCopy::prepare(source)) {
            (Some(r), Ok(Some(copy))) => Some((r, copy)),
            (_, Ok(None)) | (None, _) => None,
            (Some(_), Err(reason)) => {
                anonymized_failures.push(format!(
                    "the anonymized copy of `{}` was not made: {reason}",
                    source.name()
                ));
                not_made = Some("the anonymized copy was not made (rules file or salt); the backup's log has the cause".to_owned());
                None
            }
        };
        let (stored, anonymized) = match copy {
            None => {
                let produce = {
                    let (source, cancel) = (source.clone(), cancel.clone());
                    move |out: &mut dyn Write| source.dump(out, &cancel)
                };
                let stored = pipeline::upload(
                    store.as_ref(),
                    &key,
                    recipients.encryptor()?,
                    &settings,
                    cancel,
                    produce,
                )
                .await;
                (stored, None)
            }
            Some((anon_recipients, copy)) => {
                let (side, side_input) = side_branch();
                let produce = {
                    let (source, cancel) = (source.clone(), cancel.clone());
                    move |out: &mut dyn Write| {
                        let mut tee = Tee::new(out, side);
                        let result = source.dump(&mut tee, &cancel);
                        tee.finish(result.is_ok());
                        result
                    }
                };
                let produce_anonymized = {
                    let cancel = cancel.clone();
                    move |out: &mut dyn Write| copy.produce(side_input, out, &cancel)
                };
                let anon_name = anonymized::object_name(source);
                let anon_key = catalog::object_key(&set.name, &id, &anon_name);
                let (stored, anonymized) = tokio::join!(
                    pipeline::upload(
                        store.as_ref(),
                        &key,
                        recipients.encryptor()?,
                        &settings,
                        cancel,
                        produce
                    ),
                    pipeline::upload(
                        store.as_ref(),
                        &anon_key,
                        anon_recipients.encryptor()?,
                        &settings,
                        cancel,
                        produce_anonymized
                    ),
                );
                (stored, Some((anon_name, anon_recipients, anonymized)))
            }
        };
        let stored = stored.map_err(|e| match e {
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
        let record = |name: String, stored: Uploaded, fingerprints: &[String], anonymized: bool| {
            ObjectRecord {
                source: source.name().to_owned(),
                source_kind: source.kind().to_owned(),
                format: if anonymized {
                    "anon.sql".to_owned()
                } else {
                    source.format().to_owned()
                },
                name,
                compression_level: settings.compression.level,
                anonymized,
                anonymized_copy_failed: None,
                recipients: fingerprints.to_vec(),
                plaintext_size: stored.plaintext_size,
                stored_size: stored.stored_size,
                part_size: stored.part_size,
                sha256: stored.sha256,
                parts: stored.parts,
            }
        };
        let mut full = record(name, stored, recipients.fingerprints(), false);
        full.anonymized_copy_failed = not_made;
        match anonymized {
            Some((anon_name, anon_recipients, Ok(stored))) => {
                objects.push(full);
                objects.push(record(
                    anon_name,
                    stored,
                    anon_recipients.fingerprints(),
                    true,
                ));
            }
            Some((_, _, Err(e))) => {
                full.anonymized_copy_failed = Some(anonymized::manifest_reason(&e));
                anonymized_failures.push(format!(
                    "the anonymized copy of `{}` failed: {e}",
                    source.name()
                ));
                objects.push(full);
            }
            None => objects.push(full),
        }
    }
    let manifest = Manifest {
        format_version: catalog::FORMAT_VERSION,
        set: set.name.clone(),
        id,
        kind: options.kind,
        target: options.target.clone(),
        note: options.note.clone(),
        started_at,
        finished_at: Timestamp::now(),
        sluice_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        objects,
        seal: Default::default(),
    };
    if cancel.is_fired() {
        return Err(Error::Interrupted);
    }
    if let Some(lease) = &options.lease {
        lease.check().await?;
    }
    let manifest = catalog::commit(store.as_ref(), manifest, signing_key.as_ref()).await?;
    if !anonymized_failures.is_empty() {
        return Err(Error::AnonymizedCopies {
            backup: format!("{}@{}", manifest.set, manifest.id),
            failures: anonymized_failures.join("\n"),
        });
    }
    Ok(manifest)
}

/// The key this backup signs its manifest with. A set that lists
/// `trusted-signers` must sign with one of them, or the backup is refused
/// before anything runs: its restores would refuse it. Without any, a
/// backup without a key is made unsigned, with a warning. A safety backup
/// taken by a restore is signed when the host has a key and is never
/// refused for want of one.
fn signing_key(set: &SetPlan, kind: BackupKind) -> Result<Option<SigningKey>, Error> {
    let trusted = TrustedSigners::parse(&set.keys.trusted_signers)?;
    let safety = kind == BackupKind::PreRestore;
    let Some(path) = &set.keys.signing_key else {
        if safety {
            tracing::warn!(
                "this host has no signing key, so the safety backup is unsigned: restoring it will need --allow-unsigned"
            );
        } else if trusted.is_empty() {
            tracing::warn!(
                "set `{}` has no signing key, so this backup is UNSIGNED and restoring it will need --allow-unsigned: make a key with `sluice keygen --signing -o /etc/sluice/signing.key`, give it with `signing-key` under [keys] (or SLUICE_SIGNING_KEY_FILE), and list its public key in the restore hosts' trusted-signers",
                set.name
            );
        } else {
            return Err(SigningError::NoSigningKey {
                set: set.name.clone(),
            }
            .into());
        }
        return Ok(None);
    };
    let key = SigningKey::load(path)?;
    if !trusted.is_empty() && !trusted.contains(key.signer()) {
        let refusal = SigningError::KeyNotTrusted {
            set: set.name.clone(),
            path: path.clone(),
            signer: key.signer().to_string(),
        };
        if !safety {
            return Err(refusal.into());
        }
        tracing::warn!("the safety backup is signed, but: {refusal}");
    }
    Ok(Some(key))
}

/// Warns when the recipients differ from those of the set's previous
/// backup (pre-restore safety copies aside): whoever holds an added key can
/// open this backup and every later one.
async fn warn_if_recipients_changed(
    store: &dyn store::Store,
    set: &str,
    full: &Recipients,
    anonymized: Option<&Recipients>,
) {
    use std::collections::BTreeSet;
    let previous = match catalog::latest_where(store, set, |_| true).await {
        Ok(previous) => previous,
        Err(e) => {
            tracing::debug!("no previous backup to compare recipients with: {e}");
            return;
        }
    };
    let before = |anonymized: bool| -> BTreeSet<&str> {
        previous
            .objects
            .iter()
            .filter(|o| o.anonymized == anonymized)
            .flat_map(|o| o.recipients.iter().map(String::as_str))
            .collect()
    };
    let copies = [
        ("full copies", false, Some(full)),
        ("anonymized copies", true, anonymized),
    ];
    for (what, anonymized, now) in copies {
        let (before, Some(now)) = (before(anonymized), now) else {
            continue;
        };
        let now: BTreeSet<&str> = now.fingerprints().iter().map(String::as_str).collect();
        if before.is_empty() || before == now {
            continue;
        }
        let list = |keys: Vec<&&str>| {
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.iter().map(|k| **k).collect::<Vec<_>>().join(", ")
            }
        };
        tracing::warn!(
            "the recipients of set `{set}`'s {what} changed since its previous backup {set}@{}: added {}; removed {}. Whoever holds an added key can open this backup and every later one: if nobody meant to change them, check the config (`sluice show` lists each backup's recipients)",
            previous.id,
            list(now.difference(&before).collect()),
            list(before.difference(&now).collect()),
        );
    }
}

/// Stores a PostgreSQL source's roles and tablespaces
/// (`<name>.globals.sql.zst.age`, format `globals.sql`).
async fn store_globals(
    store: &dyn store::Store,
    set: &SetPlan,
    id: &BackupId,
    source: &PostgresSource,
    recipients: &Recipients,
    settings: &UploadSettings,
    cancel: &Cancel,
) -> Result<ObjectRecord, Error> {
    let name = format!("{}.globals.sql.zst.age", source.name);
    let key = catalog::object_key(&set.name, id, &name);
    let produce = {
        let (source, cancel) = (source.clone(), cancel.clone());
        move |out: &mut dyn Write| source.dump_globals(out, &cancel)
    };
    let stored = pipeline::upload(
        store,
        &key,
        recipients.encryptor()?,
        settings,
        cancel,
        produce,
    )
    .await
    .map_err(|e| match e {
        PipelineError::Interrupted => Error::Interrupted,
        e => e.into(),
    })?;
    Ok(ObjectRecord {
        source: source.name.clone(),
        source_kind: "postgres".to_owned(),
        format: "globals.sql".to_owned(),
        name,
        compression_level: settings.compression.level,
        anonymized: false,
        anonymized_copy_failed: None,
        recipients: recipients.fingerprints().to_vec(),
        plaintext_size: stored.plaintext_size,
        stored_size: stored.stored_size,
        part_size: stored.part_size,
        sha256: stored.sha256,
        parts: stored.parts,
    })
}

/// The source's estimate of its dump's size, asked before the dump starts;
/// none when it cannot tell.
async fn size_hint(source: &Source) -> Option<u64> {
    let asked = source.clone();
    let hint = tokio::task::spawn_blocking(move || asked.size_hint())
        .await
        .expect("size hint panicked");
    if let Some(bytes) = hint {
        tracing::debug!(
            source = source.name(),
            "size hint: {}",
            crate::config::human_bytes(bytes)
        );
    }
    hint
}
