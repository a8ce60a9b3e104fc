//! Anonymized copies: a streaming filter over plain SQL dumps.
//!
//! [`anonymize`] reads a PostgreSQL plain dump (`pg_dump -Fp`, or the SQL that
//! `pg_restore -f -` prints) or a MariaDB/MySQL dump (`mariadb-dump`,
//! `mysqldump`) and writes the same dump with personal data replaced. Only the
//! values of rows are touched (`COPY … FROM stdin` blocks and `INSERT`s);
//! every other byte is passed through unchanged, so with only `keep` rules
//! the output is identical to the input. Memory is bounded by the longest
//! statement (an `INSERT`, e.g. one of mysqldump's extended INSERTs of about
//! `net_buffer_length`) or `COPY` row, never by the size of the dump; a
//! single statement or line over 1 GiB is refused.
//!
//! # Rules
//!
//! A rules file is TOML. Each key is a `"schema.table.column"` pattern and
//! each value says what to do with the columns it matches:
//!
//! ```toml
//! "*.*.*" = "keep"                                  # everything else: kept, but scanned (see below)
//! "public.users.email" = "email"                    # u<16 hex>@example.com
//! "public.users.first_name" = "first-name"
//! "public.users.last_name" = "last-name"
//! "public.users.display_name" = "full-name"         # also spelled "name"
//! "public.users.phone" = "phone"                    # digits replaced, punctuation kept
//! "public.users.birth_date" = { date-shift = { max-days = 30 } }
//! "public.users.password_hash" = { fixed = "x" }
//! "public.users.notes" = "redact"
//! "public.users.api_token" = "hash"
//! "public.users.last_ip" = "null"
//! "public.users.street" = { regex = '\d+', replace = "1" }
//! "public.users.profile" = { json = { "$.email" = "email", "$.contacts[*].phone" = "phone", "$..ssn" = "redact" } }
//! "Sales Dept.Order Lines.customer_email" = "email" # names as stored, no SQL quoting
//! ```
//!
//! * Patterns have exactly three dot-separated parts; each part may use the
//!   globs `*` (any run) and `?` (one character). A part containing a dot is
//!   wrapped in double quotes inside the key: `'"my.schema".users.email'`.
//!   For MySQL the schema part is the database name (from the dump header
//!   `-- Host: …  Database: NAME` or `USE`), or `*`; when the dump names no
//!   database it is empty and only `*` matches.
//! * **The most specific pattern wins**, compared in this order: the column
//!   part is literal (no glob); the table part is literal; the schema part is
//!   literal; fewer glob characters in total; more literal characters in
//!   total. Two matching patterns equal on all five are ambiguous, and the
//!   column is refused until one is made more specific.
//! * Rules on a partitioned (or inheritance parent) table apply to its
//!   partitions; on equal specificity the partition's own name wins.
//! * Transformers: `keep`, `null`, `{ fixed = "…" }`, `redact` (a constant
//!   that fits the type: `REDACTED`, `0`, `{}`, `1970-01-01`, …), `hash`,
//!   `email`, `first-name`, `last-name`, `full-name` (`name`), `phone`,
//!   `date-shift` (default 30 days, or `{ date-shift = { max-days = N } }`),
//!   `{ regex = "…", replace = "…" }` (Rust `regex` syntax, `$1` in the
//!   replacement) and `{ json = { "<path>" = <transformer>, … } }` with paths
//!   `$.key`, `$["key"]`, `$[0]`, `$[*]`, `$.*` and `$..key` (any depth).
//!   Large objects are one pseudo-column, `"pg_catalog.pg_largeobject.data"`,
//!   which takes `null` (the objects are restored empty) or an explicit `keep`.
//!
//! # Determinism and uniqueness
//!
//! Every output is derived from HMAC-SHA256 keyed by the [`Salt`] over the
//! transformer's name and the value, never over the table or column: the
//! same input gives the same output in every table and every night, so
//! joins on anonymized columns still match. `email` keeps 64 bits of the HMAC
//! (`u` + 16 hex digits + `@example.com`, a collision among a billion
//! distinct addresses has a probability below 3 %, among a million below
//! 3·10⁻⁸); `hash` on text keeps 128 bits (32 hex digits); `hash` on a uuid
//! gives a version-4 uuid (122 bits); `hash` on an integer is a keyed
//! *permutation* of the column type's range that keeps the sign, so unique
//! integers stay unique and in range (an `int` and a `bigint` column map the
//! same number differently: join columns need the same integer type). When
//! `email` or `hash` output is longer than a `varchar(n)`, it becomes `n`
//! base32 characters of the HMAC (5 bits each) instead of being cut. Names
//! come from small built-in lists and repeat; `phone` keeps the shape and
//! length. `date-shift` moves the date part by a keyed offset of 1 to
//! `max-days` days either way (equal dates move equally) and keeps the time
//! and zone text. NULL stays NULL and an empty string stays empty.
//!
//! # Failing closed
//!
//! The output is refused ([`Error::Refused`], listing every problem) when
//!
//! * a column whose data is in the dump is matched by no rule (a new column
//!   in production): each is listed with a suggested rule line;
//! * a column kept only through a glob in the column part (say
//!   `"public.orders.*" = "keep"`) holds personal data: such text-like
//!   columns are scanned for email addresses (one hit fails, also inside
//!   JSON), phone numbers and payment card numbers (Luhn-checked; three
//!   distinct hits fail); IP addresses only log a warning. A column named
//!   literally (`"public.orders.note" = "keep"`) is a decision and is not
//!   scanned;
//! * a rule cannot work against the dump's schema: `fixed`, `null` or
//!   `redact` (or a name transformer) on every column of a PRIMARY KEY or
//!   UNIQUE constraint, `null` on a NOT NULL column, a transformer that
//!   cannot produce the column's type, an ambiguous pair of patterns;
//! * the dump holds large objects and no rule decides about them, or a value
//!   cannot be transformed (e.g. `date-shift` on something that is not a
//!   date).
//!
//! Output written before a problem is found is incomplete and must be
//! discarded; after the first problem nothing more is written, but the rest
//! of the input is still read so that all problems are listed at once.

mod detect;
mod engine;
mod json;
mod mysql;
mod postgres;
mod rules;
mod schema;
mod sql;
mod transform;
mod values;

use std::fmt;
use std::io::{BufRead, Write};

pub use rules::Rules;

pub(crate) use engine::{Action, Engine, Plan, TableName};
use transform::Keyed;

/// The SQL dialect of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL plain-format dumps.
    Postgres,
    /// MariaDB and MySQL dumps.
    Mysql,
}

impl Dialect {
    /// Guesses the dialect from the first bytes of a dump (its header
    /// comments and settings). `None` when neither is recognized.
    pub fn detect(first_bytes: &[u8]) -> Option<Dialect> {
        let head = &first_bytes[..first_bytes.len().min(64 * 1024)];
        let has = |needle: &[u8]| memchr::memmem::find(head, needle).is_some();
        let pg = [
            &b"-- PostgreSQL database dump"[..],
            b"pg_catalog.set_config(",
            b"SET standard_conforming_strings",
            b"-- PostgreSQL database cluster dump",
        ];
        let my = [
            &b"-- MySQL dump"[..],
            b"-- MariaDB dump",
            b"/*!40101 SET",
            b"/*M!999999",
            b"/*!40014 SET",
        ];
        let pg_at = pg
            .iter()
            .filter_map(|n| memchr::memmem::find(head, n))
            .min();
        let my_at = my
            .iter()
            .filter_map(|n| memchr::memmem::find(head, n))
            .min();
        match (pg_at, my_at) {
            (Some(a), Some(b)) => Some(if a < b {
                Dialect::Postgres
            } else {
                Dialect::Mysql
            }),
            (Some(_), None) => Some(Dialect::Postgres),
            (None, Some(_)) => Some(Dialect::Mysql),
            (None, None) if has(b"COPY ") && has(b"FROM stdin;") => Some(Dialect::Postgres),
            (None, None) if has(b"ENGINE=") || has(b"INSERT INTO `") => Some(Dialect::Mysql),
            (None, None) => None,
        }
    }
}

/// The secret that keys every transformer. Keep it stable to keep outputs
/// stable across nights; anyone who has it can test guesses of originals.
#[derive(Clone)]
pub struct Salt(Vec<u8>);

impl Salt {
    /// The shortest salt accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// Wraps the salt bytes; refuses an empty or short (< 16 bytes) salt.
    pub fn new(bytes: Vec<u8>) -> Result<Salt, Error> {
        if bytes.is_empty() {
            return Err(Error::Salt(
                "the anonymization salt is empty; set SLUICE_ANON_SALT or point to a salt file \
                 holding at least 16 random bytes (e.g. `openssl rand -hex 32`)"
                    .into(),
            ));
        }
        if bytes.len() < Salt::MIN_LEN {
            return Err(Error::Salt(format!(
                "the anonymization salt is {} bytes long; use at least {} random bytes \
                 (e.g. `openssl rand -hex 32`), or the originals can be guessed back",
                bytes.len(),
                Salt::MIN_LEN
            )));
        }
        Ok(Salt(bytes))
    }

    /// The salt from `file` (trailing whitespace trimmed), or else from the
    /// `SLUICE_ANON_SALT_FILE` file, or else from `SLUICE_ANON_SALT`; never
    /// a default.
    pub fn load(file: Option<&std::path::Path>) -> Result<Salt, Error> {
        let from_env_file = std::env::var_os("SLUICE_ANON_SALT_FILE").map(std::path::PathBuf::from);
        let bytes = match file.map(std::path::Path::to_owned).or(from_env_file) {
            Some(path) => {
                let mut bytes = std::fs::read(&path).map_err(|e| {
                    Error::Salt(format!(
                        "could not read the salt file `{}`: {e}",
                        path.display()
                    ))
                })?;
                while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                    bytes.pop();
                }
                bytes
            }
            None => std::env::var("SLUICE_ANON_SALT")
                .map(String::into_bytes)
                .unwrap_or_default(),
        };
        if bytes.is_empty() {
            return Err(Error::Salt(
                "no anonymization salt: set SLUICE_ANON_SALT to a secret of at least 16 bytes (e.g. `openssl rand -hex 32`), or SLUICE_ANON_SALT_FILE to a file holding one; keep it the same every night so joins and repeated runs match".to_owned(),
            ));
        }
        Salt::new(bytes)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Salt(<{} bytes>)", self.0.len())
    }
}

/// Why anonymizing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The salt is missing or too short.
    #[error("{0}")]
    Salt(String),
    /// The rules file cannot be used (syntax, unknown transformer, bad pattern).
    #[error("invalid anonymization rules: {0}")]
    Rules(String),
    /// The anonymized copy was refused: see each [`Problem`].
    #[error("{}", refused_message(problems))]
    Refused {
        /// Every problem found, in dump order.
        problems: Vec<Problem>,
        /// What was done up to the end of the input.
        report: Box<Report>,
    },
    /// Reading the dump or writing the output failed.
    #[error("anonymizing failed at line {line} of the dump: {source}")]
    Io {
        /// The input line (1-based) being read when it failed.
        line: u64,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn refused_message(problems: &[Problem]) -> String {
    let mut s = format!(
        "the anonymized copy was refused ({} problem{}):",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}

/// What kind of problem refused the anonymized copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// A column whose data is in the dump has no rule.
    Uncovered,
    /// A detector found personal data in a column kept by a glob rule.
    Detected,
    /// A rule does not work with the column (unique key, NOT NULL, type, tie).
    RuleConflict,
    /// The dump has large objects and no rule nulls or keeps them.
    LargeObject,
    /// A value could not be read or transformed.
    BadValue,
}

/// One reason the anonymized copy was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The kind of problem.
    pub kind: ProblemKind,
    /// `schema.table.column` (or `schema.table` for whole-table problems).
    pub column: String,
    /// What is wrong.
    pub message: String,
    /// A masked example of the offending value, when there is one.
    pub example: Option<String>,
    /// A rules-file line that would resolve it.
    pub suggestion: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.column, self.message)?;
        if let Some(e) = &self.example {
            write!(f, " (e.g. {e})")?;
        }
        if let Some(s) = &self.suggestion {
            write!(f, "; suggested rule: {s}")?;
        }
        Ok(())
    }
}

/// What happened to one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnAction {
    /// Replaced by the named transformer.
    Transformed(String),
    /// Kept as is: the column is named literally with `keep`.
    Kept,
    /// Kept by a glob rule, and scanned by the detectors.
    Scanned {
        /// Values with an email address.
        emails: u64,
        /// Distinct phone numbers found (counted up to the failure threshold).
        phones: u64,
        /// Distinct Luhn-valid card numbers found (up to the threshold).
        cards: u64,
        /// Values with an IPv4 address (only warned about).
        ips: u64,
    },
}

/// One column in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnReport {
    /// `schema.table.column`.
    pub column: String,
    /// The pattern of the rule that decided it.
    pub rule: String,
    /// What was done.
    pub action: ColumnAction,
    /// Non-NULL values transformed or scanned (kept columns are not
    /// counted: their rows are copied without being split).
    pub values: u64,
}

/// What the anonymizer did, per column (for `--report`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every column whose data was in the dump, in dump order.
    pub columns: Vec<ColumnReport>,
    /// Large objects seen.
    pub large_objects: u64,
    /// Lines read.
    pub lines: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .columns
            .iter()
            .map(|c| c.column.len())
            .max()
            .unwrap_or(0);
        for c in &self.columns {
            let (what, detail) = match &c.action {
                ColumnAction::Transformed(t) => ("transformed", t.clone()),
                ColumnAction::Kept => ("kept", String::new()),
                ColumnAction::Scanned {
                    emails,
                    phones,
                    cards,
                    ips,
                } => (
                    "scanned",
                    format!("emails {emails}, phones {phones}, cards {cards}, ips {ips}"),
                ),
            };
            // Kept columns' rows are copied without being split, so their
            // values are not counted.
            let values = match c.action {
                ColumnAction::Kept => "-".to_owned(),
                _ => c.values.to_string(),
            };
            writeln!(
                f,
                "{what:<11}  {:<width$}  {values:>9} values  rule {:?}  {detail}",
                c.column, c.rule
            )?;
        }
        if self.large_objects > 0 {
            writeln!(f, "large objects: {}", self.large_objects)?;
        }
        write!(
            f,
            "{} columns: {} transformed, {} kept, {} scanned",
            self.columns.len(),
            self.columns
                .iter()
                .filter(|c| matches!(c.action, ColumnAction::Transformed(_)))
                .count(),
            self.columns
                .iter()
                .filter(|c| c.action == ColumnAction::Kept)
                .count(),
            self.columns
                .iter()
                .filter(|c| matches!(c.action, ColumnAction::Scanned { .. }))
                .count(),
        )
    }
}

/// Streams `input` to `output`, anonymizing row values by `rules`.
/// Returns what was done, or [`Error::Refused`] listing every problem (the
/// output is then incomplete and must be discarded).
pub fn anonymize<R: BufRead, W: Write>(
    mut input: R,
    mut output: W,
    rules: &Rules,
    salt: &Salt,
    dialect: Dialect,
) -> Result<Report, Error> {
    let mut buffered = std::io::BufWriter::with_capacity(256 * 1024, &mut output);
    let mut engine = Engine::new(dialect, Some((rules, Keyed::new(&salt.0))), &mut buffered);
    engine.run(&mut input)?;
    let line = engine.line;
    let (report, problems) = engine.finish();
    // Flushes the caller's writer too.
    buffered
        .flush()
        .map_err(|source| Error::Io { line, source })?;
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(Error::Refused {
            problems,
            report: Box::new(report),
        })
    }
}

/// Reads a dump and writes a starting rules file (the `--init` text):
/// `keep` for each table by glob, and a suggested transformer, with a
/// comment saying why, for each column whose name looks personal or in
/// which the detectors found personal data.
pub fn init_rules<R: BufRead>(mut input: R, dialect: Dialect) -> Result<String, Error> {
    let mut sink = std::io::sink();
    let mut engine = Engine::new(dialect, None, &mut sink);
    engine.run(&mut input)?;
    Ok(detect::init_text(&engine))
}

/// The body of the fuzz targets: anonymizes `data` with a fixed salt and a
/// fixed set of rules, and checks the output stays within a bound of the
/// input size. Panics only if that bound is broken (never on bad input).
pub fn fuzz_one(dialect: Dialect, data: &[u8]) {
    let rules = Rules::from_toml(
        r##"
        "*.*.*" = "keep"
        "*.*.email" = "email"
        "*.*.*name*" = "full-name"
        "*.*.phone" = "phone"
        "*.*.id" = "hash"
        "*.*.born" = "date-shift"
        "*.*.doc" = { json = { "$..email" = "email", "$.a[*]" = "redact" } }
        "*.*.note" = { regex = "[0-9]", replace = "#" }
        "*.*.code" = "redact"
        "*.*.gone" = "null"
        "pg_catalog.pg_largeobject.data" = "null"
        "##,
    )
    .unwrap_or_else(|e| panic!("fuzz rules: {e}"));
    let salt = Salt::new(b"fuzzing-salt-0123456789".to_vec()).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let _ = anonymize(data, &mut out, &rules, &salt, dialect);
    let bound = 64 * data.len() + 4096;
    assert!(
        out.len() <= bound,
        "output {} bytes for {} bytes of input",
        out.len(),
        data.len()
    );
    let _ = init_rules(data, dialect);
}

#[cfg(test)]
mod tests;
