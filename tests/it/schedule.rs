//! `sluice schedule`: a set's cron expression becomes a systemd service and
//! timer that `systemd-analyze verify` accepts, with the exact
//! `OnCalendar=`; what has no exact equivalent is refused.

use std::{fs, process::Command};

use crate::support::{World, stdout_of};

fn world(schedule: &str) -> World {
    let w = World::new();
    fs::write(
        w.path("sluice.toml"),
        format!(
            "[store]\nurl = \"{}\"\n[keys]\nrecipients = [\"{}\"]\n[sets.prod]\n{schedule}\n[[sets.prod.sources]]\nname = \"db\"\nkind = \"command\"\nbackup = [\"echo\", \"x\"]\n",
            w.store_url(),
            w.recipient
        ),
    )
    .unwrap();
    w
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let w = world(
        "schedule = \"30 2 * * 1-5\"\ntimezone = \"Europe/Berlin\"\nmetrics-file = \"/var/lib/node-exporter/sluice.prom\"",
    );
    let printed = stdout_of(
        &w.sluice()
            .args(["--config", "sluice.toml", "schedule", "print", "prod"])
            .output()
            .unwrap(),
    );
    assert!(
        printed.contains("OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 02:30:00 Europe/Berlin"),
        "{printed}"
    );
    assert!(printed.contains("Persistent=true"), "{printed}");
    assert!(
        printed.contains(&format!(
            "ReadWritePaths={} /var/lib/node-exporter\n",
            w.path("store").display()
        )),
        "the store and the metrics file's directory are writable: {printed}"
    );

    let missing = w
        .sluice()
        .args([
            "--config",
            "sluice.toml",
            "schedule",
            "install",
            "prod",
            "--dir",
            "units",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("--dir `units` is not a directory: create it first"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    fs::create_dir(w.path("units")).unwrap();
    stdout_of(
        &w.sluice()
            .args([
                "--config",
                "sluice.toml",
                "schedule",
                "install",
                "prod",
                "--dir",
                "units",
            ])
            .output()
            .unwrap(),
    );
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(w.path("units/sluice-backup-prod.service"))
        .arg(w.path("units/sluice-backup-prod.timer"))
        .output()
        .expect("systemd-analyze runs (apt-get install systemd)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let service = fs::read_to_string(w.path("units/sluice-backup-prod.service")).unwrap();
    let exec = service
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap();
    assert!(exec.ends_with("sluice.toml backup prod"), "{exec}");
    let binary = exec["ExecStart=".len()..].split(' ').next().unwrap();
    assert!(std::path::Path::new(binary).is_file(), "{exec}");
}

/// `schedule print prod` with `set_lines`, which must fail as a usage or
/// config error (exit 2); its stderr.
fn print_refused(set_lines: &str) -> String {
    let w = world(set_lines);
    let out = w
        .sluice()
        .args(["--config", "sluice.toml", "schedule", "print", "prod"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_schedule_without_an_exact_timer_is_refused() {
    let stderr = print_refused("schedule = \"0 2 1 * 1\"");
    assert!(stderr.contains("which cron joins with OR"), "{stderr}");
}

#[test]
fn a_set_without_a_schedule_says_how_to_add_one() {
    let stderr = print_refused("");
    assert!(stderr.contains("has no `schedule`"), "{stderr}");
}

#[test]
fn the_systemd_example_is_what_schedule_install_writes() {
    let w = World::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("examples/sluice.toml");
    w.sluice()
        .arg("--config")
        .arg(&config)
        .args(["schedule", "install", "prod", "--dir"])
        .arg(w.path(""))
        .env("PGPASSWORD", "x")
        .env("SHOP_DB_PASSWORD", "x")
        .env("MONGO_URI", "mongodb://localhost")
        .env("HC_UUID", "5a1e0f7c-2b6d-4c3e-9f00-5ec7e7c0ffee")
        .assert()
        .success();
    let sluice = assert_cmd::cargo::cargo_bin("sluice");
    for unit in ["sluice-backup-prod.service", "sluice-backup-prod.timer"] {
        let written = fs::read_to_string(w.path(unit))
            .unwrap()
            .replace(sluice.to_str().unwrap(), "/usr/local/bin/sluice")
            .replace(config.to_str().unwrap(), "/etc/sluice/sluice.toml");
        let example = fs::read_to_string(root.join("examples/systemd").join(unit)).unwrap();
        assert_eq!(written, example, "examples/systemd/{unit} is out of date");
    }
}
