//! The `postgres` source: `pg_dump` of one database (or some of its schemas),
//! in custom format without pg_dump's own compression by default (sluice
//! compresses; pg_dump's gzip runs at a sixth of the speed).
//!
//! Connection settings come from `url`, the `host`/`port`/`user`/`database`
//! keys, or pg_dump's own environment (`PGHOST`, …) and `~/.pgpass`. A
//! password only ever reaches pg_dump through `PGPASSWORD` in its
//! environment: never its command line, a log line, an error or a manifest.

use std::io::Write;

use serde::Deserialize;

use super::{
    SourceError,
    command::{dump_stdout, query_number},
    endpoint::{Endpoint, Keys},
};
use crate::Cancel;

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
    /// SQL queries that must each return true on a restored copy, run by
    /// `verify --drill` (`checks = ["SELECT count(*) > 0 FROM users"]`).
    #[serde(default, deserialize_with = "crate::config::env_strings")]
    pub checks: Vec<String>,
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
    endpoint: Endpoint,
    /// libpq settings from the URL's query (`?sslmode=verify-full`), as
    /// environment variables.
    settings: Vec<(String, String)>,
}

impl PostgresSource {
    /// The database this source dumps: URL and keys merged; fails when no
    /// database is named.
    pub fn target(&self) -> Result<PgTarget, String> {
        let mut target = match &self.url {
            Some(url) => PgTarget::parse_url(url)?,
            None => PgTarget::default(),
        };
        target.endpoint = target.endpoint.overridden(Keys {
            host: &self.host,
            port: self.port,
            user: &self.user,
            database: &self.database,
        })?;
        Ok(target)
    }
}

impl PgTarget {
    /// The URL schemes of a PostgreSQL database.
    pub const SCHEMES: [&str; 2] = ["postgres", "postgresql"];

    /// Parses `postgres://user:password@host:port/database` (or
    /// `postgresql://`). Errors never repeat the URL, which may hold a password.
    pub fn parse_url(url: &str) -> Result<Self, String> {
        let (endpoint, parsed) = Endpoint::parse(url, &Self::SCHEMES, "PostgreSQL")?;
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
        Ok(Self { endpoint, settings })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.endpoint.database
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            endpoint: self.endpoint.with_database(database),
            settings: self.settings.clone(),
        }
    }

    /// `-h`, `-p`, `-U` arguments for libpq tools (never the password).
    pub fn args(&self) -> Vec<String> {
        let e = &self.endpoint;
        let mut args = Vec::new();
        if let Some(host) = &e.host {
            args.push(format!("--host={host}"));
        }
        if let Some(port) = e.port {
            args.push(format!("--port={port}"));
        }
        if let Some(user) = &e.user {
            args.push(format!("--username={user}"));
        }
        args
    }

    /// Environment for libpq tools: the URL's settings and its password.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.settings.clone();
        env.extend(
            self.endpoint
                .password
                .iter()
                .map(|p| ("PGPASSWORD".to_owned(), p.clone())),
        );
        env
    }

    /// `postgres://user@host:port/db`, without the password, for messages.
    pub fn display(&self) -> String {
        self.endpoint.display("postgres")
    }
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
            checks: Vec::new(),
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
        argv.push(format!("--database={}", target.database()));
        dump_stdout(&argv, &target.env(), out, cancel).map_err(explain_version_mismatch)
    }

    /// The database's size on disk (indexes included, so usually more than
    /// the dump), or none when it cannot be asked.
    pub fn size_hint(&self) -> Option<u64> {
        let target = self.target().ok()?;
        let mut argv = vec!["psql".to_owned(), "-X".to_owned(), "-At".to_owned()];
        argv.extend(target.args());
        argv.extend([
            "--no-password".to_owned(),
            format!("--dbname={}", target.database()),
            "--command=SELECT pg_database_size(current_database())".to_owned(),
        ]);
        let mut env = vec![("PGCONNECT_TIMEOUT".to_owned(), "10".to_owned())];
        env.extend(target.env());
        query_number(&argv, &env)
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
        argv.push(format!("--dbname={}", target.database()));
        dump_stdout(&argv, &target.env(), out, cancel).map_err(explain_version_mismatch)
    }
}

/// pg_dump and pg_dumpall refuse a newer server with "server version
/// mismatch" and a line naming both versions; say that, and which client
/// tools to install.
fn explain_version_mismatch(e: SourceError) -> SourceError {
    if let SourceError::Command(crate::child::ChildError::Failed { stderr, .. }) = &e
        && stderr.contains("server version mismatch")
        && let Some(versions) = versions_line(stderr)
    {
        let server_major = versions
            .strip_prefix("server version: ")
            .and_then(|rest| rest.split(['.', ';', ' ']).next())
            .filter(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()));
        return SourceError::VersionMismatch {
            tool: versions
                .rsplit("; ")
                .next()
                .and_then(|client| client.split(' ').next())
                .unwrap_or("pg_dump")
                .to_owned(),
            versions: versions.to_owned(),
            wanted: match server_major {
                Some(major) => format!("PostgreSQL {major} (Debian: postgresql-client-{major})"),
                None => "the server's major version".to_owned(),
            },
        };
    }
    e
}

/// The line of a version-mismatch message that names both versions,
/// without the tool's prefix: `server version: 16.2; pg_dump version: 15.4`.
/// PostgreSQL 15 and later print it as a detail after the error, earlier
/// releases as an error before it.
fn versions_line(stderr: &str) -> Option<&str> {
    let line = stderr.lines().find(|l| l.contains("server version:"))?;
    let start = line.find("server version:")?;
    Some(line[start..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatch(stderr: &str) -> String {
        let failed = SourceError::Command(crate::child::ChildError::Failed {
            program: "pg_dump".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        });
        explain_version_mismatch(failed).to_string()
    }

    #[test]
    fn a_server_version_mismatch_names_both_versions_and_the_tools_to_install() {
        // PostgreSQL 15 and later: the error, then a detail.
        let message = mismatch(
            "pg_dump: error: aborting because of server version mismatch\n\
             pg_dump: detail: server version: 16.2; pg_dump version: 15.20 (Debian 15.20-0+deb12u1)",
        );
        assert_eq!(
            message,
            "pg_dump is older than the server (server version: 16.2; pg_dump version: 15.20 \
             (Debian 15.20-0+deb12u1)); install the client tools of PostgreSQL 16 \
             (Debian: postgresql-client-16) and put them first on PATH"
        );
        // Up to PostgreSQL 14: the versions first, as an error of their own.
        let message = mismatch(
            "pg_dumpall: error: server version: 17beta1; pg_dumpall version: 14.9\n\
             pg_dumpall: error: aborting because of server version mismatch",
        );
        assert!(
            message.contains("(server version: 17beta1; pg_dumpall version: 14.9)"),
            "{message}"
        );
        assert!(
            message.contains("of the server's major version"),
            "{message}"
        );
    }

    #[test]
    fn other_failures_keep_pg_dumps_own_message() {
        let message = mismatch(
            "pg_dump: error: connection to server failed: FATAL:  database \"x\" does not exist",
        );
        assert!(
            message.contains("database \"x\" does not exist"),
            "{message}"
        );
        assert!(!message.contains("older than the server"), "{message}");
    }

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
        assert_eq!(t.database(), "other");
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
