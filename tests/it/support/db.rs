//! Scratch databases on the local PostgreSQL (127.0.0.1:5432, `postgres`)
//! and MariaDB (127.0.0.1:3306, `root`): unique names, dropped when the
//! guard drops (with every `<name>_sluice_*` database a restore made), and
//! content checksums per table.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    process::{Command, Stdio},
};

/// `t_<8 hex of a hash of tag>_<pid>`: short enough for both engines.
pub fn unique_name(tag: &str) -> String {
    let mut h = DefaultHasher::new();
    tag.hash(&mut h);
    format!("t_{:08x}_{}", h.finish() as u32, std::process::id())
}

/// Environment for sluice and libpq tools to reach the local PostgreSQL.
pub const PG_ENV: [(&str, &str); 2] = [("PGHOST", "127.0.0.1"), ("PGUSER", "postgres")];

/// Runs SQL with psql on `db`; panics with psql's stderr on failure.
pub fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .arg("-c")
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A PostgreSQL database that is dropped, with its restore leftovers, on drop.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn create(tag: &str) -> Self {
        let db = Self {
            name: unique_name(tag),
        };
        db.cleanup();
        psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\" TEMPLATE template0", db.name),
        );
        db
    }

    /// Databases whose name starts with this one's (restores' leftovers).
    pub fn related(&self) -> Vec<String> {
        psql(
            "postgres",
            &format!(
                "SELECT datname FROM pg_database WHERE datname LIKE '{}%' ORDER BY 1",
                self.name
            ),
        )
        .lines()
        .map(str::to_owned)
        .collect()
    }

    fn cleanup(&self) {
        for name in self.related() {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
            );
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Per table (`schema.table`): row count and an md5 over its rows in order.
pub fn pg_checksums(db: &str) -> Vec<String> {
    let tables = psql(
        db,
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    tables
        .lines()
        .map(|t| {
            let row = psql(db, &format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '-') FROM {t} x"));
            format!("{t} {}", row.trim())
        })
        .collect()
}

/// Runs SQL with the mariadb client; panics with its stderr on failure.
pub fn mariadb(db: Option<&str>, sql: &str) -> String {
    let mut cmd = Command::new("mariadb");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-P",
        "3306",
        "-u",
        "root",
        "--batch",
        "--skip-column-names",
        "--max-allowed-packet=1G",
    ]);
    if let Some(db) = db {
        cmd.arg(format!("--database={db}"));
    }
    let out = cmd
        .arg("-e")
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .expect("mariadb runs");
    assert!(
        out.status.success(),
        "mariadb {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A MariaDB database that is dropped on drop.
pub struct MyDb {
    pub name: String,
}

impl MyDb {
    pub fn create(tag: &str) -> Self {
        let db = Self {
            name: unique_name(tag),
        };
        mariadb(
            None,
            &format!(
                "DROP DATABASE IF EXISTS `{0}`; CREATE DATABASE `{0}`",
                db.name
            ),
        );
        db
    }

    /// A name for a database the test does not create itself (a restore
    /// target); dropped on drop too.
    pub fn named(tag: &str) -> Self {
        let db = Self {
            name: unique_name(tag),
        };
        mariadb(None, &format!("DROP DATABASE IF EXISTS `{}`", db.name));
        db
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        mariadb(None, &format!("DROP DATABASE IF EXISTS `{}`", self.name));
    }
}

/// Per table: row count and an md5 over its rows in primary-key order.
pub fn my_checksums(db: &str) -> Vec<String> {
    let tables = mariadb(
        Some(db),
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"
        ),
    );
    tables
        .lines()
        .map(|t| {
            let columns = mariadb(
                Some(db),
                &format!("SET SESSION group_concat_max_len = 1048576; SELECT GROUP_CONCAT(CONCAT('COALESCE(HEX(`', COLUMN_NAME, '`), \\'N\\')') ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{t}'"),
            );
            let row = mariadb(
                Some(db),
                &format!(
                    "SET SESSION group_concat_max_len = 1073741824; SELECT CONCAT(COUNT(*), ' ', COALESCE(MD5(GROUP_CONCAT(h ORDER BY h SEPARATOR ',')), '-')) FROM (SELECT MD5(CONCAT_WS('|', {})) AS h FROM `{t}`) x",
                    columns.trim()
                ),
            );
            format!("{t} {}", row.trim())
        })
        .collect()
}
