//! Live byte counts of the objects a command moves. The pipelines count;
//! the stall watchdog and the command line's progress display read.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

/// The transfers of one command, in the order they started.
#[derive(Clone, Debug, Default)]
pub struct Meter(Arc<Mutex<Vec<Arc<Transfer>>>>);

impl Meter {
    /// Starts counting a transfer of `object`, `total` stored bytes when known.
    pub fn start(&self, object: impl Into<String>, total: Option<u64>) -> Arc<Transfer> {
        let transfer = Arc::new(Transfer {
            object: object.into(),
            total,
            read: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        });
        self.0
            .lock()
            .expect("meter lock poisoned")
            .push(Arc::clone(&transfer));
        transfer
    }

    /// Every transfer started so far, oldest first.
    pub fn transfers(&self) -> Vec<Arc<Transfer>> {
        self.0.lock().expect("meter lock poisoned").clone()
    }
}

/// One object on its way into or out of the store.
#[derive(Debug)]
pub struct Transfer {
    object: String,
    total: Option<u64>,
    read: AtomicU64,
    stored: AtomicU64,
}

impl Transfer {
    /// The object's name, as errors name it.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// Stored bytes the transfer will move, when known (restores know it).
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// Plaintext bytes so far: read from the source on backup.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Stored bytes so far: written to the store on backup, fetched and
    /// verified on restore.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Bytes moved either way, for the stall watchdog.
    pub(crate) fn moved(&self) -> u64 {
        self.read().wrapping_add(self.stored())
    }

    pub(crate) fn add_read(&self, n: u64) {
        self.read.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_stored(&self, n: u64) {
        self.stored.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_listed_in_start_order_with_their_counts() {
        let meter = Meter::default();
        let a = meter.start("a.zst.age", None);
        let b = meter.clone().start("b.zst.age", Some(10));
        a.add_read(5);
        a.add_stored(2);
        b.add_stored(10);
        let seen: Vec<_> = meter
            .transfers()
            .iter()
            .map(|t| (t.object().to_owned(), t.total(), t.read(), t.stored()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a.zst.age".to_owned(), None, 5, 2),
                ("b.zst.age".to_owned(), Some(10), 0, 10),
            ]
        );
        assert_eq!(a.moved(), 7);
    }
}
