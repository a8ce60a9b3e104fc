//! Restoring into PostgreSQL without ever half-applying: the backup goes
//! into a fresh database `<db>_sluice_<id>` (from `template0`); only when
//! pg_restore (or psql) succeeded on a fully verified stream are the
//! target's sessions ended and the names swapped with `ALTER DATABASE …
//! RENAME`, with the old database's owner, settings and grants re-applied.
//! The old database stays as `<db>_sluice_previous` until the next restore
//! (or `--drop-old`). Any failure drops the fresh database and leaves the
//! target exactly as it was.

use std::{
    io::{Read, Write},
    os::unix::process::CommandExt,
    process::{Command, Stdio},
};

use super::{RestoreError, command};
use crate::{Cancel, source::postgres::PgTarget};

/// The database administrative commands connect to.
const MAINTENANCE_DB: &str = "postgres";
/// PostgreSQL's limit on identifier length, in bytes.
const MAX_NAME: usize = 63;

/// A quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `base` cut to fit before `suffix` within PostgreSQL's name limit.
fn name_with_suffix(base: &str, suffix: &str) -> String {
    let mut cut = MAX_NAME.saturating_sub(suffix.len()).min(base.len());
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// Name of the database a restore builds before the swap.
pub(crate) fn staging_name(database: &str, id: &str) -> String {
    name_with_suffix(database, &format!("_sluice_{}", id.to_ascii_lowercase()))
}

/// Name the replaced database keeps after the swap.
pub fn previous_name(database: &str) -> String {
    name_with_suffix(database, "_sluice_previous")
}

/// Runs SQL through psql (`-X`, stop on the first error) on `database`,
/// returning its unaligned output.
pub(crate) fn psql(target: &PgTarget, database: &str, sql: &str) -> Result<String, RestoreError> {
    let mut argv = vec![
        "psql".to_owned(),
        "-X".to_owned(),
        "-q".to_owned(),
        "-At".to_owned(),
    ];
    argv.extend(target.args());
    argv.extend([
        "-v".to_owned(),
        "ON_ERROR_STOP=1".to_owned(),
        "--no-password".to_owned(),
    ]);
    argv.push(format!("--dbname={database}"));
    // Its own process group: a Ctrl-C at the terminal must not cut an
    // administrative script (a swap) in the middle.
    let mut child = Command::new(&argv[0])
        .process_group(0)
        .args(&argv[1..])
        .envs(target.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RestoreError::Database {
            target: target.display(),
            reason: format!("could not start psql: {source}. Install the PostgreSQL client tools"),
        })?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(sql.as_bytes());
    drop(stdin);
    let mut out = String::new();
    let _ = child.stdout.take().expect("piped").read_to_string(&mut out);
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    let status = child.wait().map_err(|source| RestoreError::Database {
        target: target.display(),
        reason: source.to_string(),
    })?;
    if !status.success() || written.is_err() {
        return Err(RestoreError::Database {
            target: target.with_database(database).display(),
            reason: err.trim().to_owned(),
        });
    }
    Ok(out)
}

/// Whether `target`'s database exists.
pub(crate) fn exists(target: &PgTarget) -> Result<bool, RestoreError> {
    let out = psql(
        target,
        MAINTENANCE_DB,
        &format!(
            "SELECT 1 FROM pg_database WHERE datname = {};",
            literal(target.database())
        ),
    )?;
    Ok(out.trim() == "1")
}

/// A fresh database holding the restored data, not yet swapped in.
#[derive(Debug)]
pub(crate) struct Loaded {
    target: PgTarget,
    /// The database restored into; `None` for `--in-place`.
    staging: Option<String>,
    fed: command::Fed,
}

/// Creates the staging database (with the target's encoding and locale when
/// the target exists) and feeds the verified stream to pg_restore or psql.
pub(crate) fn load(
    reader: &mut dyn Read,
    target: &PgTarget,
    format: &str,
    id: &str,
    options: &Options,
    cancel: &Cancel,
) -> Result<Loaded, RestoreError> {
    if options.in_place && exists(target)? {
        return load_in_place(reader, target, format, options, cancel);
    }
    let staging = staging_name(target.database(), id);
    let like = if exists(target)? {
        let row = psql(
            target,
            MAINTENANCE_DB,
            &format!(
                "SELECT pg_encoding_to_char(encoding) || '|' || datcollate || '|' || datctype FROM pg_database WHERE datname = {};",
                literal(target.database())
            ),
        )?;
        let parts: Vec<&str> = row.trim().split('|').collect();
        match parts.as_slice() {
            [encoding, collate, ctype] => format!(
                " ENCODING {} LC_COLLATE {} LC_CTYPE {}",
                literal(encoding),
                literal(collate),
                literal(ctype)
            ),
            _ => String::new(),
        }
    } else {
        String::new()
    };
    psql(
        target,
        MAINTENANCE_DB,
        &format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE);\nCREATE DATABASE {} TEMPLATE template0{like};",
            ident(&staging),
            ident(&staging)
        ),
    )?;
    let mut argv: Vec<String> = match format {
        "sql" | "anon.sql" => vec![
            "psql".into(),
            "-X".into(),
            "-q".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "--no-password".into(),
        ],
        _ => {
            // --clean --if-exists into an empty database drops only what
            // the dump is about to create: a dump of selected schemas that
            // include `public` creates it, and template0 already has it.
            let mut argv: Vec<String> = vec![
                "pg_restore".into(),
                "--exit-on-error".into(),
                "--clean".into(),
                "--if-exists".into(),
                "--no-password".into(),
            ];
            if options.no_owner {
                argv.push("--no-owner".into());
            }
            if options.no_privileges {
                argv.push("--no-privileges".into());
            }
            argv
        }
    };
    argv.extend(target.args());
    argv.push(format!("--dbname={staging}"));
    match command::feed_with_env(reader, &argv, &target.env(), Stdio::null(), cancel) {
        Ok(fed) => Ok(Loaded {
            target: target.clone(),
            staging: Some(staging),
            fed,
        }),
        Err(e) => {
            drop_database(target, &staging);
            Err(e)
        }
    }
}

/// `--in-place`: pg_restore `--clean --if-exists --single-transaction`
/// straight into the target, for those who cannot rename databases. The
/// transaction commits only when pg_restore reads the end of a verified
/// stream; killed before that, it rolls back.
fn load_in_place(
    reader: &mut dyn Read,
    target: &PgTarget,
    format: &str,
    options: &Options,
    cancel: &Cancel,
) -> Result<Loaded, RestoreError> {
    if format.ends_with("sql") {
        return Err(RestoreError::Database {
            target: target.display(),
            reason: "--in-place needs a custom-format backup (a plain SQL dump cannot drop what it replaces); restore without --in-place".to_owned(),
        });
    }
    let mut argv: Vec<String> = [
        "pg_restore",
        "--exit-on-error",
        "--no-password",
        "--clean",
        "--if-exists",
        "--single-transaction",
    ]
    .map(str::to_owned)
    .into();
    if options.no_owner {
        argv.push("--no-owner".into());
    }
    if options.no_privileges {
        argv.push("--no-privileges".into());
    }
    argv.extend(target.args());
    argv.push(format!("--dbname={}", target.database()));
    let fed = command::feed_with_env(reader, &argv, &target.env(), Stdio::null(), cancel)?;
    Ok(Loaded {
        target: target.clone(),
        staging: None,
        fed,
    })
}

/// The largest globals dump applied (roles and tablespaces are small).
const MAX_GLOBALS: u64 = 64 << 20;

/// A verified `pg_dumpall --globals-only` script, waiting to be applied.
#[derive(Debug)]
pub(crate) struct Globals {
    target: PgTarget,
    sql: String,
}

/// Reads a globals script to its verified end.
pub(crate) fn read_globals(
    reader: &mut dyn Read,
    target: &PgTarget,
) -> Result<Globals, RestoreError> {
    let mut sql = String::new();
    reader
        .take(MAX_GLOBALS + 1)
        .read_to_string(&mut sql)
        .map_err(|source| RestoreError::Archive { source })?;
    if sql.len() as u64 > MAX_GLOBALS {
        return Err(RestoreError::Database {
            target: target.display(),
            reason:
                "the roles and tablespaces script is larger than 64 MiB; apply it by hand with psql"
                    .to_owned(),
        });
    }
    let mut rest = [0u8; 1];
    reader
        .read(&mut rest)
        .map_err(|source| RestoreError::Archive { source })?;
    Ok(Globals {
        target: target.clone(),
        sql,
    })
}

impl Globals {
    /// Creates the roles (and tablespaces) that do not exist yet; roles that
    /// exist are left exactly as they are (no password or attribute change).
    pub(crate) fn apply(self) -> Result<(), RestoreError> {
        let existing: std::collections::HashSet<String> = psql(
            &self.target,
            MAINTENANCE_DB,
            "SELECT rolname FROM pg_roles;",
        )?
        .lines()
        .map(str::to_owned)
        .collect();
        let script = skip_existing_roles(&self.sql, &existing);
        psql(&self.target, MAINTENANCE_DB, &script)?;
        Ok(())
    }
}

/// Comments out `CREATE ROLE` and `ALTER ROLE` lines for roles in `existing`.
fn skip_existing_roles(sql: &str, existing: &std::collections::HashSet<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines() {
        match role_of(line) {
            Some(role) if existing.contains(&role) => {
                out.push_str("-- sluice: role exists, left as it is: ");
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The role a `CREATE ROLE name…` or `ALTER ROLE name…` line is about.
fn role_of(line: &str) -> Option<String> {
    let rest = line
        .strip_prefix("CREATE ROLE ")
        .or_else(|| line.strip_prefix("ALTER ROLE "))?;
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    name.push('"');
                } else {
                    return Some(name);
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = rest.find([' ', ';']).unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }
}

/// How a PostgreSQL restore treats ownership and the replaced database.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `pg_restore --no-owner`: objects belong to the restoring role.
    pub no_owner: bool,
    /// `pg_restore --no-privileges`: no GRANTs from the source.
    pub no_privileges: bool,
    /// Drop the replaced database after a successful swap.
    pub drop_old: bool,
    /// Restore into the existing database in one transaction instead of
    /// swapping in a new one.
    pub in_place: bool,
}

/// Exact row counts of every table of `target`'s database, as
/// `schema.table`, in name order.
pub(crate) fn table_counts(target: &PgTarget) -> Result<Vec<(String, u64)>, RestoreError> {
    let out = psql(
        target,
        target.database(),
        "SELECT format('%I.%I', n.nspname, c.relname),
                (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg_toast%'
          ORDER BY 1;",
    )?;
    Ok(parse_counts(&out, '|'))
}

/// What `sql` returns on `target`'s database (`t` for true).
pub(crate) fn check(target: &PgTarget, sql: &str) -> Result<String, RestoreError> {
    Ok(psql(target, target.database(), sql)?.trim().to_owned())
}

/// Drops `target`'s database, if it exists, ending its sessions.
pub(crate) fn drop_target(target: &PgTarget) {
    drop_database(target, target.database());
}

/// Lines of `name<separator>count`.
pub(crate) fn parse_counts(out: &str, separator: char) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|line| line.rsplit_once(separator))
        .filter_map(|(name, n)| Some((name.to_owned(), n.trim().parse().ok()?)))
        .collect()
}

fn drop_database(target: &PgTarget, name: &str) {
    if let Err(e) = psql(
        target,
        MAINTENANCE_DB,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE);", ident(name)),
    ) {
        tracing::warn!("could not drop `{name}`: {e}");
    }
}

impl Loaded {
    /// Lets pg_restore finish, then swaps the staging database in.
    pub(crate) fn commit(self, options: &Options) -> Result<(), RestoreError> {
        let Some(staging) = self.staging else {
            return self.fed.commit();
        };
        if let Err(e) = self.fed.commit() {
            drop_database(&self.target, &staging);
            return Err(e);
        }
        let target = &self.target;
        let db = target.database();
        let previous = previous_name(db);
        let had_target = exists(target)?;
        if !had_target {
            psql(
                target,
                MAINTENANCE_DB,
                &format!(
                    "ALTER DATABASE {} RENAME TO {};",
                    ident(&staging),
                    ident(db)
                ),
            )
            .inspect_err(|_| drop_database(target, &staging))?;
            return Ok(());
        }
        // The replaced database first takes a name of this restore's own,
        // so the previous safety copy is dropped only once the swap is done.
        let replaced = staging_name(
            db,
            &format!("old-{}", &staging[staging.len().saturating_sub(4)..]),
        );
        let swap = format!(
            "ALTER DATABASE {db_ident} ALLOW_CONNECTIONS false;
SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = {db_literal} AND pid <> pg_backend_pid();
BEGIN;
ALTER DATABASE {db_ident} RENAME TO {replaced_ident};
ALTER DATABASE {staging_ident} RENAME TO {db_ident};
COMMIT;
ALTER DATABASE {replaced_ident} ALLOW_CONNECTIONS true;
{reapply}",
            db_ident = ident(db),
            db_literal = literal(db),
            replaced_ident = ident(&replaced),
            staging_ident = ident(&staging),
            reapply = reapply_sql(db, &replaced),
        );
        if let Err(e) = psql(target, MAINTENANCE_DB, &swap) {
            // Whatever step failed, the target keeps (or gets back) its name
            // and accepts connections again; the new data is dropped.
            let _ = psql(
                target,
                MAINTENANCE_DB,
                &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true;", ident(db)),
            );
            if !exists(target)? {
                return Err(RestoreError::Database {
                    target: target.display(),
                    reason: format!(
                        "the swap failed half-way ({e}); the old database is `{replaced}` and the restored one `{staging}`: rename one of them to `{db}`"
                    ),
                });
            }
            drop_database(target, &staging);
            return Err(e);
        }
        psql(
            target,
            MAINTENANCE_DB,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE);\nALTER DATABASE {} RENAME TO {};",
                ident(&previous),
                ident(&replaced),
                ident(&previous)
            ),
        )?;
        if options.drop_old {
            drop_database(target, &previous);
        } else {
            tracing::info!(
                "the replaced database is kept as `{previous}` until the next restore into it (`--drop-old` drops it at once); drop it yourself when you no longer need it"
            );
        }
        Ok(())
    }

    /// Kills pg_restore and drops the staging database.
    pub(crate) fn discard(self) {
        self.fed.discard();
        if let Some(staging) = &self.staging {
            drop_database(&self.target, staging);
        }
    }
}

/// psql `\gexec` queries that give `db` the owner, per-role settings and
/// grants `previous` had.
fn reapply_sql(db: &str, previous: &str) -> String {
    let (db, previous) = (literal(db), literal(previous));
    format!(
        r#"SELECT format('ALTER DATABASE %I OWNER TO %I', {db}, pg_get_userbyid(datdba)) FROM pg_database WHERE datname = {previous} \gexec
SELECT format('ALTER DATABASE %I %sSET %I TO %L', {db},
              CASE WHEN s.setrole = 0 THEN '' ELSE format('IN ROLE %I ', pg_get_userbyid(s.setrole)) END,
              split_part(c, '=', 1), substr(c, strpos(c, '=') + 1))
  FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase, unnest(s.setconfig) AS c
 WHERE d.datname = {previous} \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', {db}) FROM pg_database WHERE datname = {previous} AND datacl IS NOT NULL \gexec
SELECT format('GRANT %s ON DATABASE %I TO %s%s', a.privilege_type, {db},
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
              CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = {previous} \gexec
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_postgres_limit() {
        let long = "x".repeat(80);
        assert!(staging_name(&long, "20261122T010000Z-3fa9").len() <= MAX_NAME);
        assert_eq!(
            staging_name("app", "20261122T010000Z-3fa9"),
            "app_sluice_20261122t010000z-3fa9"
        );
        assert_eq!(previous_name("app"), "app_sluice_previous");
        assert!(previous_name(&"é".repeat(40)).len() <= MAX_NAME);
    }

    #[test]
    fn existing_roles_are_left_alone() {
        let sql = "CREATE ROLE app;\nALTER ROLE app WITH LOGIN PASSWORD 'x';\nCREATE ROLE \"New \"\"Role\"\"\";\nALTER ROLE \"New \"\"Role\"\"\" WITH NOLOGIN;\nGRANT app TO reporting;\n";
        let existing = ["app".to_owned()].into_iter().collect();
        let out = skip_existing_roles(sql, &existing);
        assert!(out.contains("-- sluice: role exists, left as it is: CREATE ROLE app;"));
        assert!(out.contains("-- sluice: role exists, left as it is: ALTER ROLE app WITH"));
        assert!(out.contains("\nCREATE ROLE \"New \"\"Role\"\"\";"));
        assert!(out.contains("\nGRANT app TO reporting;"));
        assert_eq!(
            role_of("CREATE ROLE \"New \"\"Role\"\"\";"),
            Some("New \"Role\"".to_owned())
        );
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("My \"DB\""), "\"My \"\"DB\"\"\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
