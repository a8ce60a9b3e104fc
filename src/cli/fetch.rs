//! `sluice fetch SET[@ID]`.

use std::{io::IsTerminal, path::PathBuf, sync::Arc};

use sluice::{
    Cancel,
    catalog::{self, CatalogError, ObjectRecord, Selector, Which},
    keys::Identities,
    progress::Meter,
    restore::{self, RestoreError, Step, Target},
    source::{mysql::MysqlTarget, postgres::PgTarget},
    store,
};

use super::{Context, IdentityArgs, SignatureArgs};

/// Write one object's plaintext to a file or stdout (the dump exactly as the
/// source produced it: a tar, a pg_dump archive, …), or load it into a
/// local database or directory with --into.
///
/// With -o, the file appears only after the whole stream verified. On stdout
/// bytes flow as they are decoded and a non-zero exit means the stream was
/// incomplete. --into takes the same never-half-applied path as `restore`
/// (without a safety backup: fetch never writes to the store), for example
/// `sluice fetch prod --source db --into postgres://localhost/app_dev --yes`.
///
/// Reads only from the store; takes no lock. Like `restore`, it first
/// checks the manifest's signature against the set's trusted-signers.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// SET@ID, SET@latest or SET (the latest)
    backup: Selector,

    /// The source to fetch (needed when the backup has several, unless
    /// --into is a database URL and only one source is of its kind)
    #[arg(long, value_name = "NAME")]
    source: Option<String>,

    /// Take the anonymized, dev-safe copy (opened by a developer's key); with
    /// SET or SET@latest, from the newest backup that has one
    #[arg(long)]
    anonymized: bool,

    /// Write to this new file (mode 0600) instead of stdout
    #[arg(short, long, value_name = "FILE", conflicts_with = "into")]
    output: Option<PathBuf>,

    /// Load it into this instead: a database (postgres://…/DB, mysql://…/DB, or a name) or a directory (created if missing, in an existing parent); replaced only with --yes
    #[arg(long, value_name = "TARGET")]
    into: Option<PathBuf>,

    /// With --into: replace an existing target without asking
    #[arg(short, long, requires = "into")]
    yes: bool,

    /// With --into a PostgreSQL database: drop the database it replaces
    /// instead of keeping it as <db>_sluice_previous until the next fetch
    #[arg(long, requires = "into")]
    drop_old: bool,

    #[command(flatten)]
    identity: IdentityArgs,

    #[command(flatten)]
    signatures: SignatureArgs,
}

pub async fn run(context: &Context, args: Args, cancel: &Cancel) -> anyhow::Result<()> {
    let plan = context.set(&args.backup.set, args.signatures.overrides())?;
    let policy = args.signatures.policy(&plan)?;
    let store = store::open(&plan.store)
        .await
        .map_err(sluice::Error::from)?;
    let identities =
        Arc::new(Identities::load(&args.identity.identities).map_err(sluice::Error::from)?);
    // fetch takes data, never a server's roles.
    let wanted = |o: &ObjectRecord| {
        o.anonymized == args.anonymized
            && o.format != restore::GLOBALS_FORMAT
            && args.source.as_ref().is_none_or(|s| &o.source == s)
    };
    let manifest = if args.anonymized && args.backup.which == Which::Latest {
        // A night whose anonymized copy failed does not stop developers: take
        // the newest backup that has one, and say how old it is.
        let m = catalog::latest_where(store.as_ref(), &args.backup.set, |m| m.objects.iter().any(wanted))
            .await
            .map_err(|e| match e {
                CatalogError::NoBackups { set } => anyhow::anyhow!(
                    "set `{set}` has no backup with an anonymized copy{}; check the source's `anonymize` rules and the backup logs",
                    args.source.as_deref().map(|s| format!(" of `{s}`")).unwrap_or_default()
                ),
                e => sluice::Error::from(e).into(),
            })?;
        let age = jiff::Timestamp::now().duration_since(m.finished_at);
        tracing::info!(
            "using {}@{}, the newest backup with an anonymized copy, finished {:.0} hours ago",
            m.set,
            m.id,
            age.as_secs_f64() / 3600.0
        );
        m
    } else {
        catalog::find(store.as_ref(), &args.backup)
            .await
            .map_err(sluice::Error::from)?
    };
    policy.check(&manifest).map_err(sluice::Error::from)?;
    let mut candidates: Vec<_> = manifest.objects.iter().filter(|o| wanted(o)).collect();
    // A database URL settles which source, when only one is of its kind.
    let kind = args.into.as_deref().and_then(|into| {
        let scheme = into.to_str()?.split_once("://")?.0;
        if PgTarget::SCHEMES.contains(&scheme) {
            Some("postgres")
        } else if MysqlTarget::SCHEMES.contains(&scheme) {
            Some("mysql")
        } else {
            None
        }
    });
    if let (None, Some(kind), [_, _, ..]) = (&args.source, kind, candidates.as_slice()) {
        let of_kind: Vec<_> = candidates
            .iter()
            .copied()
            .filter(|o| o.source_kind == kind)
            .collect();
        if let [one] = of_kind.as_slice() {
            tracing::info!(
                "fetching source `{}`, the backup's only {kind} one",
                one.source
            );
            candidates = of_kind;
        }
    }
    let object = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] | [_, _, ..] => {
            let available: Vec<&str> = manifest.objects.iter().map(|o| o.source.as_str()).collect();
            let error = match &args.source {
                Some(name) => RestoreError::UnknownSource {
                    backup: format!("{}@{}", manifest.set, manifest.id),
                    name: name.clone(),
                    available: available.join(", "),
                },
                None => RestoreError::SeveralSources {
                    backup: format!("{}@{}", manifest.set, manifest.id),
                    available: available.join(", "),
                },
            };
            return Err(sluice::Error::from(error).into());
        }
    };
    if let Some(into) = &args.into {
        let steps = restore::plan(
            &manifest,
            &plan,
            Some(&object.source),
            Some(into),
            args.anonymized,
        )
        .map_err(sluice::Error::from)?;
        let step = steps
            .iter()
            .find(|s| s.object.name == object.name)
            .expect("the plan holds the chosen object");
        if !args.yes && step.is_destructive().map_err(sluice::Error::from)? {
            super::restore::confirm(&[step])?;
        }
        let settings = restore::Settings {
            parallel_parts: plan.store.parallel_parts,
            postgres: restore::postgres::Options {
                no_owner: true,
                no_privileges: true,
                drop_old: args.drop_old,
                in_place: false,
            },
            meter: Meter::default(),
            verified: Default::default(),
        };
        let bars = super::progress::Display::start(&settings.meter);
        restore::run_step(store, &manifest, step, identities, &settings, None, cancel).await?;
        drop(bars);
        tracing::info!(
            "loaded {} of {}@{} into {}",
            object.source,
            manifest.set,
            manifest.id,
            step.target
        );
        return Ok(());
    }
    let target = match args.output {
        Some(path) => Target::File(path),
        None if std::io::stdout().is_terminal() => {
            anyhow::bail!(
                "refusing to write a backup's plaintext to a terminal; pass -o FILE or pipe the output"
            );
        }
        None => Target::Stdout,
    };
    let step = Step { object, target };
    let settings = restore::Settings {
        parallel_parts: plan.store.parallel_parts,
        postgres: restore::postgres::Options::default(),
        meter: Meter::default(),
        verified: Default::default(),
    };
    let _bars = super::progress::Display::start(&settings.meter);
    restore::run_step(store, &manifest, &step, identities, &settings, None, cancel).await?;
    Ok(())
}
