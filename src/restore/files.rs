//! Restoring a `files` backup into a directory: extraction into a staging
//! directory inside the target (so it works when the target is a mount
//! point), swapped in only after the whole stream verified.
//!
//! Entries that would land outside the staging directory (absolute paths,
//! `..`, hard links pointing out) are refused, not skipped; extraction never
//! writes through a symlink (tar's `unpack_in` checks every parent); devices
//! and FIFOs are refused.

use std::{
    fs::{self, File},
    io::{self, Read},
    os::unix::fs::PermissionsExt,
    path::{Component, Path, PathBuf},
    time::{Duration, SystemTime},
};

use tar::EntryType;

use super::RestoreError;

/// Prefix of the staging directory inside the target.
pub(crate) const STAGING_PREFIX: &str = ".sluice-restore-";
/// Prefix of the directory that holds the target's old contents during the swap.
const OLD_PREFIX: &str = ".sluice-old-";

/// Refuses a non-empty target unless the user confirmed.
pub(crate) fn preflight(target: &Path, yes: bool) -> Result<(), RestoreError> {
    use std::os::unix::fs::MetadataExt;
    if target.exists() && !target.is_dir() {
        return Err(RestoreError::Io {
            op: "restore into",
            path: target.to_owned(),
            source: io::Error::other(
                "it is not a directory; --into takes a directory for a `files` source",
            ),
        });
    }
    match fs::read_dir(target) {
        Ok(entries) => {
            let device = fs::metadata(target).map(|m| m.dev()).ok();
            let mut any = false;
            for entry in entries.flatten() {
                any = true;
                // A mount point inside the target cannot be moved aside.
                if let Ok(meta) = fs::symlink_metadata(entry.path())
                    && meta.is_dir()
                    && Some(meta.dev()) != device
                {
                    return Err(RestoreError::Io {
                        op: "restore into",
                        path: target.to_owned(),
                        source: io::Error::other(format!(
                            "`{}` inside it is a mount point, which a restore cannot replace; restore into the mount point itself, or unmount it",
                            entry.path().display()
                        )),
                    });
                }
            }
            if any && !yes {
                return Err(RestoreError::NeedsConfirmation {
                    target: target.display().to_string(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = target.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(p) if !p.is_dir() => Err(RestoreError::Io {
                    op: "restore into",
                    path: target.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "its parent `{}` does not exist; create it first (a restore creates only the last directory, so that a mistyped path does not become a new tree)",
                            p.display()
                        ),
                    ),
                }),
                _ => Ok(()),
            }
        }
        Err(source) => Err(RestoreError::Io {
            op: "read",
            path: target.to_owned(),
            source,
        }),
    }
}

/// A directory extracted and verified, waiting to be swapped in.
#[derive(Debug)]
pub(crate) struct Staged {
    target: PathBuf,
    staging: PathBuf,
    created_target: bool,
}

/// Extracts `reader` (a verified-on-EOF plaintext stream) into a new staging
/// directory inside `target`, then reads the stream to its end so every
/// check ran. On any failure, removes what it created and returns the error.
pub(crate) fn stage(
    reader: &mut dyn Read,
    target: &Path,
    id: &str,
) -> Result<Staged, RestoreError> {
    let created_target = !target.exists();
    fs::create_dir_all(target).map_err(RestoreError::io("create", target))?;
    let staging = target.join(format!("{STAGING_PREFIX}{id}"));
    let staged = Staged {
        target: target.to_owned(),
        staging,
        created_target,
    };
    if let Err(source) = fs::create_dir(&staged.staging) {
        staged.discard();
        return Err(RestoreError::Io {
            op: "create",
            path: target.join(format!("{STAGING_PREFIX}{id}")),
            source,
        });
    }
    match extract(reader, &staged.staging) {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    }
}

impl Staged {
    /// Replaces the target's contents with the staged ones: the old entries
    /// move aside, the new ones move in (each a rename within one
    /// filesystem), then the old ones are removed.
    pub(crate) fn commit(self, id: &str) -> Result<(), RestoreError> {
        let old = self.target.join(format!("{OLD_PREFIX}{id}"));
        if let Err(e) = fs::create_dir(&old) {
            self.discard();
            return Err(RestoreError::io("create", &old)(e));
        }
        let mut moved_aside = Vec::new();
        let mut moved_in = Vec::new();
        let swapped = self.swap(&old, &mut moved_aside, &mut moved_in);
        if let Err(e) = swapped {
            // Put everything back where it was: the target as before, the
            // restored entries back in staging, which is then removed.
            for name in moved_in.iter().rev() {
                let _ = fs::rename(self.target.join(name), self.staging.join(name));
            }
            for name in moved_aside.iter().rev() {
                let _ = fs::rename(old.join(name), self.target.join(name));
            }
            let _ = fs::remove_dir(&old);
            self.discard();
            return Err(e);
        }
        fs::remove_dir(&self.staging).map_err(RestoreError::io("remove", &self.staging))?;
        remove_tree(&old).map_err(RestoreError::io("remove", &old))
    }

    /// Moves the target's entries into `old`, then the staged ones into the
    /// target, recording each name moved so a failure can be undone.
    fn swap(
        &self,
        old: &Path,
        moved_aside: &mut Vec<std::ffi::OsString>,
        moved_in: &mut Vec<std::ffi::OsString>,
    ) -> Result<(), RestoreError> {
        for entry in fs::read_dir(&self.target).map_err(RestoreError::io("read", &self.target))? {
            let entry = entry.map_err(RestoreError::io("read", &self.target))?;
            let path = entry.path();
            if path == self.staging || path == old {
                continue;
            }
            fs::rename(&path, old.join(entry.file_name()))
                .map_err(RestoreError::io("move aside", &path))?;
            moved_aside.push(entry.file_name());
        }
        for entry in fs::read_dir(&self.staging).map_err(RestoreError::io("read", &self.staging))? {
            let entry = entry.map_err(RestoreError::io("read", &self.staging))?;
            let path = entry.path();
            fs::rename(&path, self.target.join(entry.file_name()))
                .map_err(RestoreError::io("move into place", &path))?;
            moved_in.push(entry.file_name());
        }
        Ok(())
    }

    /// Removes the staging directory (and the target, if the restore created it).
    pub(crate) fn discard(self) {
        if let Err(e) = remove_tree(&self.staging)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                "could not remove staging directory `{}`: {e}",
                self.staging.display()
            );
        }
        if self.created_target {
            let _ = fs::remove_dir(&self.target);
        }
    }
}

/// Removes a tree, first making its directories writable (an archive may
/// hold read-only directories).
fn remove_tree(path: &Path) -> io::Result<()> {
    for entry in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    fs::remove_dir_all(path)
}

/// A directory whose mode and mtime are applied after extraction, deepest
/// first, so read-only directories can be filled and mtimes survive.
struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

fn extract(reader: &mut dyn Read, staging: &Path) -> Result<(), RestoreError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(rustix::process::geteuid().is_root());
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    let mut dirs = Vec::new();
    let entries = archive.entries().map_err(read_error)?;
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let path = entry.path().map_err(read_error)?.into_owned();
        check_entry(&path, &entry)?;
        let unpacked = entry
            .unpack_in(staging)
            .map_err(|source| RestoreError::Extract {
                path: path.display().to_string(),
                source,
            })?;
        if !unpacked {
            return Err(RestoreError::UnsafeEntry {
                path: path.display().to_string(),
                reason: "it would land outside the target",
            });
        }
        let header = entry.header();
        if header.entry_type() == EntryType::Directory {
            let full = staging.join(&path);
            let mode = header.mode().unwrap_or(0o755);
            // Keep it writable until every entry inside it is in place.
            let _ = fs::set_permissions(&full, fs::Permissions::from_mode(mode | 0o700));
            dirs.push(DirMeta {
                path: full,
                mode,
                mtime: header.mtime().unwrap_or(0),
            });
        }
    }
    // Read to the very end: age's final chunk, zstd's checksum and the
    // plaintext size are verified only there.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_error)?;

    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for dir in dirs {
        let set =
            fs::set_permissions(&dir.path, fs::Permissions::from_mode(dir.mode)).and_then(|()| {
                File::open(&dir.path)?
                    .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(dir.mtime))
            });
        if let Err(source) = set {
            return Err(RestoreError::Extract {
                path: dir.path.display().to_string(),
                source,
            });
        }
    }
    Ok(())
}

/// Refuses entries that could escape the target or are not plain files,
/// directories and links.
fn check_entry<R: Read>(path: &Path, entry: &tar::Entry<'_, R>) -> Result<(), RestoreError> {
    let unsafe_entry = |reason| RestoreError::UnsafeEntry {
        path: path.display().to_string(),
        reason,
    };
    check_relative(path).map_err(unsafe_entry)?;
    match entry.header().entry_type() {
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::Directory
        | EntryType::Symlink
        | EntryType::GNUSparse => Ok(()),
        EntryType::Link => {
            let target = entry
                .link_name()
                .map_err(|_| unsafe_entry("its hard link target is unreadable"))?
                .ok_or_else(|| unsafe_entry("its hard link has no target"))?;
            check_relative(&target)
                .map_err(|_| unsafe_entry("it is a hard link to a file outside the target"))
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            Err(unsafe_entry("it is a device or FIFO"))
        }
        _ => Err(unsafe_entry("its entry type is not one sluice writes")),
    }
}

fn check_relative(path: &Path) -> Result<(), &'static str> {
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("it climbs out of the target with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("it has an absolute path"),
        }
    }
    Ok(())
}

fn read_error(source: io::Error) -> RestoreError {
    RestoreError::Archive { source }
}
