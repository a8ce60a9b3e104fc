//! Integration tests: the real `sluice` binary against a `file://` store in
//! a temporary directory, S3 servers (s3s-fs in process, moto), real child
//! processes, and the stock `age` and `zstd` tools.

mod anonymize_cli;
mod anonymize_fixtures;
mod anonymize_properties;
mod anonymized_backup;
mod cli_errors;
mod command_round_trip;
mod config_file;
mod daemon;
mod drill;
mod files_round_trip;
mod gc;
mod hooks;
mod iam;
mod integrity;
mod interop;
mod interrupt;
mod lease;
mod manifest_fuzz;
mod metrics;
mod mysql;
mod notify;
mod object_lock;
mod passphrase;
mod postgres;
mod progress;
mod prune;
mod s3_store;
mod schedule;
mod secrets;
mod selection;
mod signing;
mod tar_safety;
mod verify;

mod support;
