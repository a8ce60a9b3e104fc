//! Measures the anonymizer's MB/s on one core over a generated ~1 GiB
//! PostgreSQL plain dump (six rules on two tables), written once under /tmp.
//!
//! `cargo run --release --example anon_throughput [-- SIZE_MIB]`

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::time::Instant;

use sluice::anonymize::{Dialect, Rules, Salt, anonymize};

#[path = "../benches/support/dump.rs"]
mod dump;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args().nth(1).map_or(Ok(1024), |s| s.parse())?;
    let path = std::env::temp_dir().join(format!("sluice-anon-bench-{mib}MiB.sql"));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        let mut w = BufWriter::new(File::create(&tmp)?);
        dump::write_dump(&mut w, mib << 20)?;
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, &path)?;
    }
    let size = std::fs::metadata(&path)?.len();
    let salt = Salt::new(b"bench-salt-0123456789abcdef".to_vec())?;
    for (name, scan) in [
        ("rest kept by name", false),
        ("rest kept by glob, scanned", true),
    ] {
        let rules = Rules::from_toml(&dump::rules(scan))?;
        let input = BufReader::with_capacity(1 << 20, File::open(&path)?);
        let start = Instant::now();
        let report = anonymize(input, std::io::sink(), &rules, &salt, Dialect::Postgres)?;
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name}: {:.1} MB/s ({} bytes in {secs:.2} s, {} columns transformed)",
            size as f64 / secs / 1e6,
            size,
            report
                .columns
                .iter()
                .filter(|c| matches!(c.action, sluice::anonymize::ColumnAction::Transformed(_)))
                .count()
        );
    }
    Ok(())
}
