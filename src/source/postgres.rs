//! The `postgres` source: `pg_dump` of one database (or some of its schemas),
//! in custom format without pg_dump's own compression by default (sluice
//! compresses; pg_dump's gzip runs at a sixth of the speed).
//!
//! Connection settings come from `url`, the `host`/`port`/`user`/`database`
//! keys, or pg_dump's own environment (`PGHOST`, …) and `~/.pgpass`. A
//! password only ever reaches pg_dump through `PGPASSWORD` in its
//! environment: never its command line, a log line, an error or a manifest.

use std::{io::Write, process::Stdio};

use serde::Deserialize;

use super::{SourceError, command::copy_stdout};
use crate::{
    Cancel,
    child::{CheckedChild, Echo},
};

/// A PostgreSQL database to dump.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PostgresSource {
    /// The source's name in its set.
    #[serde(deserialize_with = "crate::config::env_string")]
    pub name: String,
    /// `postgres://user:password@host:port/database`; the keys below override its parts.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub url: Option<String>,
    /// Server host or socket directory.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub host: Option<String>,
    /// Server port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Role to connect as.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub user: Option<String>,
    /// The database.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub database: Option<String>,
    /// Only these schemas (`schemas = ["infinite-prod"]`); all by default.
    #[serde(default, deserialize_with = "crate::config::env_strings")]
    pub schemas: Vec<String>,
    /// Tables left out (pg_dump `--exclude-table` patterns).
    #[serde(default, deserialize_with = "crate::config::env_strings")]
    pub exclude_tables: Vec<String>,
    /// `custom` (default; restored with pg_restore) or `plain` (SQL, psql).
    #[serde(default)]
    pub format: PgFormat,
    /// A rules file: also write `<name>.anon.sql.zst.age`, an anonymized
    /// copy from the same dump, encrypted to `anonymized-recipients` only.
    /// A relative path is relative to the config file.
    #[serde(default, deserialize_with = "crate::config::env_opt_path")]
    pub anonymize: Option<std::path::PathBuf>,
    /// Also store the cluster's roles and tablespaces (`pg_dumpall
    /// --globals-only`) as `<name>.globals.sql.zst.age`; restore creates the
    /// roles that do not exist yet and leaves existing ones alone.
    #[serde(default)]
    pub globals: bool,
    /// With `globals`: leave role passwords out (`--no-role-passwords`),
    /// for managed servers that do not let anyone read them.
    #[serde(default)]
    pub no_role_passwords: bool,
    /// How long pg_dump waits for a table lock before failing the run, so a
    /// locked table never hangs a nightly backup (default `5min`).
    #[serde(default = "default_lock_wait")]
    pub lock_wait_timeout: String,
}

fn default_lock_wait() -> String {
    "5min".to_owned()
}

/// pg_dump's output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PgFormat {
    /// `pg_dump -Fc -Z0`, restored by `pg_restore`.
    #[default]
    Custom,
    /// Plain SQL, restored by `psql`.
    Plain,
}

/// A PostgreSQL database to connect to: URL and keys merged. Unset parts
/// fall back to libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`,
/// `PGPASSWORD`, `~/.pgpass`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgTarget {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    /// libpq settings from the URL's query (`?sslmode=verify-full`), as
    /// environment variables.
    settings: Vec<(String, String)>,
    /// The database name.
    pub database: String,
}

impl PostgresSource {
    /// The database this source dumps: URL and keys merged; fails when no
    /// database is named.
    pub fn target(&self) -> Result<PgTarget, String> {
        let mut target = match &self.url {
            Some(url) => PgTarget::parse_url(url)?,
            None => PgTarget::default(),
        };
        if self.host.is_some() {
            target.host.clone_from(&self.host);
        }
        if self.port.is_some() {
            target.port = self.port;
        }
        if self.user.is_some() {
            target.user.clone_from(&self.user);
        }
        if let Some(db) = &self.database {
            target.database.clone_from(db);
        }
        if target.database.is_empty() {
            return Err("no database: set `database` (or a URL ending in /DBNAME)".to_owned());
        }
        Ok(target)
    }
}

impl PgTarget {
    /// Parses `postgres://user:password@host:port/database` (or
    /// `postgresql://`). Errors never repeat the URL, which may hold a password.
    pub fn parse_url(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid PostgreSQL URL ({e})"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "a PostgreSQL URL starts with postgres://, not {}://",
                parsed.scheme()
            ));
        }
        let decode = |s: &str| percent_decode(s);
        let mut settings = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let variable = match key.as_ref() {
                "sslmode" => "PGSSLMODE",
                "sslrootcert" => "PGSSLROOTCERT",
                "sslcert" => "PGSSLCERT",
                "sslkey" => "PGSSLKEY",
                "sslcrl" => "PGSSLCRL",
                "connect_timeout" => "PGCONNECT_TIMEOUT",
                "application_name" => "PGAPPNAME",
                "options" => "PGOPTIONS",
                "target_session_attrs" => "PGTARGETSESSIONATTRS",
                "host" => "PGHOST",
                other => {
                    return Err(format!(
                        "unknown connection option `{other}` in the PostgreSQL URL; sluice passes sslmode, sslrootcert, sslcert, sslkey, sslcrl, connect_timeout, application_name, options, target_session_attrs and host"
                    ));
                }
            };
            settings.push((variable.to_owned(), value.into_owned()));
        }
        Ok(Self {
            settings,
            host: parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            port: parsed.port(),
            user: Some(parsed.username())
                .filter(|u| !u.is_empty())
                .map(decode),
            password: parsed.password().map(decode),
            database: decode(parsed.path().trim_start_matches('/')),
        })
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    /// `-h`, `-p`, `-U` arguments for libpq tools (never the password).
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(host) = &self.host {
            args.push(format!("--host={host}"));
        }
        if let Some(port) = self.port {
            args.push(format!("--port={port}"));
        }
        if let Some(user) = &self.user {
            args.push(format!("--username={user}"));
        }
        args
    }

    /// Environment for libpq tools: the URL's settings and its password.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.settings.clone();
        env.extend(
            self.password
                .iter()
                .map(|p| ("PGPASSWORD".to_owned(), p.clone())),
        );
        env
    }

    /// `postgres://user@host:port/db`, without the password, for messages.
    pub fn display(&self) -> String {
        format!(
            "postgres://{}{}{}/{}",
            self.user
                .as_deref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default(),
            self.host.as_deref().unwrap_or(""),
            self.port.map(|p| format!(":{p}")).unwrap_or_default(),
            self.database
        )
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl PostgresSource {
    /// A source dumping `database` (connection from the environment).
    pub fn new(name: &str, database: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: None,
            host: None,
            port: None,
            user: None,
            database: Some(database.to_owned()),
            schemas: Vec::new(),
            anonymize: None,
            globals: false,
            no_role_passwords: false,
            exclude_tables: Vec::new(),
            format: PgFormat::default(),
            lock_wait_timeout: default_lock_wait(),
        }
    }

    /// `pgdump` for the custom format, `sql` for plain.
    pub fn extension(&self) -> &'static str {
        match self.format {
            PgFormat::Custom => "pgdump",
            PgFormat::Plain => "sql",
        }
    }

    /// Runs `pg_dumpall --globals-only` (roles and tablespaces) and copies
    /// its SQL to `out`.
    pub fn dump_globals(&self, out: &mut dyn Write, cancel: &Cancel) -> Result<(), SourceError> {
        let target = self.target().map_err(|reason| SourceError::Config {
            source_name: self.name.clone(),
            reason,
        })?;
        let mut argv = vec![
            "pg_dumpall".to_owned(),
            "--globals-only".to_owned(),
            "--no-password".to_owned(),
        ];
        if self.no_role_passwords {
            argv.push("--no-role-passwords".to_owned());
        }
        argv.extend(target.args());
        argv.push(format!("--database={}", target.database));
        let mut child = CheckedChild::spawn(
            &argv,
            Stdio::null(),
            Stdio::piped(),
            &target.env(),
            Echo::Debug,
            cancel,
        )?;
        copy_stdout(&mut child, out, cancel)?;
        Ok(child.wait_checked()?)
    }

    /// Runs pg_dump and copies its output to `out`; fails with pg_dump's
    /// own message unless it exits 0.
    pub fn dump(&self, out: &mut dyn Write, cancel: &Cancel) -> Result<(), SourceError> {
        let target = self.target().map_err(|reason| SourceError::Config {
            source_name: self.name.clone(),
            reason,
        })?;
        let mut argv = vec!["pg_dump".to_owned()];
        argv.extend(target.args());
        match self.format {
            PgFormat::Custom => {
                argv.extend(["--format=custom".to_owned(), "--compress=0".to_owned()])
            }
            PgFormat::Plain => argv.push("--format=plain".to_owned()),
        }
        argv.push(format!("--lock-wait-timeout={}", self.lock_wait_timeout));
        argv.extend(self.schemas.iter().map(|s| format!("--schema={s}")));
        argv.extend(
            self.exclude_tables
                .iter()
                .map(|t| format!("--exclude-table={t}")),
        );
        argv.push("--no-password".to_owned());
        argv.push(format!("--dbname={}", target.database));
        let mut child = CheckedChild::spawn(
            &argv,
            Stdio::null(),
            Stdio::piped(),
            &target.env(),
            Echo::Debug,
            cancel,
        )?;
        copy_stdout(&mut child, out, cancel)?;
        child.wait_checked().map_err(explain_version_mismatch)
    }
}

/// pg_dump refuses a newer server with "server version mismatch"; say what
/// to do about it.
fn explain_version_mismatch(e: crate::child::ChildError) -> SourceError {
    if let crate::child::ChildError::Failed { stderr, .. } = &e
        && stderr.contains("server version mismatch")
    {
        return SourceError::VersionMismatch {
            detail: stderr
                .lines()
                .find(|l| l.contains("version"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
    }
    SourceError::Command(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_taken_apart_and_keys_override_it() {
        let mut source = PostgresSource::new("db", "other");
        source.url = Some("postgres://app%40corp:s3cr%2Ft@db.example:6543/shop".into());
        let t = source.target().unwrap();
        assert_eq!(
            t.args(),
            ["--host=db.example", "--port=6543", "--username=app@corp"]
        );
        assert_eq!(t.env(), [("PGPASSWORD".to_owned(), "s3cr/t".to_owned())]);
        assert_eq!(t.database, "other");
        assert!(!t.display().contains("s3cr"));
        assert!(!format!("{:?}", t.args()).contains("s3cr"));
    }

    #[test]
    fn url_settings_reach_libpq_and_unknown_ones_are_refused() {
        let t =
            PgTarget::parse_url("postgres://u@h/db?sslmode=verify-full&connect_timeout=5").unwrap();
        assert_eq!(
            t.env(),
            [
                ("PGSSLMODE".to_owned(), "verify-full".to_owned()),
                ("PGCONNECT_TIMEOUT".to_owned(), "5".to_owned())
            ]
        );
        let err = PgTarget::parse_url("postgres://u@h/db?sslmod=require").unwrap_err();
        assert!(err.contains("`sslmod`"), "{err}");
    }

    #[test]
    fn a_missing_database_is_an_error() {
        let mut source = PostgresSource::new("db", "x");
        source.database = None;
        assert!(source.target().is_err());
        let err = PgTarget::parse_url("mysql://x/y").unwrap_err();
        assert!(err.contains("postgres://"), "{err}");
    }
}
