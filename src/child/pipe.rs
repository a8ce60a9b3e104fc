//! Pipes to and from child processes, paced.
//!
//! Dump and restore tools write and read their pipes 4 KiB at a time (stdio's
//! buffer on a pipe), and a peer that keeps up wakes for every one of those:
//! 147,000 wake-ups for a 1 GiB pg_dump, which cost both processes more CPU
//! than the copying. So a pipe is grown to [`PIPE_SIZE`], sluice reads from
//! one only after it had a moment to fill ([`PAUSE`] after a read that
//! drained it), and writes into one only when it has room for a large write
//! ([`PacedWriter`]).

use std::{
    io::{self, Write},
    os::fd::AsFd,
    time::Duration,
};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// The size asked for a pipe to or from a child: Linux's limit for
/// unprivileged processes (`/proc/sys/fs/pipe-max-size`) by default.
const PIPE_SIZE: usize = 1024 * 1024;

/// How long a reader waits after draining a pipe, or a writer for room. At
/// pg_dump's rate here (about 200 MB/s) a quarter of a 1 MiB pipe fills in
/// that time, so a child never waits for sluice.
pub(crate) const PAUSE: Duration = Duration::from_millis(1);

/// Grows `pipe` to [`PIPE_SIZE`] and returns its size; a kernel that
/// refuses leaves it at its default (64 KiB), which works, only slower.
pub(crate) fn grow(pipe: impl AsFd, program: &str) -> usize {
    if let Err(e) = rustix::pipe::fcntl_setpipe_size(&pipe, PIPE_SIZE) {
        tracing::debug!("could not grow the pipe of `{program}`: {e}");
    }
    rustix::pipe::fcntl_getpipe_size(&pipe).unwrap_or(64 * 1024)
}

/// A writer into a pipe to a child that writes only once the pipe has room
/// for the whole write (of at most half the pipe), so it never sleeps in a
/// write and is not woken each time the child reads a page.
pub(crate) struct PacedWriter<W> {
    pipe: W,
    capacity: usize,
}

impl<W: Write + AsFd> PacedWriter<W> {
    /// Paces writes into `pipe`, grown for `program`.
    pub fn new(pipe: W, program: &str) -> Self {
        let capacity = grow(&pipe, program);
        Self { pipe, capacity }
    }

    /// The pipe, to close it.
    pub fn into_inner(self) -> W {
        self.pipe
    }

    /// Waits until `len` more bytes fit, or until the child closed its end
    /// (the write then fails as it would have).
    fn wait_for_room(&self, len: usize) -> io::Result<()> {
        loop {
            let queued = rustix::io::ioctl_fionread(&self.pipe)?;
            if queued as usize + len <= self.capacity || self.reader_gone()? {
                return Ok(());
            }
            std::thread::sleep(PAUSE);
        }
    }

    fn reader_gone(&self) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.pipe, PollFlags::OUT)];
        poll(&mut fds, Some(&Timespec::default()))?;
        Ok(fds[0].revents().contains(PollFlags::ERR))
    }
}

impl<W: Write + AsFd> Write for PacedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let len = data.len().min(self.capacity / 2);
        self.wait_for_room(len)?;
        self.pipe.write(&data[..len])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pipe.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Read,
        process::{Command, Stdio},
        time::Instant,
    };

    use super::*;

    /// How often this thread has slept so far.
    fn sleeps() -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap();
        line.trim().parse().unwrap()
    }

    #[test]
    fn a_paced_writer_hands_a_slow_reader_everything_without_waking_per_page() {
        // The reader takes 4 KiB at a time, slower than the writer.
        let mut child = Command::new("sh")
            .args(["-c", "dd bs=4096 status=none | wc -c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut writer = PacedWriter::new(child.stdin.take().unwrap(), "dd");
        assert_eq!(writer.capacity, PIPE_SIZE);
        let data = vec![1u8; 8 << 20];
        let (before, started) = (sleeps(), Instant::now());
        writer.write_all(&data).unwrap();
        let (slept, elapsed_ms) = (sleeps() - before, started.elapsed().as_millis() as u64);
        // A writer blocked in a full pipe is woken for each page the reader
        // takes (2,048 here); a paced one sleeps a millisecond at a time.
        assert!(
            slept <= elapsed_ms / PAUSE.as_millis() as u64 + 2,
            "slept {slept} times in {elapsed_ms} ms"
        );
        drop(writer.into_inner());
        let mut count = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut count)
            .unwrap();
        assert_eq!(count.trim(), (8 << 20).to_string());
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn a_paced_writer_fails_at_once_when_the_reader_is_gone() {
        // The pipe is full and its reader exits without reading it.
        let mut child = Command::new("sh")
            .args(["-c", "read -r _ && exit 0"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut writer = PacedWriter::new(child.stdin.take().unwrap(), "sh");
        let started = Instant::now();
        let mut line = vec![b'x'; PIPE_SIZE * 4];
        line[0] = b'\n';
        let err = writer.write_all(&line).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(started.elapsed() < Duration::from_secs(10));
        child.wait().unwrap();
    }
}
