//! The stall watchdog: a run that moves no bytes for too long fails, so a
//! hung server or dump never holds a nightly backup forever. Per-attempt
//! timeouts cannot see a server that trickles a byte a minute, or a dump
//! that stops writing without exiting.

use std::{
    io::{self, Write},
    sync::Arc,
    time::Duration,
};

use tokio::time::{Instant, sleep};

use crate::progress::Transfer;

/// Completes once `transfer` moved no byte for `limit`; never, when `limit`
/// is zero.
pub(crate) async fn stalled(transfer: &Transfer, limit: Duration) {
    if limit.is_zero() {
        return std::future::pending().await;
    }
    let tick = (limit / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let (mut seen, mut since) = (transfer.moved(), Instant::now());
    loop {
        sleep(tick).await;
        let now = transfer.moved();
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

/// A writer that counts what passes through it as read from the source.
pub(crate) struct Counted<W> {
    /// The writer counted.
    pub(crate) inner: W,
    transfer: Arc<Transfer>,
}

impl<W> Counted<W> {
    /// Counts what is written to `inner` into `transfer`.
    pub(crate) fn new(inner: W, transfer: Arc<Transfer>) -> Self {
        Self { inner, transfer }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.transfer.add_read(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Meter;

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_whole_quiet_period() {
        let progress = Meter::default().start("o", None);
        let limit = Duration::from_secs(10);
        let start = Instant::now();
        let mover = {
            let progress = Arc::clone(&progress);
            async move {
                for _ in 0..5 {
                    sleep(Duration::from_secs(6)).await;
                    progress.add_stored(1);
                }
            }
        };
        tokio::join!(mover, stalled(&progress, limit));
        // Bytes moved every 6 s until 30 s; quiet from then on.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(40), "{waited:?}");
        assert!(waited <= Duration::from_secs(42), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_never_fires() {
        let progress = Meter::default().start("o", None);
        let fired = tokio::time::timeout(
            Duration::from_secs(3600),
            stalled(&progress, Duration::ZERO),
        );
        assert!(fired.await.is_err());
    }

    #[test]
    fn counted_writes_add_up() {
        let progress = Meter::default().start("o", None);
        let mut out = Counted::new(Vec::new(), Arc::clone(&progress));
        out.write_all(b"hello").unwrap();
        out.write_all(b", world").unwrap();
        assert_eq!(progress.read(), 12);
        assert_eq!(out.inner, b"hello, world");
    }
}
