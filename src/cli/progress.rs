//! Progress bars on a terminal: per object, the bytes read from the source
//! and stored (backup), or fetched and verified (restore, fetch), with the
//! rate. Off when stderr is not a terminal, with `-q` and with
//! `--log-format json`: logs are then all there is. Log lines printed while
//! bars are drawn go above them.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sluice::progress::{Meter, Transfer};

/// The bars' place on stderr, when bars are on.
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Turns bars on for this process; logging must then write through
/// [`LogWriter`].
pub fn enable() {
    BARS.get_or_init(MultiProgress::new);
}

/// Writes log lines to stderr, above the bars when some are drawn.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match BARS.get() {
            Some(bars) => bars.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// The transfers drawn so far, each with its bar.
type Shown = Arc<Mutex<Vec<(Arc<Transfer>, ProgressBar)>>>;

/// Draws `meter`'s transfers while the value lives; dropping it draws them
/// one last time and leaves them on screen. Does nothing when bars are off.
pub struct Display {
    task: Option<tokio::task::JoinHandle<()>>,
    shown: Shown,
    meter: Meter,
}

impl Display {
    /// Starts drawing `meter`.
    pub fn start(meter: &Meter) -> Self {
        let shown = Shown::default();
        let task = BARS.get().map(|bars| {
            let (bars, meter, shown) = (bars.clone(), meter.clone(), Arc::clone(&shown));
            tokio::spawn(async move {
                loop {
                    draw(&bars, &meter, &shown);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        });
        Self {
            task,
            shown,
            meter: meter.clone(),
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let (Some(task), Some(bars)) = (self.task.take(), BARS.get()) else {
            return;
        };
        task.abort();
        draw(bars, &self.meter, &self.shown);
        for (_, bar) in self.shown.lock().expect("bars lock poisoned").drain(..) {
            bar.abandon();
        }
    }
}

/// Adds a bar for each new transfer and brings every bar up to date.
fn draw(bars: &MultiProgress, meter: &Meter, shown: &Shown) {
    let mut shown = shown.lock().expect("bars lock poisoned");
    for transfer in meter.transfers().into_iter().skip(shown.len()) {
        let bar = bars.add(new_bar(&transfer));
        shown.push((transfer, bar));
    }
    for (transfer, bar) in shown.iter() {
        match transfer.total() {
            Some(_) => bar.set_position(transfer.stored()),
            None => {
                bar.set_position(transfer.read());
                bar.set_message(format!(
                    "{} stored",
                    indicatif::BinaryBytes(transfer.stored())
                ));
            }
        }
    }
}

fn new_bar(transfer: &Transfer) -> ProgressBar {
    let (bar, template) = match transfer.total() {
        Some(total) => (
            ProgressBar::new(total),
            "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{spinner} {prefix}: {binary_bytes} read, {msg}, {binary_bytes_per_sec}",
        ),
    };
    let style = ProgressStyle::with_template(template)
        .expect("progress templates are valid")
        .progress_chars("=> ");
    bar.with_style(style)
        .with_prefix(transfer.object().to_owned())
}
