//! One dump feeding two objects: everything written to a [`Tee`] goes to the
//! main stream, and a copy goes down a side pipe for as long as the side
//! takes it. A side that stops never fails the main stream; the side sees a
//! clean end only if the main stream's source succeeded.

use std::io::{self, Write};

use super::channel::{CHUNK_SIZE, ChunkWriter, PipeReader, pipe};

/// Chunks buffered for the side branch.
const SIDE_DEPTH: usize = 4;

/// The writing end of a side branch, to wrap around the main stream's writer.
pub struct SideSender(ChunkWriter);

/// The reading end of a side branch.
pub struct SideReader(pub(crate) PipeReader);

impl io::Read for SideReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// A new side branch.
pub fn side_branch() -> (SideSender, SideReader) {
    let (tx, rx) = pipe(SIDE_DEPTH);
    (SideSender(ChunkWriter::new(tx, CHUNK_SIZE)), SideReader(rx))
}

/// A writer that copies to a side branch what it writes to `main`.
pub struct Tee<'a> {
    main: &'a mut dyn Write,
    side: Option<ChunkWriter>,
}

impl<'a> Tee<'a> {
    /// Tees `main` into `side`.
    pub fn new(main: &'a mut dyn Write, side: SideSender) -> Self {
        Self {
            main,
            side: Some(side.0),
        }
    }

    /// Ends the side branch: cleanly if the source succeeded, otherwise as a
    /// broken stream, so the side never mistakes a failed dump for a whole one.
    pub fn finish(self, source_succeeded: bool) {
        if let Some(side) = self.side
            && source_succeeded
            && let Err(e) = side.finish()
        {
            tracing::debug!("the side branch stopped before the end: {e}");
        }
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.main.write(data)?;
        if let Some(side) = &mut self.side
            && side.write_all(&data[..n]).is_err()
        {
            // The side branch failed; its own error says why.
            self.side = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.main.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_side_gets_a_copy_and_a_clean_end_only_on_success() {
        let (tx, mut rx) = side_branch();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            rx.read_to_end(&mut out).map(|_| out)
        });
        let mut main = Vec::new();
        let mut tee = Tee::new(&mut main, tx);
        tee.write_all(b"hello").unwrap();
        tee.finish(true);
        assert_eq!(main, b"hello");
        assert_eq!(reader.join().unwrap().unwrap(), b"hello");

        let (tx, mut rx) = side_branch();
        let reader = std::thread::spawn(move || rx.read_to_end(&mut Vec::new()));
        let mut main = Vec::new();
        let mut tee = Tee::new(&mut main, tx);
        tee.write_all(b"half").unwrap();
        tee.finish(false);
        assert!(reader.join().unwrap().is_err());
    }

    #[test]
    fn a_side_that_stops_never_fails_the_main_stream() {
        let (tx, rx) = side_branch();
        drop(rx);
        let mut main = Vec::new();
        let mut tee = Tee::new(&mut main, tx);
        for _ in 0..100 {
            tee.write_all(&[7u8; 64 * 1024]).unwrap();
        }
        tee.finish(true);
        assert_eq!(main.len(), 100 * 64 * 1024);
    }
}
