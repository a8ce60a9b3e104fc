//! Throughput of the anonymizer on a generated ~64 MiB PostgreSQL plain dump
//! with six rules on two tables, the rest kept by glob (scanned) or by name.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use sluice::anonymize::{Dialect, Rules, Salt, anonymize};

#[path = "support/dump.rs"]
mod dump;

fn bench(c: &mut Criterion) {
    let mut input = Vec::new();
    dump::write_dump(&mut input, 64 << 20).unwrap();
    let salt = Salt::new(b"bench-salt-0123456789abcdef".to_vec()).unwrap();
    let mut group = c.benchmark_group("anonymize_postgres_64MiB");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    for (name, scan) in [
        ("rest_kept_by_name", false),
        ("rest_kept_by_glob_scanned", true),
    ] {
        let rules = Rules::from_toml(&dump::rules(scan)).unwrap();
        let mut out = Vec::with_capacity(input.len() + input.len() / 8);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let report =
                    anonymize(input.as_slice(), &mut out, &rules, &salt, Dialect::Postgres)
                        .unwrap();
                black_box(report);
            })
        });
    }
    group.finish();
}

// criterion's macros generate undocumented functions.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(harness::benches);
