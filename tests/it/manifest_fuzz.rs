//! The body of the `manifest` fuzz target (fuzz/fuzz_targets/manifest.rs),
//! run as a property test: the manifest reader never panics, and whatever
//! it accepts is internally consistent.

use proptest::prelude::*;
use sluice::catalog::Manifest;

const VALID: &str = r#"{"format_version":1,"set":"prod","id":"20261122T010000Z-3fa9","kind":"manual","started_at":"2026-11-22T01:00:00Z","finished_at":"2026-11-22T01:00:05Z","sluice_version":"0.1.0","host":"db1","objects":[{"source":"db","source_kind":"command","format":"out","name":"db.out.zst.age","compression_level":3,"anonymized":false,"recipients":[],"plaintext_size":1,"stored_size":5,"part_size":4,"sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","parts":["bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"]}]}"#;

fn check(bytes: &[u8]) {
    if let Ok(m) = Manifest::from_json("fuzz/manifest.json", bytes) {
        for o in &m.objects {
            assert_eq!(
                o.parts.len() as u64,
                o.stored_size.div_ceil(o.part_size).max(1)
            );
            assert!(!o.name.contains('/') && !o.name.starts_with('.'));
        }
    }
}

#[test]
fn the_seed_manifest_is_accepted() {
    assert!(Manifest::from_json("k", VALID.as_bytes()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn mutated_manifests_never_panic(flips in proptest::collection::vec((0usize..VALID.len(), any::<u8>()), 1..8)) {
        let mut bytes = VALID.as_bytes().to_vec();
        for (at, value) in flips {
            bytes[at] = value;
        }
        check(&bytes);
    }
}
