//! Which object of a backup goes where: the configured target of each
//! source, or `--into`; a PostgreSQL source's roles before its database.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{RestoreError, mysql, postgres};
use crate::{
    catalog::{Manifest, ObjectRecord},
    config::SetPlan,
    source::{
        Source,
        mysql::{MysqlTarget, MysqlTools},
        postgres::PgTarget,
    },
};

/// Where a restored object goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A directory whose contents the backup replaces.
    Directory(PathBuf),
    /// A command whose stdin receives the plaintext.
    Command(Vec<String>),
    /// A new file holding the plaintext.
    File(PathBuf),
    /// This process's stdout.
    Stdout,
    /// A PostgreSQL database, replaced by a rename swap.
    Postgres(PgTarget),
    /// A PostgreSQL server's roles: missing ones are created.
    PostgresGlobals(PgTarget),
    /// A MariaDB/MySQL database, applied after a verification pass.
    Mysql(MysqlTarget, MysqlTools),
    /// Nowhere: the stream is only verified.
    Verify,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Directory(p) | Target::File(p) => write!(f, "{}", p.display()),
            Target::Command(argv) => write!(f, "`{}`", shell_words::join(argv)),
            Target::Stdout => f.write_str("stdout"),
            Target::Postgres(t) => f.write_str(&t.display()),
            Target::PostgresGlobals(t) => {
                write!(f, "the roles of {}", t.with_database("").display())
            }
            Target::Mysql(t, _) => f.write_str(&t.display()),
            Target::Verify => f.write_str("verification only"),
        }
    }
}

/// One object of a backup and where it goes.
#[derive(Clone, Debug)]
pub struct Step {
    /// The object.
    pub object: ObjectRecord,
    /// Its target.
    pub target: Target,
}

impl Step {
    /// Whether restoring would replace something that exists, so the user
    /// must confirm (`--yes`, or typing the target's name at a terminal).
    pub fn is_destructive(&self) -> Result<bool, RestoreError> {
        Ok(match &self.target {
            Target::Directory(p) => fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()),
            Target::Command(_) => true,
            Target::Postgres(t) => postgres::exists(t)?,
            Target::Mysql(t, tools) => mysql::exists(t, *tools)?,
            Target::File(_) | Target::Stdout | Target::Verify | Target::PostgresGlobals(_) => false,
        })
    }

    /// The name a user types to confirm replacing the target.
    pub fn confirmation_name(&self) -> String {
        match &self.target {
            Target::Directory(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            Target::Postgres(t) => t.database().to_owned(),
            Target::Mysql(t, _) => t.database().to_owned(),
            _ => self.object.source.clone(),
        }
    }
}

/// The format of a PostgreSQL source's roles and tablespaces object.
pub const GLOBALS_FORMAT: &str = "globals.sql";

/// Decides where each object of `manifest` goes: every object (in the set's
/// configured source order, then the manifest's), or the one `--source`
/// names; `into` overrides the target of a single `files` object.
pub fn plan(
    manifest: &Manifest,
    set: &SetPlan,
    only: Option<&str>,
    into: Option<&Path>,
    anonymized: bool,
) -> Result<Vec<Step>, RestoreError> {
    let backup = format!("{}@{}", manifest.set, manifest.id);
    let mut objects: Vec<&ObjectRecord> = manifest
        .objects
        .iter()
        .filter(|o| o.anonymized == anonymized)
        .collect();
    if let Some(name) = only {
        objects.retain(|o| o.source == name);
        if objects.is_empty() {
            return Err(RestoreError::UnknownSource {
                backup,
                name: name.to_owned(),
                available: manifest
                    .objects
                    .iter()
                    .map(|o| o.source.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    // Config order; a source's roles (globals) before its database.
    let position = |o: &&ObjectRecord| {
        let index = set
            .sources
            .iter()
            .position(|s| s.name() == o.source)
            .unwrap_or(usize::MAX);
        (index, o.format != GLOBALS_FORMAT)
    };
    objects.sort_by_key(position);
    let mut sources: Vec<&str> = objects.iter().map(|o| o.source.as_str()).collect();
    sources.dedup();
    if into.is_some() && sources.len() > 1 {
        return Err(RestoreError::NoTarget {
            name: objects
                .iter()
                .map(|o| o.source.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            hint: "--into names one target; pick the source with --source NAME".to_owned(),
        });
    }
    let steps = objects
        .into_iter()
        .map(|object| {
            let configured = set.sources.iter().find(|s| s.name() == object.source);
            let target = target_for(object, configured, into)?;
            Ok(Step {
                object: object.clone(),
                target,
            })
        })
        .collect::<Result<Vec<_>, RestoreError>>()?;
    if steps.iter().filter(|s| s.target == Target::Stdout).count() > 1 {
        return Err(RestoreError::NoTarget {
            name: steps
                .iter()
                .map(|s| s.object.source.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            hint: "several sources would go to stdout; pick one with --source NAME".to_owned(),
        });
    }
    Ok(steps)
}

fn target_for(
    object: &ObjectRecord,
    configured: Option<&Source>,
    into: Option<&Path>,
) -> Result<Target, RestoreError> {
    if object.format == GLOBALS_FORMAT {
        // The roles go to the server the database goes to.
        let database = ObjectRecord {
            format: "pgdump".to_owned(),
            ..object.clone()
        };
        return target_for(&database, configured, into).map(|target| match target {
            Target::Postgres(server) => Target::PostgresGlobals(server),
            other => other,
        });
    }
    let no_target = |hint: &str| RestoreError::NoTarget {
        name: object.source.clone(),
        hint: hint.to_owned(),
    };
    let into_text = into.map(|p| p.to_string_lossy().into_owned());
    match (
        object.source_kind.as_str(),
        into_text.as_deref(),
        configured,
    ) {
        ("postgres", Some(into), configured) => {
            if into.contains("://") {
                return PgTarget::parse_url(into)
                    .map(Target::Postgres)
                    .map_err(|e| no_target(&e));
            }
            let base = match configured {
                Some(Source::Postgres(s)) => s.target().ok(),
                _ => None,
            };
            return Ok(Target::Postgres(
                base.unwrap_or_default().with_database(into),
            ));
        }
        ("postgres", None, Some(Source::Postgres(s))) => {
            return s.target().map(Target::Postgres).map_err(|e| no_target(&e));
        }
        ("postgres", None, _) => {
            return Err(no_target(
                "pass --into postgres://user@host:port/DB (or a database name)",
            ));
        }
        ("mysql", Some(into), configured) => {
            let (base, tools) = match configured {
                Some(Source::Mysql(s)) => (s.target().ok(), s.tools()),
                _ => (None, MysqlTools::detect()),
            };
            if into.contains("://") {
                return MysqlTarget::parse_url(into)
                    .map(|t| Target::Mysql(t, tools))
                    .map_err(|e| no_target(&e));
            }
            return Ok(Target::Mysql(
                base.unwrap_or_default().with_database(into),
                tools,
            ));
        }
        ("mysql", None, Some(Source::Mysql(s))) => {
            return s
                .target()
                .map(|t| Target::Mysql(t, s.tools()))
                .map_err(|e| no_target(&e));
        }
        ("mysql", None, _) => {
            return Err(no_target(
                "pass --into mysql://user@host:port/DB (or a database name)",
            ));
        }
        _ => {}
    }
    match (object.source_kind.as_str(), into, configured) {
        ("files", Some(dir), _) => Ok(Target::Directory(dir.to_owned())),
        ("files", None, Some(Source::Files(s))) => Ok(Target::Directory(s.path.clone())),
        ("files", None, _) => Err(no_target("pass --into DIR")),
        ("command", Some(_), _) => Err(no_target(
            "a command source restores through its configured `restore` command or to stdout; to write its plaintext to a file use `sluice fetch -o FILE`",
        )),
        ("command", None, Some(Source::Command(s))) => {
            Ok(s.restore.clone().map_or(Target::Stdout, Target::Command))
        }
        ("command", None, _) => Ok(Target::Stdout),
        (kind, ..) => Err(no_target(&format!(
            "its kind `{kind}` is not one this version of sluice restores; use `sluice fetch` for its plaintext"
        ))),
    }
}
