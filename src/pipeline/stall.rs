//! The stall watchdog: a run that moves no bytes for too long fails, so a
//! hung server or dump never holds a nightly backup forever. Per-attempt
//! timeouts cannot see a server that trickles a byte a minute, or a dump
//! that stops writing without exiting.

use std::{
    io::{self, Write},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::{Instant, sleep};

/// Bytes moved so far by one pipeline, counted wherever they move.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress(Arc<AtomicU64>);

impl Progress {
    /// Records `n` bytes moved.
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Completes once no byte moved for `limit`; never, when `limit` is zero.
    pub(crate) async fn stalled(&self, limit: Duration) {
        if limit.is_zero() {
            return std::future::pending().await;
        }
        let tick = (limit / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let (mut seen, mut since) = (self.get(), Instant::now());
        loop {
            sleep(tick).await;
            let now = self.get();
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() >= limit {
                return;
            }
        }
    }
}

/// A writer that counts what passes through it.
pub(crate) struct Counted<W> {
    /// The writer counted.
    pub(crate) inner: W,
    progress: Progress,
}

impl<W> Counted<W> {
    /// Counts what is written to `inner` into `progress`.
    pub(crate) fn new(inner: W, progress: Progress) -> Self {
        Self { inner, progress }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_whole_quiet_period() {
        let progress = Progress::default();
        let limit = Duration::from_secs(10);
        let start = Instant::now();
        let mover = {
            let progress = progress.clone();
            async move {
                for _ in 0..5 {
                    sleep(Duration::from_secs(6)).await;
                    progress.add(1);
                }
            }
        };
        tokio::join!(mover, progress.stalled(limit));
        // Bytes moved every 6 s until 30 s; quiet from then on.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(40), "{waited:?}");
        assert!(waited <= Duration::from_secs(42), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_never_fires() {
        let progress = Progress::default();
        let fired =
            tokio::time::timeout(Duration::from_secs(3600), progress.stalled(Duration::ZERO));
        assert!(fired.await.is_err());
    }

    #[test]
    fn counted_writes_add_up() {
        let progress = Progress::default();
        let mut out = Counted::new(Vec::new(), progress.clone());
        out.write_all(b"hello").unwrap();
        out.write_all(b", world").unwrap();
        assert_eq!(progress.get(), 12);
        assert_eq!(out.inner, b"hello, world");
    }
}
