//! A file that appears under its name only when complete: written as
//! `.<name>.sluice-partial-<tag>` beside it (mode 0600, never over an
//! existing file), synced, then renamed into place, or removed.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// A new file being written under a temporary name.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    partial: PathBuf,
    path: PathBuf,
}

impl PartialFile {
    /// Creates the temporary file for `path`; `tag` keeps concurrent writers
    /// apart. Fails if `path` already exists.
    pub fn create(path: &Path, tag: &str) -> io::Result<Self> {
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "`{}` already exists, and sluice does not overwrite it",
                    path.display()
                ),
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = path.with_file_name(format!(".{name}.sluice-partial-{tag}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        Ok(Self {
            file,
            partial,
            path: path.to_owned(),
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary name, for messages.
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Syncs the data to disk; the file is still under its temporary name.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Moves the synced file to its name.
    pub fn publish(self) -> io::Result<()> {
        fs::rename(&self.partial, &self.path)
    }

    /// Removes the temporary file.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io::Write, os::unix::fs::PermissionsExt};

    #[test]
    fn the_file_appears_only_when_published_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.sql");
        let mut partial = PartialFile::create(&path, "t").unwrap();
        partial.file().write_all(b"data").unwrap();
        partial.sync().unwrap();
        assert!(!path.exists());
        assert_eq!(
            fs::metadata(partial.partial())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        partial.publish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"data");
        assert!(PartialFile::create(&path, "t").is_err());

        let other = dir.path().join("other");
        let partial = PartialFile::create(&other, "t").unwrap();
        partial.discard();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
