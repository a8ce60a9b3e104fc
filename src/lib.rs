//! sluice streams a dump process through zstd and age into object storage, and
//! restores by reversing the stream.
//!
//! ```text
//! backup:  source ──▶ zstd ──▶ age ──▶ part cutter (SHA-256) ──▶ store (multipart)
//! restore: store (ranged reads, each part checked) ──▶ age ──▶ zstd ──▶ target
//! ```
//!
//! Every stage runs on its own thread (the store on the async runtime) and
//! hands the next one owned [`bytes::Bytes`] through a bounded channel, so
//! memory stays flat whatever the size of the dump. Nothing is committed until
//! every stage succeeded: the manifest is written last, with create-if-absent.
//!
//! Every stored object is a plain age file whose plaintext is a plain zstd
//! stream, so `age -d -i key.txt | zstd -d` opens it without sluice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice::Error> {
//! use sluice::{config::{Config, Overrides}, Cancel};
//!
//! let config = Config::parse("config.toml", r#"
//!     [store]
//!     url = "file:///var/backups/sluice"
//!     [keys]
//!     recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
//!     [[sets.docs.sources]]
//!     name = "docs"
//!     kind = "files"
//!     path = "/srv/docs"
//! "#)?;
//! let set = config.set("docs", &Overrides::default())?;
//! let manifest = sluice::backup::run(&set, &sluice::backup::Options::default(), &Cancel::new()).await?;
//! println!("stored {}", manifest.id);
//! # Ok(()) }
//! ```

pub mod anonymize;
pub mod backup;
pub mod cancel;
pub mod catalog;
mod child;
pub mod config;
pub mod error;
pub mod hooks;
pub mod keys;
pub mod lease;
pub mod metrics;
pub mod notify;
pub mod partial_file;
pub mod pipeline;
pub mod progress;
mod redact;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod signing;
pub mod source;
pub mod store;
pub mod verify;

pub use cancel::Cancel;
pub use error::Error;
