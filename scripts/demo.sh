#!/usr/bin/env bash
# The main job on the embedded file:// store, end to end, in a scratch
# directory: make a key and a signing key, back up a directory (signed), list
# it, restore it elsewhere (checking the signature),
# compare, and open the stored object with the stock age and zstd tools.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
sluice=$PWD/target/debug/sluice
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

mkdir -p store data/photos
echo "hello from sluice" > data/readme.txt
head -c 5000000 /dev/urandom > data/photos/big.bin
ln -s readme.txt data/link

set -x
"$sluice" keygen -o key.txt > recipient.txt
"$sluice" keygen --signing -o signing.key > signer.txt
"$sluice" backup demo --store "file://$work/store" --recipient "$(cat recipient.txt)" \
    --signing-key signing.key --source "data=files:$work/data" --note "first backup"
"$sluice" list --store "file://$work/store" --trusted-signer "$(cat signer.txt)"
"$sluice" restore demo@latest --store "file://$work/store" --trusted-signer "$(cat signer.txt)" \
    --identity key.txt --into "$work/restored"
diff -r data restored
set +x
if command -v age >/dev/null && command -v zstd >/dev/null; then
    object=$(find store -name 'data.tar.zst.age')
    age -d -i key.txt "$object" | zstd -d | tar -t | head -5
fi
echo "demo: backup restored byte for byte"
