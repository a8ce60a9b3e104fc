//! The `files` source: a directory as tar, built in process.
//!
//! Symlinks are stored as symlinks and never followed; sockets, FIFOs and
//! devices are skipped; owner, mode and mtime are kept. The directory may be
//! live: a file is read through exactly the size its header announces (cut if
//! it grew, zero-padded if it shrank, with a warning), and a file that
//! vanishes between listing and reading is skipped with a warning, so the
//! archive is never corrupt. Hard-linked files are stored as separate copies.

use std::{
    fs::{self, OpenOptions},
    io::{self, Read, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use tar::{EntryType, Header, HeaderMode};

use super::SourceError;
use crate::Cancel;

/// A directory backed up as tar.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FilesSource {
    /// The source's name in its set.
    #[serde(deserialize_with = "crate::config::env_string")]
    pub name: String,
    /// The directory; also where `restore` puts it back unless `--into` says otherwise.
    #[serde(deserialize_with = "crate::config::env_path")]
    pub path: PathBuf,
    /// Globs of paths to leave out, relative to `path` (`cache/**`, `*.tmp`).
    #[serde(default, deserialize_with = "crate::config::env_strings")]
    pub exclude: Vec<String>,
}

impl FilesSource {
    /// A source for `path` with no excludes.
    pub fn new(name: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_owned(),
            path: path.into(),
            exclude: Vec::new(),
        }
    }

    /// The total size of the files the dump will hold (one walk of the
    /// tree, excludes applied), or none when the directory cannot be read.
    pub fn size_hint(&self) -> Option<u64> {
        let root = &self.path;
        let excludes = build_excludes(&self.exclude).ok()?;
        let total = walkdir::WalkDir::new(root)
            .follow_links(false)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| !excludes.is_match(relative(root, e.path())))
            .flatten()
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        fs::metadata(root).ok()?.is_dir().then_some(total)
    }

    /// Writes the directory as a tar stream to `out`.
    pub fn dump(&self, out: &mut dyn Write, cancel: &Cancel) -> Result<(), SourceError> {
        let root = &self.path;
        let unreadable = |path: &Path, source| SourceError::Unreadable {
            path: path.display().to_string(),
            source,
        };
        match fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(SourceError::NotADirectory {
                    path: root.display().to_string(),
                });
            }
            Err(e) => return Err(unreadable(root, e)),
        }
        let excludes = build_excludes(&self.exclude)?;
        let mut builder = tar::Builder::new(out);
        builder.mode(HeaderMode::Complete);
        builder.follow_symlinks(false);

        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| !excludes.is_match(relative(root, e.path())));
        for entry in walker {
            if cancel.is_fired() {
                return Err(SourceError::Interrupted);
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if is_not_found(e.io_error()) => {
                    warn_vanished(e.path().unwrap_or(root));
                    continue;
                }
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_owned();
                    return Err(unreadable(&path, e.into()));
                }
            };
            let path = entry.path();
            let name = relative(root, path);
            let file_type = entry.file_type();
            let result = if file_type.is_dir() {
                append_dir(&mut builder, path, &name)
            } else if file_type.is_symlink() {
                append_symlink(&mut builder, path, &name)
            } else if file_type.is_file() {
                append_file(&mut builder, path, &name)
            } else {
                tracing::warn!(
                    "skipping `{}`: sockets, FIFOs and devices are not backed up",
                    path.display()
                );
                Ok(())
            };
            match result {
                Ok(()) => {}
                Err(Failure::Read(e)) if e.kind() == io::ErrorKind::NotFound => warn_vanished(path),
                Err(Failure::Read(e)) => return Err(unreadable(path, e)),
                Err(Failure::Write(e)) => return Err(SourceError::Output(e)),
            }
        }
        builder.finish().map_err(SourceError::Output)
    }
}

/// Whether a problem came from reading the source or writing the archive.
enum Failure {
    Read(io::Error),
    Write(io::Error),
}

fn build_excludes(patterns: &[String]) -> Result<GlobSet, SourceError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob =
            Glob::new(pattern.trim_end_matches('/')).map_err(|e| SourceError::BadExclude {
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| SourceError::BadExclude {
        pattern: patterns.join(", "),
        reason: e.to_string(),
    })
}

/// `path` relative to `root`, with `/` separators.
fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn is_not_found(e: Option<&io::Error>) -> bool {
    e.is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
}

fn warn_vanished(path: &Path) {
    tracing::warn!(
        "skipping `{}`: it disappeared while the backup ran",
        path.display()
    );
}

fn header_for(meta: &fs::Metadata, entry_type: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    header.set_entry_type(entry_type);
    header
}

fn append_dir(
    builder: &mut tar::Builder<&mut dyn Write>,
    path: &Path,
    name: &str,
) -> Result<(), Failure> {
    let meta = fs::symlink_metadata(path).map_err(Failure::Read)?;
    let mut header = header_for(&meta, EntryType::Directory);
    header.set_size(0);
    // A trailing slash marks a directory for tools that look at names only.
    builder
        .append_data(&mut header, format!("{name}/"), io::empty())
        .map_err(Failure::Write)
}

fn append_symlink(
    builder: &mut tar::Builder<&mut dyn Write>,
    path: &Path,
    name: &str,
) -> Result<(), Failure> {
    let meta = fs::symlink_metadata(path).map_err(Failure::Read)?;
    let target = fs::read_link(path).map_err(Failure::Read)?;
    let mut header = header_for(&meta, EntryType::Symlink);
    header.set_size(0);
    builder
        .append_link(&mut header, name, target)
        .map_err(Failure::Write)
}

fn append_file(
    builder: &mut tar::Builder<&mut dyn Write>,
    path: &Path,
    name: &str,
) -> Result<(), Failure> {
    // O_NOFOLLOW: if the file was swapped for a symlink since it was listed,
    // fail (and skip) rather than read whatever the link points to.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => {
                io::Error::new(io::ErrorKind::NotFound, "replaced by a symlink")
            }
            _ => e,
        })
        .map_err(Failure::Read)?;
    let meta = file.metadata().map_err(Failure::Read)?;
    if !meta.is_file() {
        return Err(Failure::Read(io::Error::new(
            io::ErrorKind::NotFound,
            "no longer a regular file",
        )));
    }
    let mut header = header_for(&meta, EntryType::Regular);
    let size = meta.len();
    let mut reader = ExactSize::new(&file, size);
    builder
        .append_data(&mut header, name, &mut reader)
        .map_err(|e| match reader.read_error.take() {
            Some(read) => Failure::Read(read),
            None => Failure::Write(e),
        })?;
    if reader.padded > 0 {
        tracing::warn!(
            "`{}` shrank by {} bytes while it was read; its copy is zero-padded to the size it had when the backup reached it",
            path.display(),
            reader.padded
        );
    } else if let Ok(after) = file.metadata()
        && (after.len() != size
            || after.mtime() != meta.mtime()
            || after.mtime_nsec() != meta.mtime_nsec())
    {
        tracing::warn!(
            "`{}` changed while it was read; its copy may mix old and new contents",
            path.display()
        );
    }
    Ok(())
}

/// Reads exactly `size` bytes: the file's own bytes, cut at `size`, then
/// zeros if it ended early. Keeps a read error aside so the caller can tell
/// it from a write error.
struct ExactSize<R> {
    inner: R,
    remaining: u64,
    padded: u64,
    read_error: Option<io::Error>,
}

impl<R: Read> ExactSize<R> {
    fn new(inner: R, size: u64) -> Self {
        Self {
            inner,
            remaining: size,
            padded: 0,
            read_error: None,
        }
    }
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = if self.padded > 0 {
            0
        } else {
            loop {
                match self.inner.read(&mut buf[..want]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let kind = e.kind();
                        self.read_error = Some(e);
                        return Err(io::Error::new(kind, "reading the file failed"));
                    }
                }
            }
        };
        let n = if n == 0 {
            buf[..want].fill(0);
            self.padded += want as u64;
            want
        } else {
            n
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_reader_is_zero_padded_and_a_long_one_cut() {
        let mut out = Vec::new();
        let mut short = ExactSize::new(&b"abc"[..], 5);
        short.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
        assert_eq!(short.padded, 2);

        let mut out = Vec::new();
        ExactSize::new(&b"abcdef"[..], 4)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn the_archive_keeps_symlinks_and_skips_excluded_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("cache/deep")).unwrap();
        fs::write(root.join("cache/deep/x"), "x").unwrap();
        fs::write(root.join("keep.txt"), "keep").unwrap();
        fs::write(root.join("drop.tmp"), "drop").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

        let source = FilesSource {
            name: "t".into(),
            path: root.to_owned(),
            exclude: vec!["cache/**".into(), "*.tmp".into()],
        };
        let mut tar_bytes = Vec::new();
        source.dump(&mut tar_bytes, &Cancel::new()).unwrap();

        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            if path == "link" {
                assert_eq!(entry.header().entry_type(), EntryType::Symlink);
                assert_eq!(
                    entry.link_name().unwrap().unwrap(),
                    Path::new("/etc/passwd")
                );
            }
            seen.push(path);
        }
        assert_eq!(seen, ["cache/", "keep.txt", "link"]);
    }

    #[test]
    fn the_size_hint_counts_the_files_that_will_be_dumped() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("cache")).unwrap();
        fs::write(dir.path().join("a.bin"), vec![0u8; 1000]).unwrap();
        fs::write(dir.path().join("cache/skip.bin"), vec![0u8; 5000]).unwrap();
        std::os::unix::fs::symlink("a.bin", dir.path().join("link")).unwrap();
        let mut source = FilesSource::new("d", dir.path());
        assert_eq!(source.size_hint(), Some(6000));
        source.exclude = vec!["cache".to_owned()];
        assert_eq!(source.size_hint(), Some(1000));
        assert_eq!(
            FilesSource::new("d", dir.path().join("none")).size_hint(),
            None
        );
    }

    #[test]
    fn a_path_that_is_not_a_directory_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = FilesSource::new("t", file.path())
            .dump(&mut Vec::new(), &Cancel::new())
            .unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
