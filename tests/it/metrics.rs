//! The Prometheus textfile: after a success and after a failure it parses
//! with the Prometheus client's own parser (prometheus-client, installed
//! into .venv by scripts/test.sh), and a failure keeps the time of the last
//! success.

use std::{fs, process::Command};

use crate::support::World;

/// A Python with prometheus-client: `SLUICE_TEST_MOTO_PYTHON` (the .venv
/// scripts/test.sh makes), else `python3` if it has the module.
fn python() -> String {
    let candidates = [
        std::env::var("SLUICE_TEST_MOTO_PYTHON").ok(),
        Some("python3".to_owned()),
    ];
    for python in candidates.into_iter().flatten() {
        let ok = Command::new(&python)
            .args(["-c", "import prometheus_client"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return python;
        }
    }
    panic!(
        "the metrics test needs Python's prometheus-client: run scripts/test.sh (it installs it into .venv), or set SLUICE_TEST_MOTO_PYTHON to a Python that has it"
    );
}

/// Every sample of the textfile as `name labels value`, as Prometheus's
/// parser reads them.
fn samples(path: &std::path::Path) -> Vec<String> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(s.name, labels, repr(s.value))
"#;
    let out = Command::new(python())
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not Prometheus text format: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(path).unwrap()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn value(samples: &[String], series: &str) -> f64 {
    samples
        .iter()
        .find_map(|s| s.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn the_textfile_parses_after_a_success_and_after_a_failure() {
    let w = World::new();
    let metrics = w.path("textfile/sluice-prod.prom");
    fs::create_dir(w.path("textfile")).unwrap();
    let config = |command: &str| {
        fs::write(
            w.path("sluice.toml"),
            format!(
                "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[sets.prod]\nmetrics-file = \"{}\"\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = {command}\n",
                w.store_url(),
                w.recipient,
                metrics.display()
            ),
        )
        .unwrap();
    };
    let backup = || {
        w.sluice()
            .args(["--config", "sluice.toml", "backup", "prod"])
            .output()
            .unwrap()
    };

    config(r#"["printf", "twelve bytes"]"#);
    assert!(backup().status.success());
    let after_success = samples(&metrics);
    assert_eq!(value(&after_success, "sluice_backup_success set=prod"), 1.0);
    assert_eq!(
        value(
            &after_success,
            "sluice_backup_read_bytes object=db.out.zst.age,set=prod,source=db"
        ),
        12.0
    );
    let last_success = value(
        &after_success,
        "sluice_backup_last_success_timestamp_seconds set=prod",
    );
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!((now - last_success).abs() < 300.0, "{last_success}");

    config(r#"["false"]"#);
    assert_eq!(backup().status.code(), Some(1));
    let after_failure = samples(&metrics);
    assert_eq!(value(&after_failure, "sluice_backup_success set=prod"), 0.0);
    assert_eq!(
        value(
            &after_failure,
            "sluice_backup_last_success_timestamp_seconds set=prod"
        ),
        last_success
    );
    assert!(
        !after_failure
            .iter()
            .any(|s| s.starts_with("sluice_backup_read_bytes")),
        "{after_failure:#?}"
    );
    // Written by rename: no temporary file is left beside it.
    assert_eq!(fs::read_dir(w.path("textfile")).unwrap().count(), 1);
}

#[test]
fn a_metrics_file_that_cannot_be_written_fails_the_run_but_keeps_the_backup() {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[sets.prod]\nmetrics-file = \"{}\"\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"printf\", \"x\"]\n",
            w.store_url(),
            w.recipient,
            w.path("no-such-dir/sluice-prod.prom").display()
        ),
    )
    .unwrap();
    let out = w
        .sluice()
        .args(["--config", "sluice.toml", "backup", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is committed, but the metrics file could not be written"),
        "{stderr}"
    );
    assert_eq!(w.listed_ids("prod").len(), 1);
}
