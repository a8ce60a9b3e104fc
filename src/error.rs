//! The public error type: one enum over each module's errors, with the exit
//! code the command line returns for it.

use crate::{
    anonymize, catalog::CatalogError, config::ConfigError, keys::KeyError, lease::LeaseError,
    pipeline::PipelineError, restore::RestoreError, signing::SigningError, store::StoreError,
};

/// Anything that can make a sluice command fail.
///
/// Each variant's message says what failed, on which object, set or file, and
/// what to do next; print it with `{:#}` (anyhow) to include the causes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file or the command-line flags are wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A recipient or identity could not be read or used.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The store could not be reached, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A backup or manifest could not be found or read.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A signing key could not be used, or a backup's signature was not
    /// accepted.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The set's lease is held by another run, or was lost.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// Streaming an object in or out failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A restore target refused or failed the restore.
    #[error(transparent)]
    Restore(#[from] RestoreError),
    /// The anonymizer refused its input or its rules.
    #[error(transparent)]
    Anonymize(#[from] anonymize::Error),
    /// A MariaDB/MySQL restore failed after it began applying statements.
    #[error(
        "restoring into {target} failed after it began, so the database may be partly restored: {cause}. Its previous contents are in the safety backup {safety}; to put them back: sluice restore {safety} --into {target} --yes"
    )]
    PartiallyRestored {
        /// The database, without password.
        target: String,
        /// What failed.
        cause: String,
        /// `SET@ID` of the safety backup.
        safety: String,
    },
    /// A backup committed its full copies, but an anonymized copy failed.
    #[error(
        "backup `{backup}` is committed with its full copies, but not every anonymized copy:\n{failures}"
    )]
    AnonymizedCopies {
        /// `SET@ID`.
        backup: String,
        /// One line per failed copy.
        failures: String,
    },
    /// The run was stopped by a signal (Ctrl-C, SIGTERM) and cleaned up.
    #[error("interrupted: the run was stopped before it finished and nothing was committed")]
    Interrupted,
}

impl Error {
    /// The process exit code for this error: 2 for usage and configuration
    /// errors, 1 for everything else (see DESIGN.md, "Output").
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Lease(LeaseError::Held { .. }) => 3,
            Error::Config(_) => 2,
            Error::Keys(_) => 2,
            Error::Signing(e) if !e.is_refusal() => 2,
            Error::Store(
                StoreError::InvalidUrl { .. }
                | StoreError::MissingRoot { .. }
                | StoreError::ObjectLockUnsupported { .. },
            ) => 2,
            Error::Restore(
                RestoreError::UnknownSource { .. }
                | RestoreError::NoTarget { .. }
                | RestoreError::SeveralSources { .. },
            ) => 2,
            Error::Catalog(e) if e.is_usage() => 2,
            Error::Restore(
                RestoreError::NeedsConfirmation { .. } | RestoreError::NotConfirmed { .. },
            ) => 2,
            Error::Anonymize(anonymize::Error::Rules(_) | anonymize::Error::Salt(_)) => 2,
            _ => 1,
        }
    }
}
