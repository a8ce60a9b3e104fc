//! One lease per set, so that two runs never work on a set at once: a
//! backup, a restore (with its safety backup), prune and gc each hold it;
//! `list`, `show`, `fetch` and `verify` take none.
//!
//! The lease is a small object, `<set>/lease.json`, naming its holder and
//! when it expires. It is created only if absent (`If-None-Match: *`, an
//! exclusive hard link on `file://`), renewed several times per TTL and
//! taken over, once expired, only at the version that was read
//! (`If-Match: <ETag>`; on `file://`, a rename that only one contender
//! wins). A run checks that it still holds the lease before it commits.
//!
//! A run gives the lease back by overwriting it, at its version, with a
//! copy marked released, not by deleting it: so a backup host needs no
//! delete permission at all (see README, "Least privilege"), and the next
//! run takes a released lease over at once, without a warning.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::store::{CreateOutcome, Store, StoreError};

/// The name of a set's lease object.
pub const LEASE_NAME: &str = "lease.json";

/// What a lease says about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The command: `backup`, `restore`, `prune`, `gc`.
    pub command: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the lease.
    pub since: Timestamp,
    /// When the lease lapses unless renewed.
    pub expires: Timestamp,
    /// Whether the holder gave the lease back when it finished: the set is
    /// free, and this says who used it last.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`sluice {}` on {} (pid {}) since {}",
            self.command, self.host, self.pid, self.since
        )
    }
}

/// Taking or keeping a lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds the set.
    #[error(
        "set `{set}` is in use by {holder}, until {} unless it renews the lease. Wait for it to finish; if that run is gone (a crashed host), the lease lapses by itself, or remove it with `sluice lock break {set}`",
        holder.expires
    )]
    Held {
        /// The set.
        set: String,
        /// Who holds it, and until when.
        holder: Box<Holder>,
    },
    /// The run lost its lease (it expired and another run took it over).
    #[error(
        "this run lost the lease of set `{set}` (it could not renew it in time, and another run took it over), so it stopped before committing anything"
    )]
    Lost {
        /// The set.
        set: String,
    },
    /// The store ignores `If-None-Match: *`, so a lease would not exclude.
    #[error(
        "the store accepted a second exclusive create of `{key}`, so it cannot keep two runs apart: use a server with conditional writes (AWS S3, MinIO, Ceph, R2 have them)"
    )]
    NotExclusive {
        /// The lease's key.
        key: String,
    },
    /// A lease object that is not one.
    #[error(
        "`{key}` is not a sluice lease ({reason}); remove it with `sluice lock break {set}` if nothing else uses that name"
    )]
    Unreadable {
        /// The set.
        set: String,
        /// The lease's key.
        key: String,
        /// The parse error.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A held lease, renewed in the background until [`Lease::release`].
pub struct Lease {
    store: Arc<dyn Store>,
    set: String,
    key: String,
    /// What the lease says, as last written.
    holder: Arc<Mutex<Holder>>,
    version: Arc<Mutex<String>>,
    lost: Arc<AtomicBool>,
    renewer: JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// The key of `set`'s lease.
pub fn key(set: &str) -> String {
    format!("{set}/{LEASE_NAME}")
}

/// Reads the lease of `set`, if a run holds it (or held it and did not
/// give it back); a released lease is none.
pub async fn status(store: &dyn Store, set: &str) -> Result<Option<Holder>, LeaseError> {
    match store.get_versioned(&key(set)).await {
        Ok((data, _)) => parse(set, &data).map(|h| (!h.released).then_some(h)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the lease of `set`, whoever holds it.
pub async fn break_lease(store: &dyn Store, set: &str) -> Result<(), LeaseError> {
    Ok(store.delete(&key(set)).await?)
}

fn encode(holder: &Holder) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(holder).expect("leases serialize"))
}

fn parse(set: &str, data: &[u8]) -> Result<Holder, LeaseError> {
    serde_json::from_slice(data).map_err(|e| LeaseError::Unreadable {
        set: set.to_owned(),
        key: key(set),
        reason: e.to_string(),
    })
}

/// Takes the lease of `set` for `command`, valid for `ttl` and renewed
/// every quarter of it: created if absent, taken over if expired, refused
/// ([`LeaseError::Held`]) if another run holds it.
pub async fn acquire(
    store: Arc<dyn Store>,
    set: &str,
    command: &str,
    ttl: Duration,
) -> Result<Lease, LeaseError> {
    let key = key(set);
    let now = Timestamp::now();
    let holder = Holder {
        command: command.to_owned(),
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        pid: std::process::id(),
        since: now,
        expires: expiry(now, ttl),
        released: false,
    };
    let data = encode(&holder);
    let version = match store.create_if_absent(&key, data.clone()).await? {
        CreateOutcome::Created => {
            // A store that ignores the condition would accept this too.
            // Other bytes, so that a retried probe can never be taken for
            // its own earlier write.
            let probe = Bytes::from([&data[..], b"\n"].concat());
            if store.create_if_absent(&key, probe).await? == CreateOutcome::Created {
                let _ = store.delete(&key).await;
                return Err(LeaseError::NotExclusive { key });
            }
            let (current, version) = store.get_versioned(&key).await?;
            if current != data {
                return Err(held(set, &current)?);
            }
            version
        }
        CreateOutcome::AlreadyExists => {
            let (current, version) = match store.get_versioned(&key).await {
                Ok(read) => read,
                // Released between our create and our read: try once more.
                Err(StoreError::NotFound { .. }) => {
                    return Box::pin(acquire(store, set, command, ttl)).await;
                }
                Err(e) => return Err(e.into()),
            };
            let other = parse(set, &current)?;
            if other.released {
                tracing::debug!("taking the lease of set `{set}`, released by {other}");
            } else if other.expires > Timestamp::now() {
                return Err(held(set, &current)?);
            } else {
                tracing::warn!(
                    "taking over the expired lease of set `{set}` from {other}, which expired at {}",
                    other.expires
                );
            }
            match store.replace_if_match(&key, data, &version).await? {
                Some(version) => version,
                None => {
                    let (current, _) = store.get_versioned(&key).await?;
                    return Err(held(set, &current)?);
                }
            }
        }
    };
    let version = Arc::new(Mutex::new(version));
    let holder = Arc::new(Mutex::new(holder));
    let lost = Arc::new(AtomicBool::new(false));
    let renewer = tokio::spawn(renew(
        Arc::clone(&store),
        key.clone(),
        Arc::clone(&holder),
        ttl,
        Arc::clone(&version),
        Arc::clone(&lost),
    ));
    Ok(Lease {
        store,
        set: set.to_owned(),
        key,
        holder,
        version,
        lost,
        renewer,
    })
}

fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    now.checked_add(jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// The error naming the holder of the lease in `data`.
fn held(set: &str, data: &[u8]) -> Result<LeaseError, LeaseError> {
    let holder = parse(set, data)?;
    Ok(LeaseError::Held {
        set: set.to_owned(),
        holder: Box::new(holder),
    })
}

/// Renews the lease every quarter of `ttl` until aborted; marks it lost
/// when it was taken over or could not be renewed before it expired.
async fn renew(
    store: Arc<dyn Store>,
    key: String,
    shared: Arc<Mutex<Holder>>,
    ttl: Duration,
    version: Arc<Mutex<String>>,
    lost: Arc<AtomicBool>,
) {
    let mut holder = shared.lock().expect("lease holder poisoned").clone();
    loop {
        tokio::time::sleep(ttl / 4).await;
        let expires = expiry(Timestamp::now(), ttl);
        let renewed = Holder {
            expires,
            ..holder.clone()
        };
        let data = encode(&renewed);
        let current = version.lock().expect("lease version poisoned").clone();
        match store.replace_if_match(&key, data, &current).await {
            Ok(Some(new)) => {
                *version.lock().expect("lease version poisoned") = new;
                *shared.lock().expect("lease holder poisoned") = renewed.clone();
                holder = renewed;
            }
            Ok(None) => {
                tracing::error!("the lease `{key}` was taken over by another run");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) if Timestamp::now() < holder.expires => {
                tracing::warn!("could not renew the lease `{key}` (will retry): {e}");
            }
            Err(e) => {
                tracing::error!("could not renew the lease `{key}` before it expired: {e}");
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

impl Lease {
    /// Fails unless the lease is still this run's: call it right before
    /// committing anything.
    pub async fn check(&self) -> Result<(), LeaseError> {
        let lost = || LeaseError::Lost {
            set: self.set.clone(),
        };
        if self.lost.load(Ordering::SeqCst) {
            return Err(lost());
        }
        let (data, version) = match self.store.get_versioned(&self.key).await {
            Ok(read) => read,
            Err(StoreError::NotFound { .. }) => return Err(lost()),
            Err(e) => return Err(e.into()),
        };
        let ours = *self.version.lock().expect("lease version poisoned") == version;
        let holder = parse(&self.set, &data)?;
        if !ours || holder.expires <= Timestamp::now() {
            return Err(lost());
        }
        Ok(())
    }

    /// Stops renewing and gives the lease back, if it is still this run's:
    /// overwrites it at its version with a copy marked released (a
    /// conditional write, so a lease another run took over is left alone).
    pub async fn release(&self) {
        self.renewer.abort();
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        let version = self.version.lock().expect("lease version poisoned").clone();
        let released = Holder {
            expires: Timestamp::now(),
            released: true,
            ..self.holder.lock().expect("lease holder poisoned").clone()
        };
        match self
            .store
            .replace_if_match(&self.key, encode(&released), &version)
            .await
        {
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "could not give back the lease `{}` (it lapses by itself): {e}",
                self.key
            ),
        }
    }
}
