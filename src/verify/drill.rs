//! `verify --drill`: a restore rehearsal. Each database and directory of a
//! backup is restored where it can be looked at — a scratch database on the
//! source's own server, a temporary directory — what arrived is counted,
//! the source's `checks` run, and the scratch copy is removed again, also
//! when a check or the restore failed.

use std::{path::Path, sync::Arc};

use tokio::task::spawn_blocking;

use crate::{
    Cancel, Error,
    catalog::{Manifest, ObjectRecord},
    config::SetPlan,
    keys::Identities,
    restore::{self, RestoreError, Target, mysql, postgres},
    source::Source,
    store::Store,
};

/// What a drill of one object found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drilled {
    /// Where the object was restored (and removed from again).
    pub scratch: String,
    /// What arrived: `rows in <table>` per table, or `files` and `bytes`.
    pub counts: Vec<(String, u64)>,
    /// Each configured check.
    pub checks: Vec<Check>,
}

/// One configured check, run on a scratch copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The query.
    pub sql: String,
    /// What it returned.
    pub returned: String,
    /// Whether that is true.
    pub held: bool,
}

impl Drilled {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.held)
    }
}

/// Whether an object is restored by a drill: databases and directories;
/// not command outputs (their restore command may do anything), roles
/// (they would change the server) or anonymized copies.
pub fn drillable(record: &ObjectRecord) -> bool {
    !record.anonymized
        && record.format != "globals.sql"
        && matches!(record.source_kind.as_str(), "postgres" | "mysql" | "files")
}

/// Restores `record` into a scratch copy, counts and checks it, and removes
/// the copy.
pub async fn object(
    store: Arc<dyn Store>,
    manifest: &Manifest,
    plan: &SetPlan,
    record: &ObjectRecord,
    identities: Arc<Identities>,
    parallel_parts: usize,
    cancel: &Cancel,
) -> Result<Drilled, Error> {
    let scratch_dir = match record.source_kind.as_str() {
        "files" => Some(
            tempfile::Builder::new()
                .prefix("sluice-drill-")
                .tempdir()
                .map_err(RestoreError::io(
                    "create a scratch directory in",
                    &std::env::temp_dir(),
                ))?,
        ),
        _ => None,
    };
    let into = match &scratch_dir {
        Some(dir) => dir.path().to_owned(),
        None => scratch_database(&manifest.id.to_string()).into(),
    };
    let steps = restore::plan(manifest, plan, Some(&record.source), Some(&into), false)?;
    let step = steps
        .into_iter()
        .find(|s| s.object.name == record.name)
        .expect("the plan holds every object of the source");
    // A leftover of an earlier drill that was killed.
    remove(&step.target).await;
    let settings = restore::Settings {
        parallel_parts,
        postgres: postgres::Options {
            no_owner: true,
            no_privileges: true,
            drop_old: true,
            in_place: false,
        },
        meter: crate::progress::Meter::default(),
        verified: Default::default(),
    };
    let restored =
        restore::run_step(store, manifest, &step, identities, &settings, None, cancel).await;
    let inspected = match restored {
        Ok(()) => {
            let (target, checks) = (step.target.clone(), checks_of(plan, record));
            spawn_blocking(move || inspect(&target, &checks))
                .await
                .expect("drill inspection panicked")
                .map_err(Error::from)
        }
        Err(e) => Err(e),
    };
    remove(&step.target).await;
    drop(scratch_dir);
    let (counts, checks) = inspected?;
    Ok(Drilled {
        scratch: step.target.to_string(),
        counts,
        checks,
    })
}

/// `sluice_drill_<backup id>`, as a database name.
fn scratch_database(id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("sluice_drill_{id}")
}

/// The `checks` of the configured source that wrote `record`.
fn checks_of(plan: &SetPlan, record: &ObjectRecord) -> Vec<String> {
    plan.sources
        .iter()
        .find_map(|source| match source {
            Source::Postgres(s) if s.name == record.source => Some(s.checks.clone()),
            Source::Mysql(s) if s.name == record.source => Some(s.checks.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

type Inspection = (Vec<(String, u64)>, Vec<Check>);

fn check(sql: &str, returned: String, truth: &str) -> Check {
    Check {
        sql: sql.to_owned(),
        held: returned == truth,
        returned,
    }
}

/// Counts what a restored target holds and runs the checks on it.
fn inspect(target: &Target, checks: &[String]) -> Result<Inspection, RestoreError> {
    let rows = |counts: Vec<(String, u64)>| {
        counts
            .into_iter()
            .map(|(table, n)| (format!("rows in {table}"), n))
            .collect()
    };
    match target {
        Target::Postgres(t) => Ok((
            rows(postgres::table_counts(t)?),
            checks
                .iter()
                .map(|sql| Ok(check(sql, postgres::check(t, sql)?, "t")))
                .collect::<Result<_, RestoreError>>()?,
        )),
        Target::Mysql(t, tools) => Ok((
            rows(mysql::table_counts(t, *tools)?),
            checks
                .iter()
                .map(|sql| Ok(check(sql, mysql::check(t, *tools, sql)?, "1")))
                .collect::<Result<_, RestoreError>>()?,
        )),
        Target::Directory(dir) => Ok((directory_counts(dir), Vec::new())),
        other => unreachable!("a drill restores into databases and directories, not {other}"),
    }
}

/// Files and bytes under `dir`.
fn directory_counts(dir: &Path) -> Vec<(String, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if entry.file_type().is_file() {
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    vec![("files".to_owned(), files), ("bytes".to_owned(), bytes)]
}

/// Removes a scratch database (a scratch directory goes with its guard).
async fn remove(target: &Target) {
    let target = target.clone();
    spawn_blocking(move || match &target {
        Target::Postgres(t) => postgres::drop_target(t),
        Target::Mysql(t, tools) => mysql::drop_target(t, *tools),
        _ => {}
    })
    .await
    .expect("dropping the scratch database panicked");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_plain_identifiers() {
        assert_eq!(
            scratch_database("20261122T010000Z-3fa9"),
            "sluice_drill_20261122t010000z_3fa9"
        );
    }
}
