//! What is stored and where: backup ids, object keys, the manifest (the
//! commit point of a backup), and listing and selecting backups.
//!
//! ```text
//! <set>/<backup-id>/manifest.json            written last, create-if-absent
//! <set>/<backup-id>/<source>.<ext>.zst.age   one per source
//! ```
//!
//! A backup without a manifest does not exist for any command.

use std::{collections::BTreeSet, fmt, str::FromStr, sync::Arc};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{
    signing::{Seal, SigningKey},
    store::{CreateOutcome, Store, StoreError},
};

/// The manifest format this version writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// File name of the manifest inside a backup's directory.
pub const MANIFEST_NAME: &str = "manifest.json";

/// How many manifests are read at once when listing.
const LIST_CONCURRENCY: usize = 16;

/// A backup could not be found, read or committed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A set name that cannot be used.
    #[error(
        "invalid set name `{0}`: use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 64 characters)"
    )]
    InvalidSetName(String),
    /// A `SET@ID` argument that cannot be parsed.
    #[error(
        "invalid backup `{0}`: expected SET, SET@latest or SET@ID (an ID like 20261122T010000Z-3fa9, or a unique prefix of one)"
    )]
    InvalidSelector(String),
    /// The set has no committed backup.
    #[error(
        "set `{set}` has no backups in the store. Check the set name and the store URL (`sluice list` shows every set)"
    )]
    NoBackups {
        /// The set.
        set: String,
    },
    /// No backup matches the id.
    #[error("set `{set}` has no backup `{id}`. `sluice list {set}` shows its backups")]
    NoSuchBackup {
        /// The set.
        set: String,
        /// The id or prefix asked for.
        id: String,
    },
    /// An id prefix matches several backups.
    #[error("`{id}` matches {count} backups of set `{set}`; give more of the ID")]
    Ambiguous {
        /// The set.
        set: String,
        /// The prefix.
        id: String,
        /// How many matched.
        count: usize,
    },
    /// A manifest exists but cannot be used.
    #[error("manifest `{key}` is invalid: {reason}")]
    BadManifest {
        /// The manifest's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest already exists for this id (two runs picked the same id).
    #[error(
        "backup `{set}@{id}` already has a manifest; nothing was overwritten. Run the backup again"
    )]
    Duplicate {
        /// The set.
        set: String,
        /// The id.
        id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CatalogError {
    /// Whether the user gave a malformed name or selector (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            CatalogError::InvalidSetName(_) | CatalogError::InvalidSelector(_)
        )
    }
}

/// Checks a set name: it becomes a key component, so it must be plain.
pub fn validate_set_name(name: &str) -> Result<(), CatalogError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::InvalidSetName(name.to_owned()))
    }
}

/// A backup's id: `YYYYMMDDTHHMMSSZ-<4 random hex>`, sorting by time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A new id for a backup started at `at`.
    pub fn generate(at: Timestamp) -> Self {
        let mut random = [0u8; 2];
        getrandom::fill(&mut random).expect("the OS random source works");
        Self(format!(
            "{}-{:02x}{:02x}",
            at.strftime("%Y%m%dT%H%M%SZ"),
            random[0],
            random[1]
        ))
    }

    /// A new id for a backup started at `at` that sorts after `newest`, the
    /// set's newest id: in the same second, its suffix is greater (so
    /// `@latest` and `list` keep the order in which backups were made).
    pub fn next(at: Timestamp, newest: Option<&BackupId>) -> Self {
        let fresh = Self::generate(at);
        let Some(newest) = newest.filter(|n| n.0[..16] == fresh.0[..16]) else {
            return fresh;
        };
        let last = u16::from_str_radix(&newest.0[17..], 16).unwrap_or(0);
        let step = u16::from_str_radix(&fresh.0[17..], 16).unwrap_or(0) % 16 + 1;
        Self(format!(
            "{}-{:04x}",
            &fresh.0[..16],
            last.saturating_add(step)
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the backup started, to the second, as its id says.
    pub fn started_at(&self) -> Option<Timestamp> {
        jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", &self.0[..16])
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    }

    fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 21
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl FromStr for BackupId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("`{s}` is not a backup id (YYYYMMDDTHHMMSSZ-xxxx)"))
        }
    }
}

impl TryFrom<String> for BackupId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which backup of a set a command means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// The newest complete backup that is not a pre-restore safety copy.
    Latest,
    /// A backup id, or a unique prefix of one.
    Id(String),
}

/// `SET`, `SET@latest` or `SET@ID` as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The set.
    pub set: String,
    /// Which of its backups.
    pub which: Which,
}

impl FromStr for Selector {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (set, which) = match s.split_once('@') {
            None => (s, Which::Latest),
            Some((set, "latest")) => (set, Which::Latest),
            Some((set, id))
                if !id.is_empty()
                    && id.len() <= 21
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                (set, Which::Id(id.to_owned()))
            }
            Some(_) => return Err(CatalogError::InvalidSelector(s.to_owned())),
        };
        validate_set_name(set)?;
        Ok(Self {
            set: set.to_owned(),
            which,
        })
    }
}

/// Why a backup was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// Run by hand or by a script.
    Manual,
    /// Run by a schedule.
    Scheduled,
    /// A safety copy taken before a restore overwrote its target.
    PreRestore,
}

impl fmt::Display for BackupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackupKind::Manual => "manual",
            BackupKind::Scheduled => "scheduled",
            BackupKind::PreRestore => "pre-restore",
        })
    }
}

/// What one stored object holds and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRecord {
    /// The source's name in the set.
    pub source: String,
    /// The source's kind (`files`, `command`, …).
    pub source_kind: String,
    /// What the plaintext is (`tar`, `out`, …): the `<ext>` of the name.
    pub format: String,
    /// File name inside the backup's directory: `<source>.<ext>.zst.age`.
    pub name: String,
    /// zstd level the plaintext was compressed with.
    pub compression_level: i32,
    /// Whether this is the anonymized, dev-safe copy.
    pub anonymized: bool,
    /// Set on a full copy whose anonymized copy failed: why (column names
    /// and kinds of problem only, never data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymized_copy_failed: Option<String>,
    /// Fingerprints of the recipients that can open it.
    pub recipients: Vec<String>,
    /// Bytes the source wrote.
    pub plaintext_size: u64,
    /// Bytes stored.
    pub stored_size: u64,
    /// Size of every stored part but the last.
    pub part_size: u64,
    /// SHA-256 of the whole stored object, lowercase hex.
    pub sha256: String,
    /// SHA-256 of each stored part, in order.
    pub parts: Vec<String>,
}

impl ObjectRecord {
    /// The byte range of part `index` within the stored object.
    pub fn part_range(&self, index: usize) -> std::ops::Range<u64> {
        let start = index as u64 * self.part_size;
        start..(start + self.part_size).min(self.stored_size)
    }
}

/// A committed backup: written last, it is what makes the backup exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The set.
    pub set: String,
    /// The backup id.
    pub id: BackupId,
    /// Why it was taken.
    pub kind: BackupKind,
    /// For a pre-restore safety copy: the target it protects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A note given with `--note`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the backup started.
    pub started_at: Timestamp,
    /// When every object had been stored.
    pub finished_at: Timestamp,
    /// The sluice version that wrote it.
    pub sluice_version: String,
    /// The host that ran the backup.
    pub host: String,
    /// One record per stored object.
    pub objects: Vec<ObjectRecord>,
    /// Its signature, checked against its content when it was read
    /// ([`Manifest::from_json`]) and set when it was committed. Stored as
    /// the manifest's `signature` field, which is not part of what is
    /// signed; never read from JSON any other way.
    #[serde(skip)]
    pub seal: Seal,
}

impl Manifest {
    /// Key of this backup's manifest.
    pub fn key(&self) -> String {
        manifest_key(&self.set, &self.id)
    }

    /// Key of one of this backup's objects.
    pub fn object_key(&self, object: &ObjectRecord) -> String {
        object_key(&self.set, &self.id, &object.name)
    }

    /// Total bytes stored.
    pub fn stored_size(&self) -> u64 {
        self.objects.iter().map(|o| o.stored_size).sum()
    }

    /// Parses and checks a manifest read from `key`. Untrusted input: any
    /// bytes give a manifest that is internally consistent, or an error.
    /// Its signature is checked against the same parsed value the manifest
    /// is built from (see [`Seal`]); whether its signer is trusted is for
    /// the caller to decide ([`crate::signing::Policy`]).
    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self, CatalogError> {
        let bad = |reason: String| CatalogError::BadManifest {
            key: key.to_owned(),
            reason,
        };
        let not_ours = |e: &dyn fmt::Display| bad(format!("not a sluice manifest ({e})"));
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| not_ours(&e))?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(not_ours(&"not a JSON object"));
        };
        let version = fields
            .get("format_version")
            .ok_or_else(|| not_ours(&"it has no format_version"))?;
        if version.as_u64() != Some(FORMAT_VERSION.into()) {
            return Err(bad(format!(
                "it has format version {version}, and this sluice reads version {FORMAT_VERSION}; use a sluice release that reads it"
            )));
        }
        let seal = Seal::open(&mut fields);
        let mut manifest = Manifest::deserialize(serde_json::Value::Object(fields))
            .map_err(|e| bad(e.to_string()))?;
        manifest.check().map_err(bad)?;
        manifest.seal = seal;
        Ok(manifest)
    }

    /// The manifest as stored: its fields, then its signature if it has
    /// one.
    pub fn to_stored_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("manifests serialize");
        if let (serde_json::Value::Object(fields), Some(signature)) =
            (&mut value, self.seal.stored())
        {
            fields.insert("signature".to_owned(), signature);
        }
        value
    }

    fn check(&self) -> Result<(), String> {
        validate_set_name(&self.set).map_err(|e| e.to_string())?;
        let mut names = BTreeSet::new();
        for o in &self.objects {
            if !names.insert(o.name.as_str()) {
                return Err(format!("object `{}` is listed twice", o.name));
            }
            crate::store::validate_key(&o.name)
                .ok()
                .filter(|()| !o.name.contains('/'))
                .ok_or_else(|| format!("object name `{}` is not a plain file name", o.name))?;
            if o.part_size == 0 {
                return Err(format!("object `{}` has part size 0", o.name));
            }
            let expected_parts = o.stored_size.div_ceil(o.part_size).max(1);
            if o.parts.len() as u64 != expected_parts {
                return Err(format!(
                    "object `{}` lists {} parts, but {} bytes in parts of {} make {expected_parts}",
                    o.name,
                    o.parts.len(),
                    o.stored_size,
                    o.part_size
                ));
            }
            if !std::iter::once(&o.sha256)
                .chain(&o.parts)
                .all(|h| is_sha256_hex(h))
            {
                return Err(format!("object `{}` has a malformed SHA-256", o.name));
            }
        }
        Ok(())
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The key prefix everything of a set is stored under: `<set>/`.
pub fn set_prefix(set: &str) -> Result<String, CatalogError> {
    validate_set_name(set)?;
    Ok(format!("{set}/"))
}

/// Key of a backup's manifest.
pub fn manifest_key(set: &str, id: &BackupId) -> String {
    format!("{set}/{id}/{MANIFEST_NAME}")
}

/// Key of one object of a backup.
pub fn object_key(set: &str, id: &BackupId, name: &str) -> String {
    format!("{set}/{id}/{name}")
}

/// Writes the manifest, last and only if absent: the backup's commit
/// point. Signed with `key` when one is given; returns the manifest as
/// committed (with its seal).
pub async fn commit(
    store: &dyn Store,
    mut manifest: Manifest,
    key: Option<&SigningKey>,
) -> Result<Manifest, CatalogError> {
    let serde_json::Value::Object(mut fields) =
        serde_json::to_value(&manifest).expect("manifests serialize")
    else {
        unreachable!("a manifest serializes to a JSON object")
    };
    manifest.seal = match key {
        Some(key) => Seal::sign(&mut fields, key),
        None => Seal::Unsigned,
    };
    let json = serde_json::to_vec_pretty(&fields).expect("JSON values serialize");
    match store
        .create_if_absent(&manifest.key(), Bytes::from(json))
        .await?
    {
        CreateOutcome::Created => Ok(manifest),
        CreateOutcome::AlreadyExists => Err(CatalogError::Duplicate {
            set: manifest.set.clone(),
            id: manifest.id.to_string(),
        }),
    }
}

/// Ids of the committed backups of a set, oldest first.
pub async fn backup_ids(store: &dyn Store, set: &str) -> Result<Vec<BackupId>, CatalogError> {
    let prefix = set_prefix(set)?;
    let mut ids: Vec<BackupId> = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|meta| {
            let rest = meta.key.strip_prefix(&prefix)?;
            let (id, name) = rest.split_once('/')?;
            (name == MANIFEST_NAME).then(|| id.parse().ok())?
        })
        .collect();
    ids.sort();
    Ok(ids)
}

/// Names of every set with at least one object in the store, sorted.
pub async fn set_names(store: &dyn Store) -> Result<Vec<String>, CatalogError> {
    let mut sets: Vec<String> = store
        .list("")
        .await?
        .into_iter()
        .filter_map(|meta| {
            let (set, rest) = meta.key.split_once('/')?;
            let (_, name) = rest.split_once('/')?;
            (name == MANIFEST_NAME && validate_set_name(set).is_ok()).then(|| set.to_owned())
        })
        .collect();
    sets.dedup();
    Ok(sets)
}

/// Reads one backup's manifest.
pub async fn load(store: &dyn Store, set: &str, id: &BackupId) -> Result<Manifest, CatalogError> {
    let key = manifest_key(set, id);
    let bytes = store.get(&key).await.map_err(|e| match e {
        StoreError::NotFound { .. } => CatalogError::NoSuchBackup {
            set: set.to_owned(),
            id: id.to_string(),
        },
        other => other.into(),
    })?;
    let manifest = Manifest::from_json(&key, &bytes)?;
    if manifest.set != set || &manifest.id != id {
        return Err(CatalogError::BadManifest {
            key,
            reason: format!(
                "it describes `{}@{}`, not the backup it is stored as",
                manifest.set, manifest.id
            ),
        });
    }
    Ok(manifest)
}

/// A set's committed backups, as their manifests describe them.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every readable manifest, oldest first.
    pub manifests: Vec<Manifest>,
    /// Backups whose manifest exists but cannot be used, oldest first.
    pub unreadable: Vec<Unreadable>,
}

/// A backup whose manifest exists but cannot be used: no command reads it,
/// and `prune` never deletes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The backup's id.
    pub id: BackupId,
    /// The manifest's key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Every manifest of a set, oldest first, the unreadable ones apart.
pub async fn list_all(store: Arc<dyn Store>, set: &str) -> Result<Listing, CatalogError> {
    let ids = backup_ids(store.as_ref(), set).await?;
    let loaded: Vec<Result<Manifest, Unreadable>> = futures::stream::iter(ids)
        .map(|id| {
            let store = Arc::clone(&store);
            async move {
                match load(store.as_ref(), set, &id).await {
                    Ok(m) => Ok(Ok(m)),
                    Err(CatalogError::BadManifest { key, reason }) => {
                        Ok(Err(Unreadable { id, key, reason }))
                    }
                    Err(e) => Err(e),
                }
            }
        })
        .buffered(LIST_CONCURRENCY)
        .try_collect()
        .await?;
    let mut listing = Listing::default();
    for entry in loaded {
        match entry {
            Ok(m) => listing.manifests.push(m),
            Err(u) => listing.unreadable.push(u),
        }
    }
    Ok(listing)
}

/// Every readable manifest of a set, oldest first. An unreadable manifest is
/// reported as a warning and left out.
pub async fn list(store: Arc<dyn Store>, set: &str) -> Result<Vec<Manifest>, CatalogError> {
    let listing = list_all(store, set).await?;
    for Unreadable { id, key, reason } in &listing.unreadable {
        tracing::warn!("skipping backup {set}@{id}: manifest `{key}` is invalid: {reason}");
    }
    Ok(listing.manifests)
}

/// Deletes a backup: its manifest first, so that it stops existing for
/// every command at once, then every object under `<set>/<id>/`. Returns
/// how many objects besides the manifest were deleted.
///
/// If this fails after the manifest is gone, what remains under
/// `<set>/<id>/` is named by no manifest and no command sees it.
pub async fn delete(store: &dyn Store, set: &str, id: &BackupId) -> Result<usize, CatalogError> {
    store.delete(&manifest_key(set, id)).await?;
    let prefix = format!("{}{id}/", set_prefix(set)?);
    let objects = store.list(&prefix).await?;
    for object in &objects {
        store.delete(&object.key).await?;
    }
    Ok(objects.len())
}

/// Finds the backup a selector means.
pub async fn find(store: &dyn Store, selector: &Selector) -> Result<Manifest, CatalogError> {
    let set = &selector.set;
    match &selector.which {
        Which::Id(id) if BackupId::is_valid(id) => {
            load(store, set, &id.parse().expect("valid")).await
        }
        Which::Id(prefix) => {
            let ids = backup_ids(store, set).await?;
            let matching: Vec<&BackupId> = ids
                .iter()
                .filter(|id| id.as_str().starts_with(prefix.as_str()))
                .collect();
            match matching.as_slice() {
                [] => Err(CatalogError::NoSuchBackup {
                    set: set.clone(),
                    id: prefix.clone(),
                }),
                [id] => load(store, set, id).await,
                many => Err(CatalogError::Ambiguous {
                    set: set.clone(),
                    id: prefix.clone(),
                    count: many.len(),
                }),
            }
        }
        Which::Latest => latest_where(store, set, |_| true).await,
    }
}

/// The newest backup of `set` that is not a pre-restore safety copy and
/// satisfies `wanted` (e.g. "has an anonymized copy").
pub async fn latest_where(
    store: &dyn Store,
    set: &str,
    wanted: impl Fn(&Manifest) -> bool,
) -> Result<Manifest, CatalogError> {
    for id in backup_ids(store, set).await?.iter().rev() {
        match load(store, set, id).await {
            Ok(m) if m.kind != BackupKind::PreRestore && wanted(&m) => return Ok(m),
            Ok(_) => {}
            Err(CatalogError::BadManifest { key, reason }) => {
                tracing::warn!("skipping backup {set}@{id}: manifest `{key}` is invalid: {reason}");
            }
            Err(e) => return Err(e),
        }
    }
    Err(CatalogError::NoBackups {
        set: set.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{Policy, SigningError, TrustedSigners};

    #[test]
    fn an_id_tells_when_its_backup_started() {
        let at: Timestamp = "2026-11-22T01:00:07Z".parse().unwrap();
        assert_eq!(BackupId::generate(at).started_at(), Some(at));
    }

    #[test]
    fn ids_of_the_same_second_sort_in_the_order_they_were_made() {
        let at: Timestamp = "2026-11-22T01:00:07Z".parse().unwrap();
        let mut ids = vec![BackupId::next(at, None)];
        for _ in 0..50 {
            let next = BackupId::next(at, ids.last());
            assert!(
                next > *ids.last().unwrap(),
                "{next} after {}",
                ids.last().unwrap()
            );
            assert!(BackupId::is_valid(next.as_str()), "{next}");
            ids.push(next);
        }
        let later = BackupId::next("2026-11-22T01:00:08Z".parse().unwrap(), ids.last());
        assert!(later > *ids.last().unwrap());
    }

    fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            set: "prod".into(),
            id: "20261122T010000Z-3fa9".parse().unwrap(),
            kind: BackupKind::Manual,
            target: None,
            note: Some("before v2".into()),
            started_at: "2026-11-22T01:00:00Z".parse().unwrap(),
            finished_at: "2026-11-22T01:00:05Z".parse().unwrap(),
            sluice_version: "0.1.0".into(),
            host: "db1".into(),
            seal: Seal::Unsigned,
            objects: vec![ObjectRecord {
                source: "db".into(),
                source_kind: "command".into(),
                format: "out".into(),
                name: "db.out.zst.age".into(),
                compression_level: 3,
                anonymized: false,
                anonymized_copy_failed: None,
                recipients: vec!["sha256:0011223344556677".into()],
                plaintext_size: 100,
                stored_size: 25,
                part_size: 10,
                sha256: "a".repeat(64),
                parts: vec!["b".repeat(64), "c".repeat(64), "d".repeat(64)],
            }],
        }
    }

    #[test]
    fn ids_sort_by_time_and_read_as_one() {
        let early = BackupId::generate("2026-11-22T01:00:00Z".parse().unwrap());
        let late = BackupId::generate("2026-11-22T01:00:01Z".parse().unwrap());
        assert!(early < late);
        assert!(early.as_str().starts_with("20261122T010000Z-"));
        assert!(BackupId::from_str(early.as_str()).is_ok());
        for bad in [
            "20261122T010000Z-3fA9",
            "20261122T010000Z3fa9",
            "x",
            "20261122T010000Z-3fa9/",
        ] {
            assert!(BackupId::from_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_parse() {
        let s: Selector = "prod".parse().unwrap();
        assert_eq!(s.which, Which::Latest);
        let s: Selector = "prod@latest".parse().unwrap();
        assert_eq!(s.which, Which::Latest);
        let s: Selector = "prod@20261122T01".parse().unwrap();
        assert_eq!(s.which, Which::Id("20261122T01".into()));
        for bad in ["prod@", "@x", "../x@latest", "prod@a/b", ".x"] {
            assert!(Selector::from_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_manifest_round_trips_through_json() {
        let m = sample();
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(Manifest::from_json("k", &json).unwrap(), m);
    }

    #[test]
    fn inconsistent_manifests_are_refused() {
        let mut m = sample();
        m.objects[0].parts.pop();
        let err = Manifest::from_json("k", &serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(err.to_string().contains("lists 2 parts"), "{err}");

        let mut m = sample();
        m.objects[0].name = "../../etc/passwd".into();
        assert!(Manifest::from_json("k", &serde_json::to_vec(&m).unwrap()).is_err());

        let mut m = sample();
        m.format_version = 99;
        let err = Manifest::from_json("k", &serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");

        assert!(Manifest::from_json("k", b"{").is_err());
    }

    fn signing_key(dir: &std::path::Path, name: &str) -> SigningKey {
        let path = dir.join(name);
        crate::signing::write_key(&path, &crate::signing::generate()).unwrap();
        SigningKey::load(&path).unwrap()
    }

    fn policy(trusted: &[&SigningKey], allow_unsigned: bool) -> Policy {
        Policy {
            trusted: TrustedSigners::parse(
                &trusted
                    .iter()
                    .map(|k| k.signer().to_string())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            allow_unsigned,
        }
    }

    #[tokio::test]
    async fn a_committed_manifest_reads_back_signed_and_any_edit_shows() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = crate::store::open(&crate::config::StoreConfig::new(url))
            .await
            .unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (key, other) = (signing_key(keys.path(), "a"), signing_key(keys.path(), "b"));
        let committed = commit(store.as_ref(), sample(), Some(&key)).await.unwrap();
        let read = load(store.as_ref(), "prod", &committed.id).await.unwrap();
        assert_eq!(read, committed);
        assert!(matches!(read.seal, Seal::Signed { signer, .. } if signer == *key.signer()));
        assert_eq!(
            read.to_stored_json()["signature"]["signer"],
            key.signer().to_string()
        );
        policy(&[&key], false).check(&read).unwrap();
        policy(&[&other, &key], false).check(&read).unwrap();
        let err = policy(&[&other], false).check(&read).unwrap_err();
        assert!(matches!(err, SigningError::Untrusted { .. }), "{err}");
        policy(&[&other], true).check(&read).unwrap();

        let path = dir
            .path()
            .join("prod")
            .join(committed.id.as_str())
            .join(MANIFEST_NAME);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace(&"c".repeat(64), &"e".repeat(64))).unwrap();
        let altered = load(store.as_ref(), "prod", &committed.id).await.unwrap();
        assert_eq!(altered.objects[0].parts[1], "e".repeat(64));
        let err = policy(&[&key], true)
            .check(&altered)
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed after it was signed"), "{err}");
        assert!(err.contains(&key.signer().to_string()), "{err}");
    }

    #[test]
    fn an_unsigned_manifest_is_used_only_when_allowed() {
        let keys = tempfile::tempdir().unwrap();
        let key = signing_key(keys.path(), "a");
        let m = Manifest::from_json("k", &serde_json::to_vec(&sample()).unwrap()).unwrap();
        assert_eq!(m.seal, Seal::Unsigned);
        let err = policy(&[&key], false).check(&m).unwrap_err().to_string();
        assert!(err.contains("prod@20261122T010000Z-3fa9"), "{err}");
        assert!(err.contains("--allow-unsigned"), "{err}");
        policy(&[&key], true).check(&m).unwrap();
        assert!(m.to_stored_json().get("signature").is_none());
    }

    #[test]
    fn part_ranges_cover_the_object() {
        let o = &sample().objects[0];
        assert_eq!(o.part_range(0), 0..10);
        assert_eq!(o.part_range(2), 20..25);
    }
}
