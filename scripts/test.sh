#!/usr/bin/env bash
# Runs every check sluice's CI runs, in this order: installs the stock tools
# the interoperability tests use (age, zstd) when missing, then format, lints,
# all tests, and the dependency audit against the offline advisory snapshot.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in age zstd; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "test.sh: the interoperability tests need ${missing[*]}; install them (apt-get install -y ${missing[*]})" >&2
        exit 1
    fi
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
scripts/deny.sh
