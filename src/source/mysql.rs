//! The `mysql` source: one MariaDB or MySQL database with `mariadb-dump` (or
//! `mysqldump`), as plain SQL, without `--databases` so that a restore can
//! target another name.
//!
//! A password reaches the tools only through `--defaults-extra-file` on a
//! pipe (`/dev/fd/N`): never their command line, a log line or a manifest.

use std::{
    io::Write,
    os::fd::{AsRawFd, OwnedFd},
};

use serde::Deserialize;

use super::{
    SourceError,
    command::{dump_stdout, query_number},
    endpoint::{Endpoint, Keys},
};
use crate::Cancel;

/// A MariaDB or MySQL database to dump.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MysqlSource {
    /// The source's name in its set.
    #[serde(deserialize_with = "crate::config::env_string")]
    pub name: String,
    /// `mysql://user:password@host:port/database`; the keys below override its parts.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub url: Option<String>,
    /// Server host (the client's default, usually the local socket, when unset).
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub host: Option<String>,
    /// Server port.
    #[serde(default)]
    pub port: Option<u16>,
    /// User to connect as.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub user: Option<String>,
    /// The database.
    #[serde(default, deserialize_with = "crate::config::env_opt_string")]
    pub database: Option<String>,
    /// A rules file: also write `<name>.anon.sql.zst.age`, an anonymized
    /// copy from the same dump, encrypted to `anonymized-recipients` only.
    /// A relative path is relative to the config file.
    #[serde(default, deserialize_with = "crate::config::env_opt_path")]
    pub anonymize: Option<std::path::PathBuf>,
    /// `mariadb` (mariadb-dump and mariadb) or `mysql` (mysqldump and
    /// mysql); by default whichever is installed, MariaDB's first.
    #[serde(default)]
    pub tools: Option<MysqlTools>,
    /// SQL queries that must each return true on a restored copy, run by
    /// `verify --drill` (`checks = ["SELECT count(*) > 0 FROM users"]`).
    #[serde(default, deserialize_with = "crate::config::env_strings")]
    pub checks: Vec<String>,
}

/// Which family of client tools to run; a dump is restored with the client
/// of the same family (MariaDB's dumps start with a line MySQL's client
/// rejects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MysqlTools {
    /// `mariadb-dump` and `mariadb`.
    Mariadb,
    /// `mysqldump` and `mysql`.
    Mysql,
}

impl MysqlTools {
    /// The family installed here, MariaDB's first.
    pub fn detect() -> Self {
        let on_path = |name: &str| {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(name).is_file())
            })
        };
        if on_path("mariadb-dump") || !on_path("mysqldump") {
            MysqlTools::Mariadb
        } else {
            MysqlTools::Mysql
        }
    }

    /// The dump tool.
    pub fn dump(self) -> &'static str {
        match self {
            MysqlTools::Mariadb => "mariadb-dump",
            MysqlTools::Mysql => "mysqldump",
        }
    }

    /// The client.
    pub fn client(self) -> &'static str {
        match self {
            MysqlTools::Mariadb => "mariadb",
            MysqlTools::Mysql => "mysql",
        }
    }
}

/// A MariaDB/MySQL database to connect to: URL and keys merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MysqlTarget {
    endpoint: Endpoint,
}

impl MysqlTarget {
    /// The URL schemes of a MariaDB/MySQL database.
    pub const SCHEMES: [&str; 2] = ["mysql", "mariadb"];

    /// Parses `mysql://user:password@host:port/database` (or `mariadb://`).
    /// Errors never repeat the URL, which may hold a password.
    pub fn parse_url(url: &str) -> Result<Self, String> {
        let (endpoint, parsed) = Endpoint::parse(url, &Self::SCHEMES, "MySQL")?;
        if parsed.query().is_some() {
            return Err(
                "connection options in a mysql:// URL are not supported; put them (ssl-ca, ssl-verify-server-cert, …) in the client's option file, [client] section".to_owned(),
            );
        }
        Ok(Self { endpoint })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.endpoint.database
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            endpoint: self.endpoint.with_database(database),
        }
    }

    /// Connection arguments, the password file first (the tools require
    /// `--defaults-extra-file` to come first). Keep the returned pipe open
    /// until the tool has started.
    pub fn args(&self) -> Result<(Vec<String>, Option<OwnedFd>), std::io::Error> {
        let e = &self.endpoint;
        let mut args = Vec::new();
        let mut pipe = None;
        if let Some(password) = &e.password {
            if password.contains(['\n', '\r']) || password.len() > 4096 {
                return Err(std::io::Error::other(
                    "the password has a line break or is longer than 4096 bytes, which an option file cannot carry",
                ));
            }
            let (fd, path) = secret_pipe(&format!(
                "[client]\npassword=\"{}\"\n",
                password.replace('\\', "\\\\").replace('"', "\\\"")
            ))?;
            args.push(format!("--defaults-extra-file={path}"));
            pipe = Some(fd);
        }
        if let Some(host) = &e.host {
            args.push(format!("--host={host}"));
            args.push("--protocol=tcp".to_owned());
        }
        if let Some(port) = e.port {
            args.push(format!("--port={port}"));
        }
        if let Some(user) = &e.user {
            args.push(format!("--user={user}"));
        }
        Ok((args, pipe))
    }

    /// `mysql://user@host:port/db`, without the password, for messages.
    pub fn display(&self) -> String {
        self.endpoint.display("mysql")
    }
}

/// A pipe holding `content`, readable by a child as `/dev/fd/N`: the write
/// end is filled and closed at once (the content fits the pipe's buffer),
/// the read end is inheritable and returned.
fn secret_pipe(content: &str) -> std::io::Result<(OwnedFd, String)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::empty())?;
    let mut write = std::fs::File::from(write);
    write.write_all(content.as_bytes())?;
    drop(write);
    let path = format!("/dev/fd/{}", read.as_raw_fd());
    Ok((read, path))
}

impl MysqlSource {
    /// A source dumping `database` (connection from the client's defaults).
    pub fn new(name: &str, database: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: None,
            host: None,
            port: None,
            user: None,
            database: Some(database.to_owned()),
            tools: None,
            anonymize: None,
            checks: Vec::new(),
        }
    }

    /// A source dumping exactly `target` with `tools` (for safety backups).
    pub fn for_target(name: &str, target: &MysqlTarget, tools: MysqlTools) -> Self {
        let e = &target.endpoint;
        let mut url = url::Url::parse("mysql://localhost/").expect("valid");
        let _ = url.set_username(e.user.as_deref().unwrap_or(""));
        let _ = url.set_password(e.password.as_deref());
        let _ = url.set_host(e.host.as_deref());
        let _ = url.set_port(e.port);
        Self {
            name: name.to_owned(),
            url: Some(url.to_string()),
            host: e.host.clone(),
            port: e.port,
            user: e.user.clone(),
            database: Some(e.database.clone()),
            tools: Some(tools),
            anonymize: None,
            checks: Vec::new(),
        }
    }

    /// The database this source dumps: URL and keys merged.
    pub fn target(&self) -> Result<MysqlTarget, String> {
        let mut target = match &self.url {
            Some(url) => MysqlTarget::parse_url(url)?,
            None => MysqlTarget::default(),
        };
        target.endpoint = target.endpoint.overridden(Keys {
            host: &self.host,
            port: self.port,
            user: &self.user,
            database: &self.database,
        })?;
        Ok(target)
    }

    /// The tool family in use.
    pub fn tools(&self) -> MysqlTools {
        self.tools.unwrap_or_else(MysqlTools::detect)
    }

    /// The database's tables' data and index size, or none when it cannot
    /// be asked.
    pub fn size_hint(&self) -> Option<u64> {
        let target = self.target().ok()?;
        let (connection, pipe) = target.args().ok()?;
        let mut argv = vec![self.tools().client().to_owned()];
        argv.extend(connection);
        argv.extend([
            "--batch".to_owned(),
            "--skip-column-names".to_owned(),
            "--connect-timeout=10".to_owned(),
            format!("--database={}", target.database()),
            "--execute=SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = DATABASE()".to_owned(),
        ]);
        let hint = query_number(&argv, &[]);
        drop(pipe);
        hint
    }

    /// Runs the dump tool and copies its output to `out`.
    pub fn dump(&self, out: &mut dyn Write, cancel: &Cancel) -> Result<(), SourceError> {
        let config_err = |reason: String| SourceError::Config {
            source_name: self.name.clone(),
            reason,
        };
        let target = self.target().map_err(config_err)?;
        let (connection, pipe) = target
            .args()
            .map_err(|e| config_err(format!("could not pass the password: {e}")))?;
        let mut argv = vec![self.tools().dump().to_owned()];
        argv.extend(connection);
        argv.extend(
            [
                "--single-transaction",
                "--routines",
                "--triggers",
                "--events",
                "--hex-blob",
                "--max-allowed-packet=1G",
            ]
            .map(str::to_owned),
        );
        argv.push("--".to_owned());
        argv.push(target.database().to_owned());
        let dumped = dump_stdout(&argv, &[], out, cancel);
        drop(pipe);
        dumped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_goes_through_a_pipe_not_argv() {
        let mut source = MysqlSource::new("db", "shop");
        source.url = Some("mysql://app:pa%22ss@db.example:3307/ignored".into());
        let target = source.target().unwrap();
        assert_eq!(target.database(), "shop");
        let (args, pipe) = target.args().unwrap();
        assert!(
            args[0].starts_with("--defaults-extra-file=/dev/fd/"),
            "{args:?}"
        );
        assert!(!args.join(" ").contains("pa\"ss"));
        let mut content = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(pipe.unwrap()), &mut content)
            .unwrap();
        assert_eq!(content, "[client]\npassword=\"pa\\\"ss\"\n");
        assert!(!target.display().contains("pa"));
    }
}
