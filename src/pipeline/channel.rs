//! Bounded channels of owned [`Bytes`] between pipeline stages.
//!
//! A receiver can tell a clean end (the sender called [`PipeSender::finish`])
//! from an upstream failure (the sender was dropped), so a stage never
//! mistakes a broken stream for a complete one.

use std::{
    io::{self, Read, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::mpsc;

/// Size of the chunks a [`ChunkWriter`] sends.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;

/// The error a stage sees when the stage after it stopped taking data.
#[derive(Debug, thiserror::Error)]
#[error("the next stage stopped")]
pub(crate) struct DownstreamStopped;

/// The error a stage sees when the stage before it failed.
#[derive(Debug, thiserror::Error)]
#[error("the previous stage failed")]
pub(crate) struct UpstreamFailed;

/// Whether an I/O error only reports that a neighbouring stage stopped,
/// rather than being a failure of its own.
pub(crate) fn is_secondary(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<DownstreamStopped>() || inner.is::<UpstreamFailed>())
}

/// A bounded channel of chunks with a clean-end flag.
pub(crate) fn pipe(depth: usize) -> (PipeSender, PipeReader) {
    let (tx, rx) = mpsc::channel(depth);
    let done = Arc::new(AtomicBool::new(false));
    (
        PipeSender {
            tx,
            done: Arc::clone(&done),
        },
        PipeReader {
            rx,
            done,
            current: Bytes::new(),
        },
    )
}

/// The sending end of a [`pipe`].
#[derive(Debug)]
pub(crate) struct PipeSender {
    tx: mpsc::Sender<Bytes>,
    done: Arc<AtomicBool>,
}

impl PipeSender {
    /// Sends from a blocking thread; fails if the receiver is gone.
    pub fn blocking_send(&self, chunk: Bytes) -> io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, DownstreamStopped))
    }

    /// Sends from async code; fails if the receiver is gone.
    pub async fn send(&self, chunk: Bytes) -> io::Result<()> {
        self.tx
            .send(chunk)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, DownstreamStopped))
    }

    /// Marks the stream complete. Dropping a sender without this tells the
    /// receiver the stream broke.
    pub fn finish(self) {
        self.done.store(true, Ordering::Release);
    }
}

/// The receiving end of a [`pipe`]; also a [`Read`] for codecs.
#[derive(Debug)]
pub(crate) struct PipeReader {
    rx: mpsc::Receiver<Bytes>,
    done: Arc<AtomicBool>,
    current: Bytes,
}

impl PipeReader {
    /// The next chunk (from a blocking thread), `None` at a clean end, or an
    /// error if the sender failed.
    pub fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if !self.current.is_empty() {
            return Ok(Some(std::mem::take(&mut self.current)));
        }
        loop {
            match self.rx.blocking_recv() {
                Some(chunk) if chunk.is_empty() => continue,
                Some(chunk) => return Ok(Some(chunk)),
                None if self.done.load(Ordering::Acquire) => return Ok(None),
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, UpstreamFailed)),
            }
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.current.is_empty() {
            match self.next_chunk()? {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// A [`Write`] that collects bytes into chunks and sends them down a pipe.
/// [`ChunkWriter::finish`] sends the rest and marks a clean end.
pub(crate) struct ChunkWriter {
    tx: PipeSender,
    buf: BytesMut,
    chunk: usize,
}

impl ChunkWriter {
    /// A writer sending chunks of `chunk` bytes.
    pub fn new(tx: PipeSender, chunk: usize) -> Self {
        Self {
            tx,
            buf: BytesMut::with_capacity(chunk),
            chunk,
        }
    }

    /// Sends what is buffered and marks the stream complete.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buffered()?;
        self.tx.finish();
        Ok(())
    }

    fn send_buffered(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = self.buf.split().freeze();
            self.buf.reserve(self.chunk);
            self.tx.blocking_send(chunk)?;
        }
        Ok(())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.chunk - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.chunk {
            self.send_buffered()?;
        }
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
    fn a_finished_stream_ends_cleanly_and_a_dropped_one_fails() {
        let (tx, mut rx) = pipe(4);
        let mut w = ChunkWriter::new(tx, 3);
        w.write_all(b"abcdefg").unwrap();
        w.finish().unwrap();
        let mut out = Vec::new();
        rx.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcdefg");

        let (tx, mut rx) = pipe(4);
        let mut w = ChunkWriter::new(tx, 3);
        w.write_all(b"abcd").unwrap();
        drop(w);
        let err = rx.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(is_secondary(&err), "{err}");
    }

    #[test]
    fn writing_to_a_closed_pipe_fails_as_secondary() {
        let (tx, rx) = pipe(1);
        drop(rx);
        let err = tx.blocking_send(Bytes::from_static(b"x")).unwrap_err();
        assert!(is_secondary(&err));
    }
}
