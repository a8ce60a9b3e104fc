//! Where backups live: a small trait in the shape of object_store's
//! (`MultipartUpload { put_part, complete, abort }`), implemented for the
//! embedded `file://` store; the S3 store implements the same trait.

mod local;
mod multipart;

use std::{fmt, ops::Range, path::PathBuf, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;

pub use local::LocalStore;
pub use multipart::PartWriter;

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

/// A pending part upload; parts may run concurrently.
pub type PartFuture = BoxFuture<'static, Result<(), StoreError>>;

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
}

/// An object being written part by part.
#[async_trait]
pub trait MultipartUpload: Send {
    /// Queues the next part. Parts are numbered in call order; the returned
    /// future may run concurrently with later parts.
    fn put_part(&mut self, data: Bytes) -> PartFuture;

    /// Publishes the object once every part future has completed.
    async fn complete(self: Box<Self>) -> Result<(), StoreError>;

    /// Discards everything written; nothing appears under the key.
    async fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// Opens the store a URL names: `file:///absolute/path` (`s3://` comes with
/// the S3 store).
pub fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(&format!(
            "{e}; expected file:///absolute/path (for example file:///var/backups/sluice)"
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
            Ok(Arc::new(LocalStore::open(path)?))
        }
        "s3" => Err(invalid(
            "S3 stores are not supported by this version of sluice yet; use a file:// store",
        )),
        other => Err(invalid(&format!(
            "unknown scheme `{other}`; expected file:///absolute/path"
        ))),
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

    #[test]
    fn store_urls_are_checked() {
        let err = open("file://relative/path").unwrap_err().to_string();
        assert!(err.contains("three slashes"), "{err}");
        let err = open("ftp://x/y").unwrap_err().to_string();
        assert!(err.contains("unknown scheme `ftp`"), "{err}");
        let err = open("/no/scheme").unwrap_err().to_string();
        assert!(err.contains("expected file:///"), "{err}");
        let err = open("file:///definitely/not/here/sluice")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
