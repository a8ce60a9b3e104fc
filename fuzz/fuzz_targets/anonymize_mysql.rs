//! `cargo +nightly fuzz run anonymize_mysql`: the MariaDB/MySQL anonymizer on
//! arbitrary bytes must not panic, hang or blow up its output. The same body
//! runs as a proptest in `tests/anonymize_properties.rs`.
#![no_main]

use sluice::anonymize::{Dialect, fuzz_one};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_one(Dialect::Mysql, data));
