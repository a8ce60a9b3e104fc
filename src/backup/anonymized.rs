//! The anonymized, dev-safe copy of a database source, made from the same
//! dump as the full copy: the dump is teed into a side branch that turns it
//! into plain SQL (`pg_restore -f -` for a custom-format pg_dump), runs it
//! through the anonymizer and stores `<source>.anon.sql.zst.age`, encrypted
//! to the anonymized recipients only. One snapshot, two objects.

use std::{
    io::{self, BufReader, Write},
    process::Stdio,
};

use crate::{
    Cancel,
    anonymize::{self, Dialect, Rules, Salt},
    child::{CheckedChild, Echo},
    pipeline::SideReader,
    source::{Source, SourceError, postgres::PgFormat},
};

/// Everything needed to anonymize one source's dump.
pub(crate) struct AnonymizedCopy {
    rules: Rules,
    salt: Salt,
    dialect: Dialect,
    /// The dump is a pg_dump archive that `pg_restore -f -` turns into SQL.
    from_archive: bool,
}

/// File name of a source's anonymized copy.
pub(crate) fn object_name(source: &Source) -> String {
    format!("{}.anon.sql.zst.age", source.name())
}

impl AnonymizedCopy {
    /// Reads the source's rules file and the salt; `Ok(None)` when the
    /// source writes no anonymized copy.
    pub(crate) fn prepare(source: &Source) -> Result<Option<Self>, String> {
        let Some(path) = source.anonymize_rules() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("could not read the rules file `{}`: {e}", path.display()))?;
        let rules = Rules::from_toml(&text).map_err(|e| format!("`{}`: {e}", path.display()))?;
        let salt = Salt::load(None).map_err(|e| e.to_string())?;
        let (dialect, from_archive) = match source {
            Source::Postgres(s) => (Dialect::Postgres, s.format == PgFormat::Custom),
            Source::Mysql(_) => (Dialect::Mysql, false),
            Source::Command(_) | Source::Files(_) => return Ok(None),
        };
        Ok(Some(Self {
            rules,
            salt,
            dialect,
            from_archive,
        }))
    }

    /// Reads the teed dump from `input` and writes the anonymized SQL to `out`.
    pub(crate) fn produce(
        self,
        input: SideReader,
        out: &mut dyn Write,
        cancel: &Cancel,
    ) -> Result<(), SourceError> {
        if !self.from_archive {
            anonymize::anonymize(
                BufReader::with_capacity(1 << 20, input),
                out,
                &self.rules,
                &self.salt,
                self.dialect,
            )?;
            return Ok(());
        }
        let argv = ["pg_restore", "--no-owner", "--no-privileges", "--file=-"];
        let mut child = CheckedChild::spawn(
            &argv,
            Stdio::piped(),
            Stdio::piped(),
            &[],
            Echo::Debug,
            cancel,
        )?;
        let mut stdin = child.take_stdin().expect("stdin is piped");
        let stdout = child.take_stdout().expect("stdout is piped");
        let feeder = std::thread::spawn(move || -> io::Result<()> {
            let mut input = input;
            io::copy(&mut input, &mut stdin)?;
            Ok(())
        });
        let anonymized = anonymize::anonymize(
            BufReader::with_capacity(1 << 20, stdout),
            out,
            &self.rules,
            &self.salt,
            self.dialect,
        );
        if anonymized.is_err() {
            // Unblock the feeder, which may be waiting on a full pipe.
            child.kill_group();
        }
        let fed = feeder.join().expect("feeder panicked");
        match (anonymized, fed) {
            (Err(e), _) => {
                child.kill();
                Err(e.into())
            }
            (Ok(_), Err(e)) => {
                child.kill();
                Err(SourceError::Output(e))
            }
            (Ok(_), Ok(())) => Ok(child.wait_checked()?),
        }
    }
}

/// A short account of why an anonymized copy failed, for the manifest: the
/// columns and kinds of problem, never a value read from the data.
pub(crate) fn manifest_reason(error: &crate::pipeline::PipelineError) -> String {
    use crate::pipeline::PipelineError;
    match error {
        PipelineError::Source {
            error: SourceError::Anonymize(anonymize::Error::Refused { problems, .. }),
            ..
        } => {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{:?}: {}", p.kind, p.column))
                .collect();
            format!("refused by the anonymizer ({})", list.join("; "))
        }
        PipelineError::Source {
            error: SourceError::Anonymize(anonymize::Error::Rules(_)),
            ..
        } => "the rules file is invalid".to_owned(),
        _ => "the anonymized copy could not be made; the backup's log has the cause".to_owned(),
    }
}
