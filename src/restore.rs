//! Restore: stream a stored object back through the checks and codecs into a
//! target, which sees the end of its input only when everything verified.
//!
//! - a directory (`files` sources): staged inside the target, swapped in
//!   after the stream verified;
//! - a command (`command` sources with `restore = [...]`): its stdin is
//!   closed only after the stream verified, and its process group is killed
//!   on any error;
//! - a PostgreSQL database: restored into a fresh database, swapped in by
//!   rename only after pg_restore succeeded on a verified stream;
//! - a MariaDB/MySQL database: verified in a pass of its own, safety-backed
//!   up, then applied;
//! - a file (`fetch -o`): written under a temporary name, renamed into place
//!   after the stream verified;
//! - stdout: bytes flow as they are decoded; the exit status says whether the
//!   stream was complete.

mod command;
mod files;
pub(crate) mod mysql;
mod plan;
pub mod postgres;

pub use plan::{GLOBALS_FORMAT, Step, Target, plan};

use std::{
    cell::RefCell,
    io::{self, Read, Write},
    path::{Path, PathBuf},
    rc::Rc,
    sync::Arc,
};

use tokio::task::spawn_blocking;

use crate::{
    Cancel, Error,
    catalog::{Manifest, ObjectRecord},
    child::ChildError,
    config::SetPlan,
    keys::Identities,
    partial_file::PartialFile,
    pipeline::{PipelineError, is_secondary, open_decoder, pipeline_error, start_download},
    progress::Meter,
    source::Source,
    store::Store,
};

/// A restore could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The target exists and the user has not confirmed replacing it.
    #[error(
        "restoring into {target} replaces what is there now. Pass --yes to confirm, or choose another target with --into"
    )]
    NeedsConfirmation {
        /// The target, or the targets joined with "and".
        target: String,
    },
    /// The name typed at the confirmation prompt was not the target's.
    #[error(
        "`{typed}` is not `{expected}`, so nothing was restored; type the name exactly, or pass --yes"
    )]
    NotConfirmed {
        /// What was typed.
        typed: String,
        /// The name asked for.
        expected: String,
    },
    /// `fetch -o` would overwrite a file.
    #[error("`{}` already exists, and sluice does not overwrite it; remove it or choose another file", path.display())]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// The archive holds an entry that could escape the target.
    #[error("the archive holds an unsafe entry `{path}`: {reason}. Nothing was restored")]
    UnsafeEntry {
        /// The entry's path as stored.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The archive is malformed.
    #[error("the archive cannot be read: {source}. Nothing was restored")]
    Archive {
        /// The cause.
        source: io::Error,
    },
    /// One entry could not be written.
    #[error("could not extract `{path}`: {source}. Nothing was restored")]
    Extract {
        /// The entry.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A filesystem operation on the target failed.
    #[error("could not {op} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The restore command failed (after receiving a verified stream).
    #[error("the restore command failed: {0}")]
    Command(#[from] ChildError),
    /// The stream failed a check or could not be decoded.
    #[error(transparent)]
    Pipeline(PipelineError),
    /// The stream broke off (the download's own error says why).
    #[error("the backup stream broke off before its end")]
    Upstream,
    /// `--source` names a source the backup does not have.
    #[error("backup `{backup}` has no source `{name}`; it has: {available}")]
    UnknownSource {
        /// `SET@ID`.
        backup: String,
        /// The name asked for.
        name: String,
        /// The names it has.
        available: String,
    },
    /// A database could not be prepared, queried or swapped.
    #[error("database {target}: {reason}")]
    Database {
        /// The database, without password.
        target: String,
        /// The client's message.
        reason: String,
    },
    /// A command that takes one object was given a backup with several.
    #[error("backup `{backup}` has several sources ({available}); pick one with --source NAME")]
    SeveralSources {
        /// `SET@ID`.
        backup: String,
        /// Its sources.
        available: String,
    },
    /// No target is known for an object.
    #[error("no restore target for source `{name}`: {hint}")]
    NoTarget {
        /// The source.
        name: String,
        /// What to pass.
        hint: String,
    },
}

impl RestoreError {
    /// Turns an I/O error from `op` on `path` into [`RestoreError::Io`].
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RestoreError {
        let path = path.to_owned();
        move |source| RestoreError::Io { op, path, source }
    }
}

/// Before a MariaDB/MySQL restore replaces an existing database, backs it
/// up into the set as a `pre-restore` backup naming its target (PostgreSQL
/// keeps the replaced database itself; other targets need none). Never
/// chosen by `@latest`.
async fn safety_backup(
    set: &SetPlan,
    step: &Step,
    meter: &Meter,
    cancel: &Cancel,
) -> Result<Option<Manifest>, Error> {
    let Target::Mysql(target, tools) = &step.target else {
        return Ok(None);
    };
    let (target, tools) = (target.clone(), *tools);
    let exists = spawn_blocking(move || mysql::exists(&target, tools).map(|e| (e, target)))
        .await
        .expect("query panicked")?;
    let (exists, target) = exists;
    if !exists {
        return Ok(None);
    }
    let mut safety = set.clone();
    safety.sources = vec![Source::Mysql(crate::source::MysqlSource::for_target(
        &step.object.source,
        &target,
        tools,
    ))];
    // Runs under the restore's lease, which the restore holds throughout.
    let options = crate::backup::Options {
        lease: None,
        note: Some("pre-restore".to_owned()),
        kind: crate::catalog::BackupKind::PreRestore,
        target: Some(target.display()),
        meter: meter.clone(),
    };
    crate::backup::run(&safety, &options, cancel)
        .await
        .map(Some)
}

/// Settings of a restore.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Parts downloaded at once.
    pub parallel_parts: usize,
    /// How PostgreSQL targets are restored.
    pub postgres: postgres::Options,
    /// Where downloads (and a safety backup's uploads) count their bytes.
    pub meter: Meter,
    /// Objects this run already read through every check: a MySQL target
    /// skips its own verification pass for them.
    pub verified: std::collections::BTreeSet<String>,
}

/// Restores one object into its target. Nothing reaches a directory or file
/// target, and a command or database never sees the end of its input, unless
/// every part, age's final chunk, zstd's checksum and the plaintext size
/// verified. A MariaDB/MySQL target is first verified in a pass of its own;
/// then, with `safety` (the set to store it in), an existing target database
/// is backed up as `pre-restore` before anything is applied.
pub async fn run_step(
    store: Arc<dyn Store>,
    manifest: &Manifest,
    step: &Step,
    identities: Arc<Identities>,
    settings: &Settings,
    safety: Option<&SetPlan>,
    cancel: &Cancel,
) -> Result<(), Error> {
    if !matches!(step.target, Target::Mysql(..)) {
        return stream_step(store, manifest, step, identities, settings, cancel).await;
    }
    // DDL commits as it goes: prove the whole object sound before a single
    // statement reaches the server (unless this run already did).
    if settings.verified.contains(&step.object.name) {
        tracing::info!(
            "{} was verified before anything was replaced; applying it to {}",
            step.object.name,
            step.target
        );
    } else {
        verify(
            Arc::clone(&store),
            manifest,
            &step.object,
            Arc::clone(&identities),
            settings,
            cancel,
        )
        .await?;
        tracing::info!(
            "verified {}; applying it to {}",
            step.object.name,
            step.target
        );
    }
    let safety_copy = match safety {
        Some(set) => safety_backup(set, step, &settings.meter, cancel).await?,
        None => None,
    };
    if let Some(copy) = &safety_copy {
        tracing::info!(
            "took safety backup {}@{} of {} before replacing it",
            copy.set,
            copy.id,
            step.target
        );
    }
    stream_step(store, manifest, step, identities, settings, cancel)
        .await
        .map_err(|e| match safety_copy {
            Some(copy) => Error::PartiallyRestored {
                target: step.target.to_string(),
                cause: e.to_string(),
                safety: format!("{}@{}", copy.set, copy.id),
            },
            None => e,
        })
}

/// Reads `object` through every check a restore makes (each part's
/// SHA-256, age's authentication, zstd's checksum, the plaintext size) into
/// a sink: a restore that writes nothing.
pub async fn verify(
    store: Arc<dyn Store>,
    manifest: &Manifest,
    object: &ObjectRecord,
    identities: Arc<Identities>,
    settings: &Settings,
    cancel: &Cancel,
) -> Result<(), Error> {
    let step = Step {
        object: object.clone(),
        target: Target::Verify,
    };
    stream_step(store, manifest, &step, identities, settings, cancel).await
}

async fn stream_step(
    store: Arc<dyn Store>,
    manifest: &Manifest,
    step: &Step,
    identities: Arc<Identities>,
    settings: &Settings,
    cancel: &Cancel,
) -> Result<(), Error> {
    if let Target::File(path) = &step.target
        && path.exists()
    {
        return Err(RestoreError::FileExists { path: path.clone() }.into());
    }
    if let Target::Directory(dir) = &step.target {
        files::preflight(dir, true)?;
    }
    let key = manifest.object_key(&step.object);
    let (reader, mut download) = start_download(
        store,
        key,
        step.object.clone(),
        settings.parallel_parts,
        &settings.meter,
    );
    let (object, target, id, worker_cancel) = (
        step.object.clone(),
        step.target.clone(),
        manifest.id.to_string(),
        cancel.clone(),
    );
    let pg_options = settings.postgres;
    let mut work = spawn_blocking(move || -> Result<Pending, RestoreError> {
        let decoded = open_decoder(reader, &identities, &object).map_err(stream_error)?;
        receive(
            decoded,
            &target,
            &object.format,
            &id,
            &pg_options,
            &worker_cancel,
        )
    });

    let joined = tokio::select! {
        joined = async { tokio::join!(&mut download, &mut work) } => Some(joined),
        () = cancel.fired() => None,
    };
    let Some((downloaded, worked)) = joined else {
        download.abort();
        if let Ok(Ok(pending)) = work.await {
            pending.discard();
        }
        return Err(Error::Interrupted);
    };
    let downloaded = downloaded.expect("download task panicked");
    let worked = worked.expect("restore worker panicked");
    match (downloaded, worked) {
        _ if cancel.is_fired() => Err(Error::Interrupted),
        (Ok(()), Ok(pending)) => {
            let id = manifest.id.to_string();
            let pg_options = settings.postgres;
            spawn_blocking(move || pending.commit(&id, &pg_options))
                .await
                .expect("commit panicked")?;
            Ok(())
        }
        (Err(e), worked) => {
            if let Ok(pending) = worked {
                pending.discard();
            }
            Err(e.into())
        }
        (Ok(()), Err(e)) => Err(e.into()),
    }
}

/// What a target holds after receiving a verified stream, before the final
/// step that makes it visible.
enum Pending {
    Staged(files::Staged),
    Fed(command::Fed),
    Postgres(postgres::Loaded),
    Globals(postgres::Globals),
    File(PartialFile),
    Done,
}

impl Pending {
    fn commit(self, id: &str, pg_options: &postgres::Options) -> Result<(), RestoreError> {
        match self {
            Pending::Staged(staged) => staged.commit(id),
            Pending::Postgres(loaded) => loaded.commit(pg_options),
            Pending::Globals(globals) => globals.apply(),
            Pending::Fed(fed) => fed.commit(),
            Pending::File(file) => {
                let partial = file.partial().to_owned();
                file.publish()
                    .map_err(RestoreError::io("rename into place", &partial))
            }
            Pending::Done => Ok(()),
        }
    }

    fn discard(self) {
        match self {
            Pending::Staged(staged) => staged.discard(),
            Pending::Fed(fed) => fed.discard(),
            Pending::Postgres(loaded) => loaded.discard(),
            Pending::Globals(_) => {}
            Pending::File(file) => file.discard(),
            Pending::Done => {}
        }
    }
}

/// Feeds the decoded stream to the target; on failure, whatever was created
/// is gone (and any command killed) before this returns.
fn receive(
    decoded: crate::pipeline::Decoded,
    target: &Target,
    format: &str,
    id: &str,
    pg_options: &postgres::Options,
    cancel: &Cancel,
) -> Result<Pending, RestoreError> {
    let failure = Rc::new(RefCell::new(None));
    let mut reader = Tracked {
        inner: decoded,
        failure: Rc::clone(&failure),
    };
    let result = match target {
        Target::Directory(dir) => files::stage(&mut reader, dir, id).map(Pending::Staged),
        Target::Command(argv) => command::feed(&mut reader, argv, cancel).map(Pending::Fed),
        Target::File(path) => write_file(&mut reader, path, id),
        Target::Postgres(t) => {
            postgres::load(&mut reader, t, format, id, pg_options, cancel).map(Pending::Postgres)
        }
        Target::Mysql(t, tools) => mysql::apply(&mut reader, t, *tools, cancel).map(Pending::Fed),
        Target::PostgresGlobals(t) => postgres::read_globals(&mut reader, t).map(Pending::Globals),
        Target::Verify => io::copy(&mut reader, &mut io::sink())
            .map(|_| Pending::Done)
            .map_err(|source| RestoreError::Archive { source }),
        Target::Stdout => {
            let mut out = io::stdout().lock();
            io::copy(&mut reader, &mut out)
                .and_then(|_| out.flush())
                .map(|()| Pending::Done)
                .map_err(RestoreError::io("write to", Path::new("stdout")))
        }
    };
    // When the stream itself failed, that is the cause, whatever the target
    // made of it.
    result.map_err(|e| failure.borrow_mut().take().map_or(e, stream_error))
}

fn write_file(reader: &mut dyn Read, path: &Path, id: &str) -> Result<Pending, RestoreError> {
    let mut file = PartialFile::create(path, id).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => RestoreError::FileExists {
            path: path.to_owned(),
        },
        _ => RestoreError::io("create", path)(source),
    })?;
    match io::copy(reader, file.file()).and_then(|_| file.sync()) {
        Ok(()) => Ok(Pending::File(file)),
        Err(e) => {
            let partial = file.partial().to_owned();
            file.discard();
            Err(RestoreError::io("write", &partial)(e))
        }
    }
}

/// Remembers the first error of the stream it wraps, so it can be reported
/// as the cause even after a target (tar, a copy loop) re-wrapped it.
struct Tracked<R> {
    inner: R,
    failure: Rc<RefCell<Option<io::Error>>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            self.failure.borrow_mut().get_or_insert(e);
            io::Error::new(kind, "the backup stream failed")
        })
    }
}

fn stream_error(e: io::Error) -> RestoreError {
    match pipeline_error(e) {
        Ok(pipeline) => RestoreError::Pipeline(pipeline),
        Err(e) if is_secondary(&e) => RestoreError::Upstream,
        Err(e) => RestoreError::Archive { source: e },
    }
}
