//! The data path: a source's bytes through zstd and age into stored parts,
//! and stored parts, each checked against its SHA-256, back through age and
//! zstd to a restore target.
//!
//! Each CPU stage (compress, encrypt and hash) runs on a blocking thread and
//! hands owned `Bytes` to the next through a bounded channel; the store runs
//! on the async runtime. Peak memory is part size × parts in flight plus the
//! codecs' windows, whatever the size of the dump.

mod channel;
mod decode;
mod download;
mod stall;
mod tee;
mod upload;

use std::io;

use crate::{source::SourceError, store::StoreError};

pub(crate) use channel::is_secondary;
pub(crate) use decode::{Decoded, open_decoder, pipeline_error};
pub(crate) use download::start_download;
pub use tee::{SideReader, SideSender, Tee, side_branch};
pub use upload::{UploadSettings, Uploaded, upload};

/// Streaming an object into or out of the store failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The source failed: the dump command exited non-zero, a file was
    /// unreadable, …
    #[error("`{object}`: {error}")]
    Source {
        /// The object being written.
        object: String,
        /// What the source reported.
        error: SourceError,
    },
    /// The store failed.
    #[error("`{object}`: {error}")]
    Store {
        /// The object being read or written.
        object: String,
        /// What the store reported.
        error: StoreError,
    },
    /// zstd or age failed while writing.
    #[error("{stage} `{object}` failed: {error}")]
    Encode {
        /// The object.
        object: String,
        /// "compressing" or "encrypting".
        stage: &'static str,
        /// The cause.
        error: io::Error,
    },
    /// An object is full: the store allows no more parts.
    #[error(
        "`{object}` reached {max_parts} parts of {part_size} bytes, the most a store takes; raise `part-size` under [store]"
    )]
    TooManyParts {
        /// The object.
        object: String,
        /// The store's part limit.
        max_parts: usize,
        /// The part size in use.
        part_size: u64,
    },
    /// The manifest names an object the store does not have.
    #[error(
        "`{object}` is missing from the store although the backup's manifest names it; this backup cannot be restored. Pick another with `sluice list SET`"
    )]
    Missing {
        /// The object.
        object: String,
    },
    /// The stored object's size is not the manifest's.
    #[error(
        "`{object}` has {actual} bytes in the store, but its manifest says {expected}: it was truncated or replaced. Nothing was restored from it; pick another backup with `sluice list SET`"
    )]
    SizeMismatch {
        /// The object.
        object: String,
        /// Bytes in the store.
        actual: u64,
        /// Bytes the manifest records.
        expected: u64,
    },
    /// A part's SHA-256 is not the manifest's.
    #[error(
        "part {part} of `{object}` does not match its SHA-256 in the manifest: the stored object was damaged or altered, and nothing from that part was used. Pick another backup with `sluice list SET`"
    )]
    PartChecksum {
        /// The object.
        object: String,
        /// 1-based part number.
        part: usize,
    },
    /// The whole object's SHA-256 is not the manifest's.
    #[error(
        "`{object}` does not match its SHA-256 in the manifest: the manifest or the object was altered"
    )]
    ObjectChecksum {
        /// The object.
        object: String,
    },
    /// No identity given can open the object.
    #[error(
        "none of the identities given can open `{object}`: it was encrypted to {recipients}, and the identities given are {identities}. Pass the matching identity with --identity FILE"
    )]
    WrongIdentity {
        /// The object.
        object: String,
        /// Fingerprints of its recipients, from the manifest.
        recipients: String,
        /// Fingerprints of the identities tried.
        identities: String,
    },
    /// age or zstd rejected the stream.
    #[error("`{object}` could not be decoded: {reason}")]
    Decode {
        /// The object.
        object: String,
        /// The cause.
        reason: String,
    },
    /// The plaintext's size is not the manifest's.
    #[error("`{object}` decoded to {actual} bytes, but its manifest says {expected}")]
    PlaintextSize {
        /// The object.
        object: String,
        /// Bytes decoded.
        actual: u64,
        /// Bytes the manifest records.
        expected: u64,
    },
    /// Nothing moved for too long.
    #[error(
        "`{object}`: no byte was read from the source and no part stored for {limit:?}, so the backup was stopped. Check the source (a hung dump, a held lock) and the store's network; raise `stall-timeout` under [store] if the source can rightly pause that long"
    )]
    Stalled {
        /// The object.
        object: String,
        /// The `stall-timeout` that ran out.
        limit: std::time::Duration,
    },
    /// The run was cancelled.
    #[error("interrupted")]
    Interrupted,
}

/// The file-name part of a key, for messages.
fn object_name(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_owned()
}

/// Lowercase hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
