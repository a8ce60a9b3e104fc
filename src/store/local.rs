//! The embedded `file://` store: objects are files under a root directory.
//!
//! Data goes to a temporary file in `<root>/.sluice-tmp/`, is fsynced, then
//! published with a hard link, which fails with EEXIST instead of replacing
//! (a rename would silently overwrite), and the directory is fsynced. So a
//! half-written object never appears under its final name, and neither an
//! object nor a manifest is ever overwritten.
//!
//! A temporary file's name carries the key it is for
//! (`<16 hex>.<key, `%` as `%25` and `/` as `%2F`>.part`), so the
//! unfinished uploads a killed run left behind can be told apart by set.
//! A name that would pass 255 bytes is `<16 hex>.part`, carries no key, and
//! is never listed as a pending upload: remove such a file by hand when no
//! sluice runs.

use std::{
    fs::{self, File, OpenOptions},
    io,
    ops::Range,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::task::spawn_blocking;

use super::{
    CreateOutcome, MultipartUpload, ObjectMeta, Part, PartFuture, PendingUpload, Store, StoreError,
    validate_key,
};

/// Directory under the root that holds files being written.
const TMP_DIR: &str = ".sluice-tmp";

/// The longest file name common filesystems take, in bytes.
const NAME_MAX: usize = 255;

/// Ending of every temporary file's name.
const TMP_SUFFIX: &str = ".part";

/// A store rooted at a local directory (which must exist).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<PathBuf>,
}

impl LocalStore {
    /// Opens the store at `root`, which must be an existing directory: a
    /// missing one is more often a typo or an unmounted disk than a wish.
    pub fn open(root: PathBuf) -> Result<Self, StoreError> {
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(Self {
                root: Arc::new(root),
            }),
            Ok(_) => Err(StoreError::Io {
                op: "use as a store directory",
                path: root,
                source: io::Error::other("it is not a directory"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::MissingRoot { path: root })
            }
            Err(source) => Err(StoreError::Io {
                op: "open the store directory",
                path: root,
                source,
            }),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The name of a temporary file for `key`: `<16 hex>.<key>.part` with `%`
/// written `%25` and `/` written `%2F`, or `<16 hex>.part` when that would
/// be too long for a file name.
fn temp_name(random: u64, key: &str) -> String {
    let encoded = key.replace('%', "%25").replace('/', "%2F");
    let name = format!("{random:016x}.{encoded}{TMP_SUFFIX}");
    if name.len() <= NAME_MAX {
        name
    } else {
        format!("{random:016x}{TMP_SUFFIX}")
    }
}

/// The key a temporary file's name carries; `None` for a name without
/// one, or that [`temp_name`] did not make.
fn temp_name_key(name: &str) -> Option<String> {
    let rest = name.strip_suffix(TMP_SUFFIX)?;
    let (random, encoded) = (rest.get(..16)?, rest.get(16..)?.strip_prefix('.')?);
    if !random.bytes().all(|b| b.is_ascii_hexdigit()) || encoded.contains('/') {
        return None;
    }
    let mut key = String::with_capacity(encoded.len());
    let mut pieces = encoded.split('%');
    key.push_str(pieces.next()?);
    for piece in pieces {
        match piece.get(..2)? {
            "25" => key.push('%'),
            "2F" => key.push('/'),
            _ => return None,
        }
        key.push_str(&piece[2..]);
    }
    (!key.is_empty()).then_some(key)
}

/// Creates a fresh temporary file (mode 0640) for `key` under the root's
/// temp directory.
fn temp_file(root: &Path, key: &str) -> Result<(File, PathBuf), StoreError> {
    let dir = root.join(TMP_DIR);
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    loop {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| StoreError::Io {
            op: "get random bytes for",
            path: dir.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        let path = dir.join(temp_name(u64::from_le_bytes(random), key));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
}

/// Removes a temporary file; one already gone is fine.
fn remove_temp(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Writes `data` to a synced temporary file and publishes it under `dest`
/// unless something is there already.
fn create_new(
    root: &Path,
    key: &str,
    data: &[u8],
    dest: &Path,
) -> Result<CreateOutcome, StoreError> {
    let (file, tmp) = temp_file(root, key)?;
    let written = file.write_all_at(data, 0).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("write", &tmp)(e));
    }
    publish(&tmp, dest)
}

/// Publishes a synced temporary file under `dest` with a hard link; EEXIST
/// means the object exists. The temporary name is removed either way.
fn publish(tmp: &Path, dest: &Path) -> Result<CreateOutcome, StoreError> {
    let parent = dest.parent().expect("object paths have a parent");
    fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    let linked = fs::hard_link(tmp, dest);
    let _ = fs::remove_file(tmp);
    match linked {
        Ok(()) => {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", parent))?;
            Ok(CreateOutcome::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(CreateOutcome::AlreadyExists),
        Err(e) => Err(io_err("publish", dest)(e)),
    }
}

/// A `file://` object's version: the SHA-256 of its content.
fn content_version(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    spawn_blocking(f).await.expect("store task panicked")
}

#[async_trait]
impl Store for LocalStore {
    async fn start_upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>, StoreError> {
        let dest = self.path(key)?;
        let key = key.to_owned();
        let root = Arc::clone(&self.root);
        let (file, direct, tmp, key) = blocking(move || {
            let (file, tmp) = temp_file(&root, &key)?;
            let direct = open_direct(&file, &tmp);
            Ok((file, direct, tmp, key))
        })
        .await?;
        Ok(Box::new(LocalUpload {
            key,
            file: Arc::new(file),
            direct: direct.map(Arc::new),
            tmp,
            dest,
            offset: 0,
            finished: false,
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            let file = File::open(&path).map_err(|e| not_found_or(e, &key, "open", &path))?;
            let len = usize::try_from(range.end.saturating_sub(range.start))
                .map_err(|_| io_err("read", &path)(io::Error::other("range too large")))?;
            let mut buf = vec![0u8; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut buf[filled..], range.start + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err("read", &path)(e)),
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| not_found_or(e, &key, "read", &path))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            let meta = fs::metadata(&path).map_err(|e| not_found_or(e, &key, "read", &path))?;
            Ok(ObjectMeta {
                key,
                size: meta.len(),
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let root = Arc::clone(&self.root);
        let prefix = prefix.to_owned();
        blocking(move || list_blocking(&root, &prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let root = Arc::clone(&self.root);
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io_err("delete", &path)(e)),
            }
            // Remove directories the delete left empty, up to the root.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == root.as_path() || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    async fn create_if_absent(&self, key: &str, data: Bytes) -> Result<CreateOutcome, StoreError> {
        let dest = self.path(key)?;
        let key = key.to_owned();
        let root = Arc::clone(&self.root);
        blocking(move || create_new(&root, &key, &data, &dest)).await
    }

    /// The version is the SHA-256 of the content.
    async fn get_versioned(&self, key: &str) -> Result<(Bytes, String), StoreError> {
        let data = self.get(key).await?;
        let version = content_version(&data);
        Ok((data, version))
    }

    /// Claims the current object by renaming it away (of two contenders
    /// only one rename succeeds), checks that the claimed file is at
    /// `version`, then creates the new one exclusively.
    async fn replace_if_match(
        &self,
        key: &str,
        data: Bytes,
        version: &str,
    ) -> Result<Option<String>, StoreError> {
        let dest = self.path(key)?;
        let (key, version) = (key.to_owned(), version.to_owned());
        let root = Arc::clone(&self.root);
        blocking(move || {
            // Replacers take turns on the object's directory (never itself
            // replaced); the object is swapped by a rename, so a reader or
            // a create-if-absent never finds it missing meanwhile.
            let parent = dest.parent().expect("an object has a directory");
            let dir = File::open(parent).map_err(io_err("open", parent))?;
            rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| io_err("lock", parent)(e.into()))?;
            let current = match fs::read(&dest) {
                Ok(current) => current,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err("read", &dest)(e)),
            };
            if content_version(&current) != version {
                return Ok(None);
            }
            let (mut file, temp) = temp_file(&root, &key)?;
            let written = io::Write::write_all(&mut file, &data)
                .and_then(|()| file.sync_all())
                .and_then(|()| fs::rename(&temp, &dest));
            if let Err(e) = written {
                let _ = fs::remove_file(&temp);
                return Err(io_err("replace", &dest)(e));
            }
            Ok(Some(content_version(&data)))
        })
        .await
    }

    /// The temporary files whose names carry a key under `prefix`, each
    /// `started` at its last write (an upload still being written is never
    /// old); files without a key in their name are left out.
    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, StoreError> {
        let dir = self.root.join(TMP_DIR);
        let prefix = prefix.to_owned();
        blocking(move || {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_err("list", &dir)(e)),
            };
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err("list", &dir))?;
                let id = entry.file_name().to_string_lossy().into_owned();
                let Some(key) = temp_name_key(&id).filter(|k| k.starts_with(&prefix)) else {
                    continue;
                };
                let modified = match entry.metadata().and_then(|m| m.modified()) {
                    Ok(modified) => modified,
                    // Completed or aborted since the directory was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("read", &entry.path())(e)),
                };
                let started = jiff::Timestamp::try_from(modified)
                    .map_err(|e| io_err("read the time of", &entry.path())(io::Error::other(e)))?;
                found.push(PendingUpload { key, id, started });
            }
            found.sort_by(|a, b| (&a.key, a.started).cmp(&(&b.key, b.started)));
            Ok(found)
        })
        .await
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<(), StoreError> {
        // Only a name this store made, so that no other file can be named.
        if temp_name_key(&upload.id).is_none() {
            return Err(StoreError::InvalidKey {
                key: upload.id.clone(),
                reason: format!("it is not the name of a temporary file in {TMP_DIR}/"),
            });
        }
        let path = self.root.join(TMP_DIR).join(&upload.id);
        blocking(move || remove_temp(&path)).await
    }

    /// A directory has no Object Lock (`object-lock` is refused for it).
    async fn locked_until(&self, _key: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        Ok(None)
    }
}

fn not_found_or(e: io::Error, key: &str, op: &'static str, path: &Path) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound {
            key: key.to_owned(),
        }
    } else {
        io_err(op, path)(e)
    }
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
    // Walk only the deepest directory the prefix names in full.
    let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    let start = if dir_part.is_empty() {
        root.to_owned()
    } else {
        validate_key(dir_part)?;
        root.join(dir_part)
    };
    if !start.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let walker = walkdir::WalkDir::new(&start)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| StoreError::Io {
            op: "list",
            path: e.path().unwrap_or(&start).to_owned(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        let key = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if key.starts_with(prefix) {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            found.push(ObjectMeta { key, size });
        }
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// Opens a second handle on a temporary file for writes that bypass the
/// page cache (`O_DIRECT`), or none where the filesystem refuses them.
///
/// A backup written through the page cache costs a kernel copy of every
/// byte, and it evicts what the host had cached (a database's hot pages) to
/// keep data that is read back only by a restore.
fn open_direct(file: &File, tmp: &Path) -> Option<File> {
    use std::os::fd::AsRawFd;
    let direct = rustix::fs::OFlags::DIRECT.bits() as i32;
    // Through the open descriptor, so the handle is surely of the same file.
    let same = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    match OpenOptions::new()
        .write(true)
        .custom_flags(direct)
        .open(same)
    {
        Ok(file) => Some(file),
        Err(e) => {
            tracing::debug!("writing `{}` through the page cache: {e}", tmp.display());
            None
        }
    }
}

/// Writes a part at `offset`: through `direct` when one is open and the
/// part's address, length and offset are aligned as `O_DIRECT` needs (all
/// parts but the last when the part size is a multiple of 4 KiB, as the
/// default 16 MiB is), else through `file`.
fn write_part(file: &File, direct: Option<&File>, data: &[u8], offset: u64) -> io::Result<()> {
    let align = Part::ALIGN;
    let aligned = (data.as_ptr() as usize).is_multiple_of(align)
        && data.len().is_multiple_of(align)
        && offset.is_multiple_of(align as u64);
    if let Some(direct) = direct.filter(|_| aligned) {
        match direct.write_all_at(data, offset) {
            // The filesystem wants a larger alignment: write it as usual.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            written => return written,
        }
    }
    file.write_all_at(data, offset)
}

/// A `file://` multipart upload: parts are written at their offsets into one
/// temporary file, which `complete` syncs and publishes.
struct LocalUpload {
    key: String,
    file: Arc<File>,
    /// The same file opened with `O_DIRECT`, where the filesystem allows it.
    direct: Option<Arc<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    offset: u64,
    finished: bool,
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, part: Part) -> PartFuture {
        let data = part.data;
        let file = Arc::clone(&self.file);
        let direct = self.direct.clone();
        let tmp = self.tmp.clone();
        let offset = self.offset;
        self.offset += data.len() as u64;
        // Syncing each part as it lands spreads the disk writes over the
        // backup, so `complete` has only the last part left to flush.
        Box::pin(blocking(move || {
            write_part(&file, direct.as_deref(), &data, offset)
                .and_then(|()| file.sync_data())
                .map_err(io_err("write", &tmp))
        }))
    }

    async fn complete(mut self: Box<Self>) -> Result<(), StoreError> {
        self.finished = true;
        let file = Arc::clone(&self.file);
        let tmp = self.tmp.clone();
        let dest = self.dest.clone();
        let key = self.key.clone();
        blocking(move || {
            file.sync_all().map_err(io_err("sync", &tmp))?;
            match publish(&tmp, &dest)? {
                CreateOutcome::Created => Ok(()),
                CreateOutcome::AlreadyExists => Err(StoreError::AlreadyExists { key }),
            }
        })
        .await
    }

    async fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.finished = true;
        let tmp = self.tmp.clone();
        blocking(move || remove_temp(&tmp)).await
    }
}

impl Drop for LocalUpload {
    /// An upload dropped without `complete` or `abort` (a panic, a cancelled
    /// task) leaves no temporary file behind.
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path().to_owned()).unwrap();
        (dir, store)
    }

    crate::store::conformance::store_conformance!(store());

    #[tokio::test]
    async fn aligned_parts_bypass_the_page_cache() {
        // On a disk filesystem (a tmpfs has nothing but its page cache, and
        // /tmp is one on some systems): the project's directory.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let store = LocalStore::open(dir.path().to_owned()).unwrap();
        let mut whole = vec![7u8; 1 << 20];
        let mut first = Part::buffer(whole.len());
        first.extend_from_slice(&whole);
        let mut upload = store.start_upload("set/id/a").await.unwrap();
        upload.put_part(Part::new(first.freeze())).await.unwrap();
        upload
            .put_part(Part::new(Bytes::from_static(b"tail")))
            .await
            .unwrap();
        upload.complete().await.unwrap();

        let path = dir.path().join("set/id/a");
        let resident = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(&path)
            .output()
            .expect("fincore runs (Debian: util-linux)");
        let resident: u64 = String::from_utf8_lossy(&resident.stdout)
            .trim()
            .parse()
            .unwrap();
        // Only the page of the unaligned tail went through the cache.
        assert!(resident <= 4096, "{resident} bytes of the object cached");
        whole.extend_from_slice(b"tail");
        assert_eq!(fs::read(&path).unwrap(), whole);
    }

    #[tokio::test]
    async fn an_aborted_upload_leaves_nothing() {
        let (dir, store) = store();
        let mut upload = store.start_upload("set/id/a").await.unwrap();
        upload
            .put_part(Part::new(Bytes::from_static(b"data")))
            .await
            .unwrap();
        upload.abort().await.unwrap();
        assert!(store.list("").await.unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_dropped_upload_leaves_no_temporary_file() {
        let (dir, store) = store();
        let mut upload = store.start_upload("set/id/a").await.unwrap();
        upload
            .put_part(Part::new(Bytes::from_static(b"data")))
            .await
            .unwrap();
        drop(upload);
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn list_filters_by_prefix_and_delete_prunes_empty_directories() {
        let (dir, store) = store();
        for key in [
            "prod/1/a",
            "prod/1/b",
            "prod/2/a",
            "production/1/a",
            "staging/1/a",
        ] {
            store
                .create_if_absent(key, Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let keys = |v: Vec<ObjectMeta>| v.into_iter().map(|m| m.key).collect::<Vec<_>>();
        assert_eq!(
            keys(store.list("prod/").await.unwrap()),
            ["prod/1/a", "prod/1/b", "prod/2/a"]
        );
        assert_eq!(keys(store.list("prod").await.unwrap()).len(), 4);
        assert!(store.list("nothing/").await.unwrap().is_empty());
        store.delete("prod/2/a").await.unwrap();
        store.delete("prod/2/a").await.unwrap();
        assert!(!dir.path().join("prod/2").exists());
        assert!(dir.path().join("prod/1").exists());
    }

    #[test]
    fn a_temporary_name_carries_its_key() {
        for key in [
            "prod/20261122T010000Z-3fa9/db.pgdump.zst.age",
            "a",
            "100%/x%2F/y%25",
            "set/id/name.part",
            "ünï/cödé",
        ] {
            let name = temp_name(0xfeed, key);
            assert!(name.starts_with("000000000000feed.") && name.ends_with(".part"));
            assert!(!name.contains('/'), "{name}");
            assert_eq!(temp_name_key(&name).as_deref(), Some(key), "{name}");
        }
    }

    #[test]
    fn a_key_too_long_for_a_file_name_is_left_out_of_it() {
        let fits = "k".repeat(NAME_MAX - 16 - 1 - TMP_SUFFIX.len());
        assert_eq!(temp_name(1, &fits).len(), NAME_MAX);
        assert_eq!(temp_name_key(&temp_name(1, &fits)), Some(fits.clone()));
        let long = format!("{fits}k");
        assert_eq!(temp_name(1, &long), "0000000000000001.part");
        assert_eq!(temp_name_key("0000000000000001.part"), None);
    }

    #[test]
    fn names_sluice_did_not_make_carry_no_key() {
        for name in [
            "notes.txt",
            "000000000000000g.a.part",
            "0000000000000001..part",
            "0000000000000001.a%2",
            "0000000000000001.a%2.part",
            "0000000000000001.a%41.part",
            "0000000000000001.a.tmp",
        ] {
            assert_eq!(temp_name_key(name), None, "{name}");
        }
    }

    #[tokio::test]
    async fn unfinished_uploads_are_listed_by_key_and_aborted() {
        let (dir, store) = store();
        let mut upload = store.start_upload("prod/1/db").await.unwrap();
        upload
            .put_part(Part::new(Bytes::from_static(b"data")))
            .await
            .unwrap();
        let mut other = store.start_upload("production/1/db").await.unwrap();
        other
            .put_part(Part::new(Bytes::from_static(b"data")))
            .await
            .unwrap();

        let pending = store.list_uploads("prod/").await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].key, "prod/1/db");
        let age = jiff::Timestamp::now().duration_since(pending[0].started);
        assert!(age.as_secs() < 60, "{age:?}");
        assert_eq!(store.list_uploads("").await.unwrap().len(), 2);

        store.abort_pending(&pending[0]).await.unwrap();
        store.abort_pending(&pending[0]).await.unwrap();
        assert_eq!(store.list_uploads("prod/").await.unwrap(), []);
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).unwrap().count(), 1);
        // The run that was writing it fails instead of publishing.
        assert!(upload.complete().await.is_err());
        other.abort().await.unwrap();
    }

    #[tokio::test]
    async fn only_temporary_files_can_be_aborted() {
        let (dir, store) = store();
        fs::write(dir.path().join("keep"), "x").unwrap();
        let err = store
            .abort_pending(&PendingUpload {
                key: "keep".to_owned(),
                id: "../keep".to_owned(),
                started: jiff::Timestamp::UNIX_EPOCH,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
        assert!(dir.path().join("keep").exists());
    }
}
