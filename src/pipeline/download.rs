//! Restore direction, first half: ranged reads of the stored parts, several
//! at once, passed on in order, each only after its SHA-256 matched the
//! manifest. The whole object's SHA-256 is checked before its last part goes
//! on, so a target sees the end of its input only for a verified object.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::task::{JoinHandle, spawn_blocking};

use super::{
    PipelineError,
    channel::{PipeReader, pipe},
    hex, object_name,
};
use crate::{
    catalog::ObjectRecord,
    progress::Meter,
    store::{Store, StoreError},
};

/// Starts downloading `key` in the background, counting into `meter`; read
/// the verified ciphertext from the returned reader. The task's result says whether every part was
/// intact; a reader whose task failed sees an error, never a clean end.
pub(crate) fn start_download(
    store: Arc<dyn Store>,
    key: String,
    record: ObjectRecord,
    parallel_parts: usize,
    meter: &Meter,
) -> (PipeReader, JoinHandle<Result<(), PipelineError>>) {
    let (tx, rx) = pipe(1);
    let progress = meter.start(object_name(&key), Some(record.stored_size));
    let task = tokio::spawn(async move {
        let object = object_name(&key);
        let store_err = |error| match error {
            StoreError::NotFound { .. } => PipelineError::Missing {
                object: object.clone(),
            },
            error => PipelineError::Store {
                object: object.clone(),
                error,
            },
        };
        let meta = store.head(&key).await.map_err(store_err)?;
        if meta.size != record.stored_size {
            return Err(PipelineError::SizeMismatch {
                object,
                actual: meta.size,
                expected: record.stored_size,
            });
        }
        let record = Arc::new(record);
        let count = record.parts.len();
        let mut parts = futures::stream::iter(0..count)
            .map(|index| {
                let (store, key, record) = (Arc::clone(&store), key.clone(), Arc::clone(&record));
                // A task of its own, so that each part is read to its end at
                // once even while the target is busy and reads nothing: a
                // response left half-read gets cut by the server.
                tokio::spawn(async move { fetch_part(store.as_ref(), &key, &record, index).await })
            })
            .buffered(parallel_parts.max(1))
            .map(|joined| joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
        let mut whole = Sha256::new();
        let mut index = 0;
        while let Some(part) = parts.next().await {
            let part = part.map_err(|e| match e {
                Fetch::Store(error) => store_err(error),
                Fetch::Short => PipelineError::SizeMismatch {
                    object: object.clone(),
                    actual: record.part_range(index).start,
                    expected: record.stored_size,
                },
                Fetch::Checksum => PipelineError::PartChecksum {
                    object: object.clone(),
                    part: index + 1,
                },
            })?;
            index += 1;
            progress.add_stored(part.len() as u64);
            let chunk = part.clone();
            whole = spawn_blocking(move || {
                whole.update(&chunk);
                whole
            })
            .await
            .expect("hashing panicked");
            if index == count && hex(&whole.clone().finalize()) != record.sha256 {
                return Err(PipelineError::ObjectChecksum { object });
            }
            if tx.send(part).await.is_err() {
                // The target stopped reading; its own error tells why.
                return Ok(());
            }
        }
        tx.finish();
        Ok(())
    });
    (rx, task)
}

enum Fetch {
    Store(StoreError),
    Short,
    Checksum,
}

async fn fetch_part(
    store: &dyn Store,
    key: &str,
    record: &ObjectRecord,
    index: usize,
) -> Result<Bytes, Fetch> {
    let range = record.part_range(index);
    let expected_len = range.end - range.start;
    let data = store.get_range(key, range).await.map_err(Fetch::Store)?;
    if data.len() as u64 != expected_len {
        return Err(Fetch::Short);
    }
    let expected = record.parts[index].clone();
    let data = spawn_blocking(move || (hex(&Sha256::digest(&data)) == expected).then_some(data))
        .await
        .expect("hashing panicked");
    data.ok_or(Fetch::Checksum)
}
