//! `sluice anonymize`.

use std::{
    fs::{self},
    io::{self, BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use clap::ValueEnum;
use sluice::{
    anonymize::{self, Dialect, Rules, Salt},
    partial_file::PartialFile,
};

/// Anonymize a plain SQL dump (pg_dump -Fp, mariadb-dump): read it on stdin,
/// write it with personal data replaced on stdout (or -o FILE).
///
/// Fails closed: every column of every table must be covered by a rule, and
/// columns kept only by a glob (`"public.*.*" = "keep"`) are still scanned
/// for emails, phone numbers and card numbers. A refusal names the column, a
/// masked example and a suggested rule, and exits 1.
///
/// Outputs are keyed by a secret salt, so the same input gives the same
/// output every night and joins still match: set SLUICE_ANON_SALT, or pass
/// --salt-file FILE (at least 16 bytes). Start a rules file with --init:
///
///   pg_dump -Fp app | sluice anonymize --init > anonymize.toml
///   pg_dump -Fp app | sluice anonymize --rules anonymize.toml -o app.anon.sql
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The rules file (TOML: "schema.table.column" pattern = transformer)
    #[arg(long, value_name = "FILE", required_unless_present = "init")]
    rules: Option<PathBuf>,

    /// Write a starting rules file for the dump on stdin instead
    #[arg(long, conflicts_with_all = ["rules", "report"])]
    init: bool,

    /// The dump's dialect [default: detected from its header]
    #[arg(long, value_enum)]
    dialect: Option<DialectArg>,

    /// File holding the secret salt [default: $SLUICE_ANON_SALT_FILE, else $SLUICE_ANON_SALT]
    #[arg(long, value_name = "FILE")]
    salt_file: Option<PathBuf>,

    /// Write to this new file (mode 0600; appears only if the whole dump passed) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Print which columns were transformed, kept and scanned, on stderr
    #[arg(long)]
    report: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DialectArg {
    Postgres,
    Mysql,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, io::stdin().lock());
    let dialect = match args.dialect {
        Some(DialectArg::Postgres) => Dialect::Postgres,
        Some(DialectArg::Mysql) => Dialect::Mysql,
        None => Dialect::detect(input.fill_buf()?).ok_or_else(|| {
            anyhow::anyhow!("cannot tell whether the dump on stdin is from PostgreSQL or MySQL/MariaDB; pass --dialect postgres or --dialect mysql")
        })?,
    };
    if args.init {
        let rules = anonymize::init_rules(input, dialect).map_err(sluice::Error::from)?;
        return write_output(args.output.as_deref(), |out| {
            Ok(out.write_all(rules.as_bytes())?)
        });
    }
    let rules_path = args.rules.expect("clap requires --rules without --init");
    let text = fs::read_to_string(&rules_path).map_err(|e| {
        anyhow::anyhow!("could not read rules file `{}`: {e}", rules_path.display())
    })?;
    let rules = Rules::from_toml(&text).map_err(sluice::Error::from)?;
    let salt = Salt::load(args.salt_file.as_deref()).map_err(sluice::Error::from)?;
    let report = args.report;
    write_output(args.output.as_deref(), |out| {
        let summary = anonymize::anonymize(input, out, &rules, &salt, dialect)
            .map_err(sluice::Error::from)?;
        if report {
            eprint!("{summary}");
        }
        Ok(())
    })
}

/// Runs `write` against stdout, or against a temporary file renamed to
/// `path` only when it succeeded.
fn write_output(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let Some(path) = path else {
        let mut out = io::stdout().lock();
        write(&mut out)?;
        return Ok(out.flush()?);
    };
    let mut file = PartialFile::create(path, "anonymize")?;
    match write(file.file()).and_then(|()| Ok(file.sync()?)) {
        Ok(()) => Ok(file.publish()?),
        Err(e) => {
            file.discard();
            Err(e)
        }
    }
}
