//! Restoring into MariaDB or MySQL. A database cannot be renamed there and
//! DDL commits implicitly, so the restore cannot be staged; instead the whole
//! object is verified first (streamed, nothing on disk), a safety backup of
//! an existing target is taken into the set, and only then is the dump
//! applied, by the client of the same family as the dump tool.

use std::{
    io::Read,
    process::{Command, Stdio},
};

use super::{RestoreError, command};
use crate::{
    Cancel,
    source::mysql::{MysqlTarget, MysqlTools},
};

/// A quoted identifier.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A quoted string literal (backslashes are escapes in MySQL strings).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Runs one SQL statement with the client, returning its batch output.
fn client(target: &MysqlTarget, tools: MysqlTools, sql: &str) -> Result<String, RestoreError> {
    let fail = |reason: String| RestoreError::Database {
        target: target.display(),
        reason,
    };
    let (connection, pipe) = target.args().map_err(|e| fail(e.to_string()))?;
    let output = Command::new(tools.client())
        .args(&connection)
        .args(["--batch", "--skip-column-names", "-e", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("could not start {}: {e}", tools.client())))?;
    drop(pipe);
    if !output.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Exact row counts of every table of `target`'s database, in name order.
pub(crate) fn table_counts(
    target: &MysqlTarget,
    tools: MysqlTools,
) -> Result<Vec<(String, u64)>, RestoreError> {
    let tables = client(
        target,
        tools,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            literal(target.database())
        ),
    )?;
    let counts: Vec<String> = tables
        .lines()
        .map(|table| {
            format!(
                "SELECT {}, COUNT(*) FROM {}.{}",
                literal(table),
                ident(target.database()),
                ident(table)
            )
        })
        .collect();
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let out = client(target, tools, &counts.join(" UNION ALL "))?;
    Ok(super::postgres::parse_counts(&out, '\t'))
}

/// What `sql` returns on `target`'s database (`1` for true).
pub(crate) fn check(
    target: &MysqlTarget,
    tools: MysqlTools,
    sql: &str,
) -> Result<String, RestoreError> {
    let sql = format!("USE {}; {sql}", ident(target.database()));
    Ok(client(target, tools, &sql)?.trim().to_owned())
}

/// Drops `target`'s database, if it exists.
pub(crate) fn drop_target(target: &MysqlTarget, tools: MysqlTools) {
    let sql = format!("DROP DATABASE IF EXISTS {}", ident(target.database()));
    if let Err(e) = client(target, tools, &sql) {
        tracing::warn!("could not drop {}: {e}", target.display());
    }
}

/// Whether the target database exists.
pub(crate) fn exists(target: &MysqlTarget, tools: MysqlTools) -> Result<bool, RestoreError> {
    let out = client(
        target,
        tools,
        &format!(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            literal(target.database())
        ),
    )?;
    Ok(out.trim() == "1")
}

/// Recreates the database empty (keeping its default character set and
/// collation), so that it ends up holding exactly the backup, and feeds the
/// (already verified) dump to the client; its stdin still closes only after
/// this stream verified too.
pub(crate) fn apply(
    reader: &mut dyn Read,
    target: &MysqlTarget,
    tools: MysqlTools,
    cancel: &Cancel,
) -> Result<command::Fed, RestoreError> {
    let db = ident(target.database());
    let charset = client(
        target,
        tools,
        &format!(
            "SELECT CONCAT(DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
            literal(target.database())
        ),
    )?;
    let create = match charset.split_whitespace().collect::<Vec<_>>().as_slice() {
        [set, collation] => format!("CREATE DATABASE {db} CHARACTER SET {set} COLLATE {collation}"),
        _ => format!("CREATE DATABASE {db}"),
    };
    client(
        target,
        tools,
        &format!("DROP DATABASE IF EXISTS {db}; {create}"),
    )?;
    let fail = |reason: String| RestoreError::Database {
        target: target.display(),
        reason,
    };
    let (connection, pipe) = target.args().map_err(|e| fail(e.to_string()))?;
    let mut argv = vec![tools.client().to_owned()];
    argv.extend(connection);
    argv.push("--max-allowed-packet=1G".to_owned());
    argv.push(format!("--database={}", target.database()));
    let fed = command::feed(reader, &argv, cancel);
    drop(pipe);
    fed
}
