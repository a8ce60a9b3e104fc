//! The backup pipeline (zstd → age → parts → `file://` store) on in-memory
//! data, so codec and hashing costs show without a source process. For the
//! end-to-end comparison with `zstd | age`, see scripts/bench.sh.

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_main};
use sluice::{
    Cancel,
    config::Compression,
    keys::{Recipients, generate},
    pipeline::{UploadSettings, upload},
    store::{LocalStore, Store},
};

/// Text shaped like a database dump: compressible, not trivially so.
fn dump_like(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut i: u64 = 0;
    while out.len() < len {
        i += 1;
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        writeln!(
            out,
            "{i}\tuser{}@example.com\t{}\t{:x}\t2026-11-{:02}",
            h % 100_000,
            h % 9973,
            h,
            h % 28 + 1
        )
        .unwrap();
    }
    out.truncate(len);
    out
}

fn pipeline(c: &mut Criterion) {
    let data = bytes::Bytes::from(dump_like(64 << 20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().to_owned()).unwrap();
    let key = generate();
    let recipients = Recipients::parse(&[key.recipient], "bench").unwrap();
    let mut group = c.benchmark_group("backup_pipeline");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    for level in [1, 3] {
        let settings = UploadSettings {
            compression: Compression { level, threads: 0 },
            part_size: 16 << 20,
            parallel_parts: 4,
            stall_timeout: std::time::Duration::ZERO,
            meter: sluice::progress::Meter::default(),
        };
        let mut n = 0u64;
        group.bench_function(format!("zstd_level_{level}"), |b| {
            b.iter(|| {
                n += 1;
                let data = data.clone();
                runtime.block_on(async {
                    let key = format!("bench/{level}-{n}/obj.zst.age");
                    upload(
                        &store,
                        &key,
                        recipients.encryptor().unwrap(),
                        &settings,
                        &Cancel::new(),
                        move |out: &mut dyn Write| {
                            out.write_all(&data)
                                .map_err(sluice::source::SourceError::Output)
                        },
                    )
                    .await
                    .unwrap();
                    store.delete(&key).await.unwrap();
                })
            })
        });
    }
    group.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::pipeline);
}
criterion_main!(group::benches);
