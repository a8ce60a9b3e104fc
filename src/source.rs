//! What a backup reads: each source writes its dump to a writer on a blocking
//! thread. `command` runs any argv and takes its stdout; `files` builds a tar
//! of a directory in process.

pub mod command;
mod endpoint;
pub mod files;
pub mod mysql;
pub mod postgres;

use std::io::{self, Write};

use serde::Deserialize;

use crate::{Cancel, child::ChildError};

pub use command::CommandSource;
pub use files::FilesSource;
pub use mysql::MysqlSource;
pub use postgres::PostgresSource;

/// One source of a set, as configured (`[[sets.NAME.sources]]`) or given
/// with `--source NAME=KIND:ARG`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// Any program's stdout.
    Command(CommandSource),
    /// A directory, as tar.
    Files(FilesSource),
    /// A PostgreSQL database, with pg_dump.
    Postgres(PostgresSource),
    /// A MariaDB or MySQL database, with mariadb-dump or mysqldump.
    Mysql(MysqlSource),
}

impl Source {
    /// The source's name in its set.
    pub fn name(&self) -> &str {
        match self {
            Source::Command(s) => &s.name,
            Source::Files(s) => &s.name,
            Source::Postgres(s) => &s.name,
            Source::Mysql(s) => &s.name,
        }
    }

    /// The kind, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Command(_) => "command",
            Source::Files(_) => "files",
            Source::Postgres(_) => "postgres",
            Source::Mysql(_) => "mysql",
        }
    }

    /// What the plaintext is: the `<ext>` of `<source>.<ext>.zst.age`.
    pub fn format(&self) -> &str {
        match self {
            Source::Command(s) => &s.extension,
            Source::Files(_) => "tar",
            Source::Postgres(s) => s.extension(),
            Source::Mysql(_) => "sql",
        }
    }

    /// The stored object's file name.
    pub fn object_name(&self) -> String {
        format!("{}.{}.zst.age", self.name(), self.format())
    }

    /// Writes the whole dump to `out`. Blocking; run it on its own thread.
    pub fn dump(&self, out: &mut dyn Write, cancel: &Cancel) -> Result<(), SourceError> {
        match self {
            Source::Command(s) => s.dump(out, cancel),
            Source::Files(s) => s.dump(out, cancel),
            Source::Postgres(s) => s.dump(out, cancel),
            Source::Mysql(s) => s.dump(out, cancel),
        }
    }

    /// About how many bytes the dump will be, when the source can tell
    /// cheaply (a directory's size, a database's size), so that parts can
    /// be sized before the first one. Blocking.
    pub fn size_hint(&self) -> Option<u64> {
        match self {
            Source::Command(_) => None,
            Source::Files(s) => s.size_hint(),
            Source::Postgres(s) => s.size_hint(),
            Source::Mysql(s) => s.size_hint(),
        }
    }

    /// The anonymization rules file, for sources that write an anonymized copy.
    pub fn anonymize_rules(&self) -> Option<&std::path::Path> {
        match self {
            Source::Postgres(s) => s.anonymize.as_deref(),
            Source::Mysql(s) => s.anonymize.as_deref(),
            Source::Command(_) | Source::Files(_) => None,
        }
    }

    /// Makes relative paths in the source's settings relative to `base`.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        let rules = match self {
            Source::Postgres(s) => &mut s.anonymize,
            Source::Mysql(s) => &mut s.anonymize,
            Source::Command(_) | Source::Files(_) => return,
        };
        if let Some(path) = rules
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }

    /// Parses `NAME=KIND:ARG`: `db=command:pg_dumpall -U postgres`
    /// (ARG split by shell-word rules; no shell runs) or `media=files:/srv/media`.
    pub fn from_flag(flag: &str) -> Result<Self, String> {
        // Errors name the flag without its argument when that is a URL,
        // which may hold a password.
        let shown = match flag.split_once(':') {
            Some((head, arg)) if arg.contains("://") => format!("{head}:…"),
            _ => flag.to_owned(),
        };
        let usage = "expected NAME=KIND:ARG, e.g. media=files:/srv/media, db=postgres:app (or a postgres:// URL), shop=mysql:shop (or a mysql:// URL) or dump=command:\"pg_dumpall -U postgres\"";
        let (name, rest) = flag
            .split_once('=')
            .ok_or_else(|| format!("`{shown}`: {usage}"))?;
        let (kind, arg) = rest
            .split_once(':')
            .ok_or_else(|| format!("`{shown}`: {usage}"))?;
        validate_source_name(name)?;
        let source = match kind {
            "command" => {
                let argv = shell_words::split(arg)
                    .map_err(|e| format!("`{shown}`: cannot split the command ({e})"))?;
                if argv.is_empty() {
                    return Err(format!("`{shown}`: the command is empty"));
                }
                Source::Command(CommandSource::new(name, argv))
            }
            "files" => {
                if arg.is_empty() {
                    return Err(format!("`{shown}`: the directory is empty"));
                }
                Source::Files(FilesSource::new(name, arg))
            }
            "postgres" => {
                let mut source = PostgresSource::new(name, arg);
                if arg.contains("://") {
                    source.url = Some(arg.to_owned());
                    source.database = None;
                }
                source.target().map_err(|e| format!("`{name}`: {e}"))?;
                Source::Postgres(source)
            }
            "mysql" => {
                let mut source = MysqlSource::new(name, arg);
                if arg.contains("://") {
                    source.url = Some(arg.to_owned());
                    source.database = None;
                }
                source.target().map_err(|e| format!("`{name}`: {e}"))?;
                Source::Mysql(source)
            }
            other => {
                return Err(format!(
                    "`{shown}`: unknown source kind `{other}`; this version knows `command`, `files`, `postgres` and `mysql`"
                ));
            }
        };
        Ok(source)
    }
}

/// Checks a source name: it becomes part of an object's file name.
pub fn validate_source_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid source name `{name}`: use letters, digits, `_` and `-`, starting with a letter or digit"
        ))
    }
}

/// A source failed to produce its dump.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The dump command could not start or failed.
    #[error(transparent)]
    Command(#[from] ChildError),
    /// Reading the command's output failed.
    #[error("could not read the output of `{program}`: {source}")]
    ReadOutput {
        /// argv[0].
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// A file or directory of a `files` source could not be read.
    #[error(
        "could not read `{path}`: {source}. {}",
        if source.kind() == io::ErrorKind::NotFound {
            "Check the source's `path`"
        } else {
            "Give sluice read access to it, or add it to the source's `exclude`"
        }
    )]
    Unreadable {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A `files` source's path is not a directory.
    #[error("`{path}` is not a directory: a `files` source backs up a directory")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// An `exclude` pattern is not a valid glob.
    #[error("invalid exclude pattern `{pattern}`: {reason}")]
    BadExclude {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// The next stage stopped taking data, or writing the archive failed.
    #[error("could not pass the dump on: {0}")]
    Output(io::Error),
    /// A source's settings cannot be used.
    #[error("source `{source_name}`: {reason}")]
    Config {
        /// The source.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The anonymized copy was refused or failed.
    #[error(transparent)]
    Anonymize(#[from] crate::anonymize::Error),
    /// pg_dump (or pg_dumpall) is older than the server.
    #[error(
        "{tool} is older than the server ({versions}); install the client tools of {wanted} and put them first on PATH"
    )]
    VersionMismatch {
        /// `pg_dump` or `pg_dumpall`.
        tool: String,
        /// The tool's own words naming both versions:
        /// `server version: 16.2; pg_dump version: 15.4`.
        versions: String,
        /// Which client tools to install: `PostgreSQL 16 (Debian:
        /// postgresql-client-16)`, or the server's major version in words.
        wanted: String,
    },
    /// The run was cancelled.
    #[error("interrupted")]
    Interrupted,
}
