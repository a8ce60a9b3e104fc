//! The manifest reader on arbitrary bytes: it must never panic, and whatever
//! it accepts must be internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::catalog::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json("fuzz/manifest.json", data) {
        for o in &m.objects {
            assert_eq!(o.parts.len() as u64, o.stored_size.div_ceil(o.part_size).max(1));
            assert!(!o.name.contains('/') && !o.name.starts_with('.'));
        }
    }
});
