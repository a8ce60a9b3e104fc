//! Backup direction: source → zstd → age → part cutter (SHA-256) → store.

use std::{
    io::{self, Write},
    sync::Arc,
    time::Duration,
};

use bytes::BytesMut;
use sha2::{Digest, Sha256};
use tokio::{sync::mpsc, task::spawn_blocking};

use super::{
    PipelineError,
    channel::{CHUNK_SIZE, ChunkWriter, PipeReader, is_secondary, pipe},
    hex, object_name,
    stall::{Counted, stalled},
};
use crate::{
    Cancel,
    config::Compression,
    progress::Meter,
    source::SourceError,
    store::{Part, PartWriter, Store},
};

/// Chunks buffered between two CPU stages.
const CHANNEL_DEPTH: usize = 4;

/// The most parts an object may have (S3's limit; the `file://` store keeps
/// the same so that any backup can move between stores).
pub const MAX_PARTS: usize = 10_000;

/// The largest part a store takes (S3's limit).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// How an object is written.
#[derive(Clone, Debug)]
pub struct UploadSettings {
    /// zstd settings.
    pub compression: Compression,
    /// Size of every stored part but the last.
    pub part_size: u64,
    /// Parts uploading at once.
    pub parallel_parts: usize,
    /// How long the upload may move no bytes before it fails; zero for never.
    pub stall_timeout: Duration,
    /// Where the upload counts the bytes it reads and stores.
    pub meter: Meter,
}

impl UploadSettings {
    /// The settings for a dump of about `hint` bytes (a directory's size, a
    /// database's size), fixed before the first part: parts grow to
    /// `⌈2 × hint / 10,000⌉`, rounded up to 1 MiB and at most 5 GiB, when
    /// that is more than `part_size`, so the object fits in 10,000 parts
    /// even if the dump is twice the hint. Fewer parts are then in flight,
    /// so memory stays at what `part_size` × `parallel_parts` allows.
    pub fn sized_for(&self, hint: Option<u64>) -> Self {
        const MIB: u64 = 1024 * 1024;
        let Some(hint) = hint else {
            return self.clone();
        };
        let needed = hint
            .saturating_mul(2)
            .div_ceil(MAX_PARTS as u64)
            .div_ceil(MIB)
            .saturating_mul(MIB);
        let part_size = needed.clamp(self.part_size, MAX_PART_SIZE.max(self.part_size));
        let budget = self.part_size.saturating_mul(self.parallel_parts as u64);
        let parallel_parts = usize::try_from(budget / part_size)
            .unwrap_or(usize::MAX)
            .clamp(1, self.parallel_parts.max(1));
        Self {
            part_size,
            parallel_parts,
            ..self.clone()
        }
    }
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
    /// Size of every stored part but the last.
    pub part_size: u64,
    /// SHA-256 of each stored part.
    pub parts: Vec<String>,
}

/// Streams what `produce` writes through zstd and age into `key`.
///
/// The object is published only if every stage succeeded: `produce`
/// returned Ok, both codecs finished and every part was stored. Otherwise
/// the upload is aborted and nothing appears under `key`. When no byte is
/// read from the source and no part stored for `stall_timeout`, `cancel`
/// fires (which stops the source's processes) and the upload fails.
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
    let (part_tx, mut part_rx) = mpsc::channel::<Part>(1);

    let progress = settings.meter.start(object.clone(), None);
    let source = spawn_blocking({
        let progress = Arc::clone(&progress);
        move || {
            let mut out = Counted::new(ChunkWriter::new(source_tx, CHUNK_SIZE), progress);
            produce(&mut out)?;
            out.inner.finish().map_err(SourceError::Output)
        }
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
            let len = part.data.len() as u64;
            // `put` returns once there is room: an earlier part was stored.
            writer.put(part).await?;
            progress.add_stored(len);
        }
        writer.flush().await
    };

    let joined = tokio::select! {
        joined = async { tokio::join!(source, compress, encrypt, store_parts) } => Ok(joined),
        () = cancel.fired() => Err(PipelineError::Interrupted),
        () = stalled(&progress, settings.stall_timeout) => {
            cancel.fire();
            Err(PipelineError::Stalled {
                object: object.clone(),
                limit: settings.stall_timeout,
            })
        }
    };
    let (source, compress, encrypt, stored) = match joined {
        Ok(joined) => joined,
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!("could not abort the upload of `{object}`: {abort}");
            }
            return Err(e);
        }
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
            part_size: cut.part_size,
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
    part_size: u64,
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
    tx: mpsc::Sender<Part>,
}

impl PartCutter {
    fn new(part_size: usize, tx: mpsc::Sender<Part>) -> Self {
        Self {
            part_size,
            buf: Part::buffer(part_size),
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
        let data = std::mem::replace(&mut self.buf, Part::buffer(self.part_size)).freeze();
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        self.parts.push(hex(&sha256));
        self.whole.update(&data);
        self.stored_size += data.len() as u64;
        self.tx.blocking_send(Part { data, sha256 }).map_err(|_| {
            io::Error::new(io::ErrorKind::BrokenPipe, super::channel::DownstreamStopped)
        })
    }

    /// Sends the last part (even an empty object has one) and the digests.
    fn finish(mut self) -> io::Result<Cut> {
        if !self.buf.is_empty() || self.parts.is_empty() {
            self.send_part()?;
        }
        Ok(Cut {
            part_size: self.part_size as u64,
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
            assert_eq!(p, Part::new(p.data.clone()), "a part's own hash");
            assert!(
                p.data.as_ptr().addr().is_multiple_of(Part::ALIGN),
                "aligned for O_DIRECT"
            );
            parts.push(p.data);
        }
        assert_eq!(parts, ["0123", "4567", "89"]);
        assert_eq!(cut.stored_size, 10);
        assert_eq!(cut.parts[2], hex(&Sha256::digest(b"89")));
        assert_eq!(cut.sha256, hex(&Sha256::digest(b"0123456789")));
    }

    fn settings(part_size: u64, parallel_parts: usize) -> UploadSettings {
        UploadSettings {
            compression: Compression::default(),
            part_size,
            parallel_parts,
            stall_timeout: Duration::ZERO,
            meter: Meter::default(),
        }
    }

    #[test]
    fn parts_grow_with_the_size_hint_and_fewer_fly_at_once() {
        const MIB: u64 = 1024 * 1024;
        const GIB: u64 = 1024 * MIB;
        let base = settings(16 * MIB, 4);
        let sized = |hint| {
            let s = base.sized_for(hint);
            (s.part_size, s.parallel_parts)
        };
        // No hint, or one the default covers twice over: unchanged.
        assert_eq!(sized(None), (16 * MIB, 4));
        assert_eq!(sized(Some(50 * GIB)), (16 * MIB, 4));
        assert_eq!(sized(Some(78 * GIB)), (16 * MIB, 4));
        // 100 GiB: 2 × 100 GiB / 10,000 = 20.48 MiB, rounded up to 21 MiB;
        // 64 MiB of parts in flight allow 3 of them.
        assert_eq!(sized(Some(100 * GIB)), (21 * MIB, 3));
        // 1 TiB: 210 MiB parts, one at a time.
        assert_eq!(sized(Some(1024 * GIB)), (210 * MIB, 1));
        // Beyond 25 TiB parts stop at 5 GiB.
        assert_eq!(sized(Some(100 * 1024 * GIB)), (MAX_PART_SIZE, 1));
        // A configured part size above what the hint needs is kept.
        assert_eq!(
            settings(64 * MIB, 2).sized_for(Some(GIB)).part_size,
            64 * MIB
        );
        // A dump the size of its hint, doubled, still fits in 10,000 parts.
        for hint in [3 * GIB, 100 * GIB + 7, 1024 * GIB + 12_345, 20 * 1024 * GIB] {
            let part = base.sized_for(Some(hint)).part_size;
            assert!((2 * hint).div_ceil(part) <= MAX_PARTS as u64, "{hint}");
            assert_eq!(part % MIB, 0);
        }
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
