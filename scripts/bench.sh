#!/usr/bin/env bash
# Backs up a generated 1 GiB dump-like file (a `files` source: sluice reads it
# itself, as zstd does) to a file:// store with sluice and,
# in the same run on the same data, times the shell pipeline
# `zstd -3 -T0 | age -r KEY > file`. Prints both walls (best of RUNS), the
# ratio sluice/pipeline (goal <= 1.0) and sluice's peak RSS (goal <= 128 MiB).
#
#   scripts/bench.sh            # 1 GiB, 3 runs each, in /dev/shm
#   SIZE_MIB=256 RUNS=1 BENCH_DIR=/var/tmp scripts/bench.sh
#
# By default everything lives in /dev/shm, so the figures measure the
# pipelines and not the disk (whose writeback noise here is larger than the
# difference being measured); on a disk, sluice also fsyncs what the shell
# pipeline leaves in the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${SIZE_MIB:-1024}
runs=${RUNS:-3}
for tool in zstd age /usr/bin/time python3; do
    command -v "$tool" >/dev/null || { echo "bench.sh needs $tool (apt-get install -y zstd age time)" >&2; exit 1; }
done
cargo build --release --quiet
sluice=$PWD/target/release/sluice
bench_dir=${BENCH_DIR:-/dev/shm}
[ -d "$bench_dir" ] || bench_dir=${TMPDIR:-/tmp}
work=$(mktemp -d "$bench_dir/sluice-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 64 MiB of distinct dump-like rows, repeated: compressible like a real
# pg_dump, and no repeat falls inside zstd's window at level 3.
mkdir "$work/dir"
python3 - "$work/dir/data" "$size_mib" <<'PY'
import random, sys
path, size = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(42)
names = ["ada", "grace", "linus", "margaret", "ken", "barbara", "dennis", "frances"]
rows = []
n = 0
block = 64 << 20
total = 0
while total < min(block, size):
    n += 1
    row = f"{n}\t{rnd.choice(names)}{rnd.randrange(10**6)}@example.com\t{rnd.randrange(10**9)}\t2026-{rnd.randrange(1,13):02}-{rnd.randrange(1,29):02}\t{rnd.random():.6f}\n"
    rows.append(row)
    total += len(row)
chunk = "".join(rows).encode()
with open(path, "wb") as f:
    written = 0
    while written < size:
        part = chunk[: size - written]
        f.write(part)
        written += len(part)
PY
cat "$work/dir/data" > /dev/null  # warm the page cache for both contenders
"$sluice" keygen -o "$work/key.txt" > "$work/recipient.txt" 2>/dev/null
recipient=$(cat "$work/recipient.txt")
mkdir "$work/store"

best() { sort -n | head -1; }
sluice_walls=() pipe_walls=() rss=()
for i in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/t" "$sluice" -q backup bench --store "file://$work/store" \
        -r "$recipient" --source "data=files:$work/dir" > /dev/null
    read -r wall kib < "$work/t"
    sluice_walls+=("$wall"); rss+=("$kib")
    rm -rf "$work/store"/bench
    /usr/bin/time -f "%e" -o "$work/t" sh -c "zstd -3 -T0 -q -c '$work/dir/data' | age -r '$recipient' > '$work/pipe.age'"
    pipe_walls+=("$(cat "$work/t")")
    rm -f "$work/pipe.age"
done
s=$(printf '%s\n' "${sluice_walls[@]}" | best)
p=$(printf '%s\n' "${pipe_walls[@]}" | best)
r=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
python3 - "$size_mib" "$s" "$p" "$r" "$bench_dir" <<'PY'
import sys
size, s, p, rss = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"data:                {size} MiB, dump-like text, in {sys.argv[5]}")
print(f"sluice backup:       {s:.2f} s  ({size / s:.0f} MiB/s)")
print(f"zstd -3 -T0 | age:   {p:.2f} s  ({size / p:.0f} MiB/s)")
print(f"ratio sluice/pipe:   {s / p:.2f}  (goal <= 1.0)")
print(f"sluice peak RSS:     {rss / 1024:.0f} MiB  (goal <= 128 MiB)")
PY
