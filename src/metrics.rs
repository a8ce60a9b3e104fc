//! The Prometheus textfile a set's backups leave for node_exporter's
//! textfile collector: outcome, duration, last success, and bytes read and
//! stored per source. Written whole to a temporary file and renamed, so the
//! collector never reads half a file.

use std::{
    fmt::Write as _,
    fs,
    io::{self, Write as _},
    path::Path,
    time::Duration,
};

use jiff::Timestamp;

use crate::catalog::Manifest;

/// What one backup run did.
#[derive(Debug)]
pub struct Run<'a> {
    /// The set.
    pub set: &'a str,
    /// When it ended.
    pub finished: Timestamp,
    /// How long it took.
    pub duration: Duration,
    /// The committed backup, for a run that succeeded.
    pub manifest: Option<&'a Manifest>,
}

const LAST_SUCCESS: &str = "sluice_backup_last_success_timestamp_seconds";

/// Writes the textfile for `run` to `path`, keeping the last success time
/// the file held when this run failed.
pub fn write(path: &Path, run: &Run<'_>) -> io::Result<()> {
    let set = escape(run.set);
    let last_success = match run.manifest {
        Some(_) => Some(run.finished.as_millisecond() as f64 / 1000.0),
        None => fs::read_to_string(path)
            .ok()
            .and_then(|old| previous(&old, &format!("{LAST_SUCCESS}{{set=\"{set}\"}}"))),
    };
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let set_label = format!("set=\"{set}\"");
    gauge(
        "sluice_backup_success",
        "Whether the set's last backup succeeded (1) or failed (0).",
        &[(
            set_label.clone(),
            f64::from(u8::from(run.manifest.is_some())),
        )],
    );
    gauge(
        "sluice_backup_last_run_timestamp_seconds",
        "When the set's last backup ended, successful or not.",
        &[(
            set_label.clone(),
            run.finished.as_millisecond() as f64 / 1000.0,
        )],
    );
    gauge(
        "sluice_backup_duration_seconds",
        "How long the set's last backup took.",
        &[(set_label.clone(), run.duration.as_secs_f64())],
    );
    if let Some(at) = last_success {
        gauge(
            LAST_SUCCESS,
            "When the set's last successful backup ended.",
            &[(set_label, at)],
        );
    }
    if let Some(manifest) = run.manifest {
        let mut read: Vec<(String, f64)> = Vec::new();
        let mut stored: Vec<(String, f64)> = Vec::new();
        for o in &manifest.objects {
            let labels = format!(
                "set=\"{set}\",source=\"{}\",object=\"{}\"",
                escape(&o.source),
                escape(&o.name)
            );
            read.push((labels.clone(), o.plaintext_size as f64));
            stored.push((labels, o.stored_size as f64));
        }
        gauge(
            "sluice_backup_read_bytes",
            "Bytes the last successful backup read from each source.",
            &read,
        );
        gauge(
            "sluice_backup_stored_bytes",
            "Bytes the last successful backup stored for each object.",
            &stored,
        );
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let mut file = tempfile::Builder::new()
        .prefix(".sluice-metrics")
        .tempfile_in(dir.unwrap_or(Path::new(".")))?;
    file.write_all(out.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The value of the sample `series` (name and labels) in an old textfile.
fn previous(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
