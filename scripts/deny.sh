#!/usr/bin/env bash
# Checks dependencies with cargo-deny against the offline RustSec snapshot in
# ../shared/advisory-db (no network needed): advisories, banned crates
# (tokio-tar), licenses and sources. Installs cargo-deny if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot=../shared/advisory-db
if [ ! -x "$snapshot/make-git-copy.sh" ]; then
    echo "deny.sh: the advisory snapshot $snapshot is missing" >&2
    exit 1
fi
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked
"$snapshot/make-git-copy.sh" target/advisory-db
cargo fetch --locked -q
cargo deny --offline check advisories bans licenses sources
