//! Backup direction: source → zstd → age → part cutter (SHA-256) → store.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, task::spawn_blocking};

use super::{
    PipelineError,
    channel::{CHUNK_SIZE, ChunkWriter, PipeReader, is_secondary, pipe},
    hex, object_name,
};
use crate::{
    Cancel,
    config::Compression,
    source::SourceError,
    store::{PartWriter, Store},
};

/// Chunks buffered between two CPU stages.
const CHANNEL_DEPTH: usize = 4;

/// The most parts an object may have (S3's limit; the `file://` store keeps
/// the same so that any backup can move between stores).
pub const MAX_PARTS: usize = 10_000;

/// How an object is written.
#[derive(Clone, Copy, Debug)]
pub struct UploadSettings {
    /// zstd settings.
    pub compression: Compression,
    /// Size of every stored part but the last.
    pub part_size: u64,
    /// Parts uploading at once.
    pub parallel_parts: usize,
}

/// What was stored: the facts the manifest records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    /// Bytes the source wrote.
    pub plaintext_size: u64,
    /// Bytes stored.
    pub stored_size: u64,
    /// SHA-256 of the stored object.
    pub sha256: String,
    /// SHA-256 of each stored part.
    pub parts: Vec<String>,
}

/// Streams what `produce` writes through zstd and age into `key`.
///
/// The object is published only if every stage succeeded: `produce`
/// returned Ok, both codecs finished and every part was stored. Otherwise
/// the upload is aborted and nothing appears under `key`.
pub async fn upload<F>(
    store: &dyn Store,
    key: &str,
    encryptor: age::Encryptor,
    settings: &UploadSettings,
    cancel: &Cancel,
    produce: F,
) -> Result<Uploaded, PipelineError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), SourceError> + Send + 'static,
{
    let object = object_name(key);
    let store_err = |error| PipelineError::Store {
        object: object.clone(),
        error,
    };
    let part_size = usize::try_from(settings.part_size).expect("part size fits in memory");
    let upload = store.start_upload(key).await.map_err(store_err)?;
    let mut writer = PartWriter::new(upload, settings.parallel_parts);

    let (source_tx, source_rx) = pipe(CHANNEL_DEPTH);
    let (zstd_tx, zstd_rx) = pipe(CHANNEL_DEPTH);
    let (part_tx, mut part_rx) = mpsc::channel::<Bytes>(1);

    let source = spawn_blocking(move || {
        let mut out = ChunkWriter::new(source_tx, CHUNK_SIZE);
        produce(&mut out)?;
        out.finish().map_err(SourceError::Output)
    });
    let compression = settings.compression;
    let compress = spawn_blocking(move || {
        compress(
            source_rx,
            ChunkWriter::new(zstd_tx, CHUNK_SIZE),
            compression,
        )
    });
    let cutter = PartCutter::new(part_size, part_tx);
    let encrypt = spawn_blocking(move || encrypt(zstd_rx, encryptor, cutter));
    let store_parts = async {
        while let Some(part) = part_rx.recv().await {
            writer.put(part).await?;
        }
        writer.flush().await
    };

    let joined = tokio::select! {
        joined = async { tokio::join!(source, compress, encrypt, store_parts) } => Some(joined),
        () = cancel.fired() => None,
    };
    let Some((source, compress, encrypt, stored)) = joined else {
        let _ = writer.abort().await;
        return Err(PipelineError::Interrupted);
    };
    let outcome = first_cause(
        &object,
        source.expect("source stage panicked"),
        stored,
        compress.expect("compress stage panicked"),
        encrypt.expect("encrypt stage panicked"),
    );
    let outcome = if cancel.is_fired() {
        Err(PipelineError::Interrupted)
    } else {
        outcome
    };
    match outcome {
        Ok(uploaded) => {
            writer.complete().await.map_err(store_err)?;
            Ok(uploaded)
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!("could not abort the upload of `{object}`: {abort}");
            }
            Err(e)
        }
    }
}

/// Picks the failure that caused the others: a stage that only saw its
/// neighbour stop reports a consequence, not the cause.
fn first_cause(
    object: &str,
    source: Result<(), SourceError>,
    stored: Result<(), crate::store::StoreError>,
    compress: io::Result<u64>,
    encrypt: io::Result<Cut>,
) -> Result<Uploaded, PipelineError> {
    let source_error = |error| PipelineError::Source {
        object: object.to_owned(),
        error,
    };
    let compress_error = |error| PipelineError::Encode {
        object: object.to_owned(),
        stage: "compressing",
        error,
    };
    let source = match source {
        Err(e) if !matches!(&e, SourceError::Output(io) if is_secondary(io)) => {
            return Err(source_error(e));
        }
        other => other,
    };
    if let Err(error) = stored {
        return Err(PipelineError::Store {
            object: object.to_owned(),
            error,
        });
    }
    let compress = match compress {
        Err(e) if !is_secondary(&e) => return Err(compress_error(e)),
        other => other,
    };
    let encrypt = match encrypt {
        Err(e) if !is_secondary(&e) => return Err(encrypt_error(object, e)),
        other => other,
    };
    match (source, compress, encrypt) {
        (Ok(()), Ok(plaintext_size), Ok(cut)) => Ok(Uploaded {
            plaintext_size,
            stored_size: cut.stored_size,
            sha256: cut.sha256,
            parts: cut.parts,
        }),
        (Err(e), ..) => Err(source_error(e)),
        (_, Err(e), _) => Err(compress_error(e)),
        (.., Err(e)) => Err(encrypt_error(object, e)),
    }
}

fn encrypt_error(object: &str, error: io::Error) -> PipelineError {
    match error.get_ref().and_then(|e| e.downcast_ref::<PartLimit>()) {
        Some(limit) => PipelineError::TooManyParts {
            object: object.to_owned(),
            max_parts: MAX_PARTS,
            part_size: limit.part_size,
        },
        None => PipelineError::Encode {
            object: object.to_owned(),
            stage: "encrypting",
            error,
        },
    }
}

/// Compress stage: plaintext chunks in, one zstd frame (content checksum
/// on) out. Returns the plaintext size.
fn compress(mut input: PipeReader, output: ChunkWriter, settings: Compression) -> io::Result<u64> {
    let mut encoder = zstd::stream::write::Encoder::new(output, settings.level)?;
    encoder.include_checksum(true)?;
    let threads = match settings.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    encoder.multithread(threads)?;
    let mut total = 0u64;
    while let Some(chunk) = input.next_chunk()? {
        total += chunk.len() as u64;
        encoder.write_all(&chunk)?;
    }
    encoder.finish()?.finish()?;
    Ok(total)
}

/// Encrypt stage: compressed chunks in, age-encrypted parts out.
fn encrypt(
    mut input: PipeReader,
    encryptor: age::Encryptor,
    cutter: PartCutter,
) -> io::Result<Cut> {
    let mut writer = encryptor.wrap_output(cutter)?;
    while let Some(chunk) = input.next_chunk()? {
        writer.write_all(&chunk)?;
    }
    writer.finish()?.finish()
}

/// The part limit was reached.
#[derive(Debug, thiserror::Error)]
#[error("the object reached the part limit")]
struct PartLimit {
    part_size: u64,
}

/// What the part cutter saw.
struct Cut {
    stored_size: u64,
    sha256: String,
    parts: Vec<String>,
}

/// Cuts the encrypted stream into equal parts (the last may be shorter),
/// hashing each part and the whole, and sends each full part on.
struct PartCutter {
    part_size: usize,
    buf: BytesMut,
    whole: Sha256,
    parts: Vec<String>,
    stored_size: u64,
    tx: mpsc::Sender<Bytes>,
}

impl PartCutter {
    fn new(part_size: usize, tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            part_size,
            buf: BytesMut::with_capacity(part_size),
            whole: Sha256::new(),
            parts: Vec::new(),
            stored_size: 0,
            tx,
        }
    }

    fn send_part(&mut self) -> io::Result<()> {
        if self.parts.len() == MAX_PARTS {
            return Err(io::Error::other(PartLimit {
                part_size: self.part_size as u64,
            }));
        }
        let part = self.buf.split().freeze();
        self.buf.reserve(self.part_size);
        self.parts.push(hex(&Sha256::digest(&part)));
        self.whole.update(&part);
        self.stored_size += part.len() as u64;
        self.tx.blocking_send(part).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, super::channel::DownstreamStopped)
        })
    }

    /// Sends the last part (even an empty object has one) and the digests.
    fn finish(mut self) -> io::Result<Cut> {
        if !self.buf.is_empty() || self.parts.is_empty() {
            self.send_part()?;
        }
        Ok(Cut {
            stored_size: self.stored_size,
            sha256: hex(&self.whole.finalize()),
            parts: self.parts,
        })
    }
}

impl Write for PartCutter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() == self.part_size {
            self.send_part()?;
        }
        let n = data.len().min(self.part_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_equal_but_the_last_and_hashes_add_up() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut cutter = PartCutter::new(4, tx);
        cutter.write_all(b"0123456789").unwrap();
        let cut = cutter.finish().unwrap();
        let mut parts = Vec::new();
        while let Ok(p) = rx.try_recv() {
            parts.push(p);
        }
        assert_eq!(parts, ["0123", "4567", "89"]);
        assert_eq!(cut.stored_size, 10);
        assert_eq!(cut.parts[2], hex(&Sha256::digest(b"89")));
        assert_eq!(cut.sha256, hex(&Sha256::digest(b"0123456789")));
    }

    #[test]
    fn an_exact_multiple_sends_no_empty_tail() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut cutter = PartCutter::new(4, tx);
        cutter.write_all(b"01234567").unwrap();
        assert_eq!(cutter.finish().unwrap().parts.len(), 2);
        assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 2);
    }
}
