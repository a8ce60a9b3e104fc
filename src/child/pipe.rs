//! Pipes to and from child processes, paced.
//!
//! Dump and restore tools write and read their pipes 4 KiB at a time (stdio's
//! buffer on a pipe), and a peer that keeps up wakes for every one of those:
//! 147,000 wake-ups for a 1 GiB pg_dump, which cost both processes more CPU
//! than the copying. So a pipe is grown to [`PIPE_SIZE`] and, once it is
//! that large, sluice reads from it only after it had a moment to fill
//! ([`PAUSE`] after a read that drained it), and writes into it only when it
//! has room for a large write ([`PacedWriter`]). A pipe the kernel would not
//! grow (`pipe-max-size` set lower, or the user past
//! `pipe-user-pages-soft`) is read and written as it comes: pausing on a
//! small pipe would cap the rate.

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

/// Grows `pipe` to [`PIPE_SIZE`] and says whether it is that large, so
/// worth pacing.
pub(crate) fn grow(pipe: impl AsFd, program: &str) -> bool {
    match rustix::pipe::fcntl_setpipe_size(&pipe, PIPE_SIZE) {
        Ok(size) => size >= PIPE_SIZE,
        Err(e) => {
            tracing::debug!("could not grow the pipe of `{program}`, so it is not paced: {e}");
            false
        }
    }
}

/// A writer into a pipe to a child that writes only once the pipe has room
/// for the whole write (of at most half the pipe), so it is not woken each
/// time the child reads a page.
pub(crate) struct PacedWriter<W> {
    pipe: W,
    paced: bool,
}

impl<W: Write + AsFd> PacedWriter<W> {
    /// Paces writes into `pipe`, grown for `program`.
    pub fn new(pipe: W, program: &str) -> Self {
        let paced = grow(&pipe, program);
        Self { pipe, paced }
    }

    /// The pipe, to close it.
    pub fn into_inner(self) -> W {
        self.pipe
    }

    /// Waits until `len` more bytes fit, or until the child closed its end
    /// (the write then fails as it would have). Should either query fail,
    /// it stops waiting: a plain write is always right, only slower.
    fn wait_for_room(&self, len: usize) {
        while let Ok(queued) = rustix::io::ioctl_fionread(&self.pipe) {
            if queued as usize + len <= PIPE_SIZE || self.reader_gone() {
                return;
            }
            std::thread::sleep(PAUSE);
        }
    }

    fn reader_gone(&self) -> bool {
        let mut fds = [PollFd::new(&self.pipe, PollFlags::OUT)];
        poll(&mut fds, Some(&Timespec::default()))
            .map_or(true, |_| fds[0].revents().contains(PollFlags::ERR))
    }
}

impl<W: Write + AsFd> Write for PacedWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.paced {
            return self.pipe.write(data);
        }
        let len = data.len().min(PIPE_SIZE / 2);
        self.wait_for_room(len);
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
        assert!(writer.paced, "the pipe grew to 1 MiB");
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
        // The pipe fills and its reader exits without reading it.
        let mut child = Command::new("sh")
            .args(["-c", "read -r _ && exit 0"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut writer = PacedWriter::new(child.stdin.take().unwrap(), "sh");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = vec![b'x'; PIPE_SIZE * 4];
            line[0] = b'\n';
            let _ = tx.send(writer.write_all(&line));
        });
        let written = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the write ends once the reader is gone");
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        child.wait().unwrap();
    }
}
