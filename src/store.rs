//! Where backups live: a small trait in the shape of object_store's
//! (`MultipartUpload { put_part, complete, abort }`), implemented for the
//! embedded `file://` store and for `s3://` (any S3-compatible server).

#[cfg(test)]
mod conformance;
mod local;
mod multipart;
mod s3;

use std::{fmt, ops::Range, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;

pub use local::LocalStore;
pub use multipart::PartWriter;
pub use s3::S3Store;

use crate::config::StoreConfig;

/// One stored object, as a listing or `head` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// What [`Store::create_if_absent`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The object did not exist and now holds the given bytes.
    Created,
    /// An object already existed under that key; nothing was written.
    AlreadyExists,
}

/// An upload that was started and neither completed nor aborted: a
/// multipart upload on S3, a temporary file on `file://`. It holds storage
/// but is no object: nothing lists or reads it, and `sluice gc` removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key the object would have had, relative to the store's root.
    pub key: String,
    /// What the store needs to abort it: the S3 upload id, or the
    /// temporary file's name on `file://`.
    pub id: String,
    /// When it was started (S3's `Initiated`), or on `file://` when it was
    /// last written to, so an upload still being written never looks old.
    pub started: jiff::Timestamp,
}

/// A pending part upload; parts may run concurrently.
pub type PartFuture = BoxFuture<'static, Result<(), StoreError>>;

/// One part of an upload, with its SHA-256: the backup computes it anyway
/// for the manifest, and an S3 store sends it as the part's checksum, so
/// the server checks the very hash the manifest records (Object Lock
/// requires a checksum on every write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The bytes.
    pub data: Bytes,
    /// Their SHA-256.
    pub sha256: [u8; 32],
}

impl Part {
    /// Where a part's bytes start in memory: on a 4 KiB boundary, so that
    /// the `file://` store can write them with `O_DIRECT` (which needs the
    /// address, the length and the file offset aligned to the filesystem's
    /// block size, 4 KiB at most on common filesystems).
    pub const ALIGN: usize = 4096;

    /// An empty buffer for a part of up to `capacity` bytes, starting on an
    /// [`Part::ALIGN`] boundary.
    pub fn buffer(capacity: usize) -> BytesMut {
        let mut buf = BytesMut::with_capacity(capacity + Self::ALIGN);
        let pad = buf.as_ptr().align_offset(Self::ALIGN);
        buf.resize(pad, 0);
        drop(buf.split_to(pad));
        buf
    }

    /// A part of `data`, hashed here.
    pub fn new(data: Bytes) -> Self {
        use sha2::Digest;
        let sha256 = sha2::Sha256::digest(&data).into();
        Self { data, sha256 }
    }
}

/// A store of objects addressed by `/`-separated keys.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Starts writing an object as a sequence of parts. Nothing is visible
    /// under `key` until [`MultipartUpload::complete`] returns.
    async fn start_upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>, StoreError>;

    /// Reads `range` of an object. Returns fewer bytes than asked for when the
    /// object ends early; callers check the length.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError>;

    /// Reads a whole (small) object, such as a manifest.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Size of an object, or [`StoreError::NotFound`].
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Removes an object; removing a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Writes a small object only if nothing exists under `key`, atomically.
    async fn create_if_absent(&self, key: &str, data: Bytes) -> Result<CreateOutcome, StoreError>;

    /// Reads a small object with its version: a token that changes
    /// whenever the object is replaced (the ETag on S3).
    async fn get_versioned(&self, key: &str) -> Result<(Bytes, String), StoreError>;

    /// Replaces a small object only if it is still at `version`, atomically;
    /// returns the new version, or `None` when the object changed or is
    /// gone (someone else replaced or removed it).
    async fn replace_if_match(
        &self,
        key: &str,
        data: Bytes,
        version: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Every unfinished upload whose key starts with `prefix`, sorted by
    /// key. Some may belong to a run that is still writing them.
    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError>;

    /// Discards an unfinished upload and the storage it holds; discarding
    /// one that is already gone succeeds.
    async fn abort_pending(&self, upload: &PendingUpload) -> Result<(), StoreError>;

    /// Until when an object is under an Object Lock retention that has not
    /// passed yet, so that deleting it would fail (or, on a versioned
    /// bucket, only hide it). `None` when it may be deleted now, and always
    /// for a store without `object-lock`.
    async fn locked_until(&self, key: &str) -> Result<Option<jiff::Timestamp>, StoreError>;
}

/// An object being written part by part.
#[async_trait]
pub trait MultipartUpload: Send {
    /// Queues the next part. Parts are numbered in call order; the returned
    /// future may run concurrently with later parts.
    fn put_part(&mut self, part: Part) -> PartFuture;

    /// Publishes the object once every part future has completed.
    async fn complete(self: Box<Self>) -> Result<(), StoreError>;

    /// Discards everything written; nothing appears under the key.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Opens the store `config.url` names: `file:///absolute/path` or
/// `s3://bucket/prefix`, with the rest of `config` for S3.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.url.as_str();
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: redact_url(url),
        reason: reason.to_owned(),
    };
    if url.starts_with('/') {
        return Err(invalid(&format!(
            "a directory needs the file:// scheme: use file://{url}"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(&format!(
            "{e}; expected file:///absolute/path (for example file:///var/backups/sluice) or s3://bucket/prefix"
        ))
    })?;
    match parsed.scheme() {
        "file" => {
            if parsed
                .host_str()
                .is_some_and(|h| !h.is_empty() && h != "localhost")
            {
                return Err(invalid(
                    "a file:// URL has three slashes before an absolute path, as in file:///var/backups/sluice",
                ));
            }
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("not an absolute path"))?;
            if config.object_lock.is_some() {
                return Err(StoreError::ObjectLockUnsupported {
                    url: redact_url(url),
                });
            }
            Ok(Arc::new(LocalStore::open(path)?))
        }
        "s3" => Ok(Arc::new(S3Store::open(&parsed, config).await?)),
        other => Err(invalid(&format!(
            "unknown scheme `{other}`; expected file:///absolute/path or s3://bucket/prefix"
        ))),
    }
}

/// A URL fit for a message: any user name, password or query is removed.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) if url.contains('@') || url.contains('?') => "(unparseable URL, hidden)".to_owned(),
        Err(_) => url.to_owned(),
    }
}

/// Checks that a key is relative, `/`-separated, and has no empty, `.`-led
/// or `..` components, so it can never name something outside the store or
/// one of the store's own temporary files.
pub(crate) fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| StoreError::InvalidKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if key.is_empty() {
        return Err(bad("it is empty"));
    }
    for part in key.split('/') {
        if part.is_empty() {
            return Err(bad("it has an empty path component"));
        }
        if part.starts_with('.') {
            return Err(bad("a path component starts with `.`"));
        }
        if part.contains('\0') || part.contains('\\') {
            return Err(bad("it contains a NUL or backslash"));
        }
    }
    Ok(())
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `file://` store's directory does not exist.
    #[error(
        "store directory `{}` does not exist. Create it (mkdir -p {}), or check the store URL and that its disk is mounted",
        path.display(), path.display()
    )]
    MissingRoot {
        /// The directory.
        path: PathBuf,
    },
    /// `object-lock` is configured for a store that has no Object Lock.
    #[error(
        "`object-lock` is set under [store], but `{url}` is a file:// store, and a directory has no Object Lock that could keep a backup from being deleted: remove `object-lock`, or use an s3:// bucket created with Object Lock enabled (see README, \"Immutable history\")"
    )]
    ObjectLockUnsupported {
        /// The store URL.
        url: String,
    },
    /// No object under that key.
    #[error("object `{key}` does not exist in the store")]
    NotFound {
        /// The key.
        key: String,
    },
    /// An object already exists where sluice would create one.
    #[error("object `{key}` already exists in the store, and sluice never overwrites an object")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A key that must not be used.
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// S3 refused the credentials for an operation.
    #[error(
        "access denied to {location}: check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, the instance role) and the bucket policy (see README, IAM)"
    )]
    AccessDenied {
        /// `s3://bucket/key`.
        location: String,
    },
    /// No AWS region is configured for an `s3://` store.
    #[error(
        "no region for {location}: set `region` under [store] in the config, or AWS_REGION (any value, such as us-east-1, for most S3-compatible servers)"
    )]
    NoRegion {
        /// `s3://bucket`.
        location: String,
    },
    /// The bucket of an `s3://` store does not exist.
    #[error(
        "bucket `{bucket}` does not exist: check the store URL, the region and the endpoint, or create the bucket"
    )]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The S3 server does not support conditional writes (`If-None-Match: *`).
    #[error(
        "the S3 server {server} refused a conditional write (If-None-Match: *) to {location}, which sluice needs to never overwrite a backup: upgrade the server to a version with conditional writes (AWS S3, MinIO, Ceph and R2 have them), or use another store"
    )]
    ConditionalWritesUnsupported {
        /// The endpoint, redacted.
        server: String,
        /// `s3://bucket/key`.
        location: String,
    },
    /// The S3 server cannot list multipart uploads (`ListMultipartUploads`).
    #[error(
        "the S3 server {server} cannot list unfinished multipart uploads (ListMultipartUploads is not implemented), so sluice cannot find the ones under {location}: add an AbortIncompleteMultipartUpload lifecycle rule to the bucket, so the server removes them itself (see README, \"What failed backups leave\"), or run gc against a server that implements ListMultipartUploads"
    )]
    ListUploadsUnsupported {
        /// The endpoint, redacted.
        server: String,
        /// `s3://bucket/prefix`.
        location: String,
    },
    /// An S3 request failed, after retrying it when that could help.
    #[error(
        "could not {op} {location} (after {attempts} attempt(s)): {detail}. Check the endpoint, the network and the server's health; transient failures are retried per `attempts` and `retry-delay` under [store]"
    )]
    S3 {
        /// What was being done ("upload part 3 of", "list", ...).
        op: String,
        /// `s3://bucket/key`.
        location: String,
        /// Attempts made.
        attempts: u32,
        /// The server's error code and message, or the transport error.
        detail: String,
    },
    /// A filesystem operation of the `file://` store failed.
    #[error("could not {op} `{}`: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_the_store_are_refused() {
        for key in [
            "",
            "/abs",
            "a//b",
            "a/../b",
            "..",
            ".sluice-tmp/x",
            "a/.hidden",
            "a\\b",
        ] {
            assert!(validate_key(key).is_err(), "{key:?} accepted");
        }
        validate_key("prod/20261122T010000Z-3fa9/db.pgdump.zst.age").unwrap();
    }

    async fn open_url(url: &str) -> Result<Arc<dyn Store>, StoreError> {
        open(&StoreConfig::new(url)).await
    }

    #[tokio::test]
    async fn store_urls_are_checked() {
        let err = open_url("file://relative/path")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("three slashes"), "{err}");
        let err = open_url("ftp://x/y").await.unwrap_err().to_string();
        assert!(err.contains("unknown scheme `ftp`"), "{err}");
        let err = open_url("/no/scheme").await.unwrap_err().to_string();
        assert!(err.contains("use file:///no/scheme"), "{err}");
        let err = open_url("file:///definitely/not/here/sluice")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = open_url("s3:///prefix").await.unwrap_err().to_string();
        assert!(err.contains("s3://bucket/prefix"), "{err}");
    }

    #[test]
    fn urls_in_messages_hide_credentials() {
        assert_eq!(
            redact_url("http://user:secret@host:9000/path?X-Amz-Signature=abc"),
            "http://host:9000/path"
        );
        assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
    }
}
