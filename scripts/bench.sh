#!/usr/bin/env bash
# Backs up a generated 1 GiB dump-like file (a `files` source: sluice reads it
# itself, as zstd does) to a file:// store with sluice and,
# in the same run on the same data, times the shell pipeline
# `zstd -3 -T0 | age -r KEY > file`. Prints both walls (best of RUNS), the
# ratio sluice/pipeline (goal <= 1.0) and sluice's peak RSS (goal <= 128 MiB).
#
#   scripts/bench.sh            # 1 GiB, 3 runs each, in /dev/shm
#   SIZE_MIB=256 RUNS=1 BENCH_DIR=/var/tmp scripts/bench.sh
#   scripts/bench.sh postgres   # database mode, see bench_postgres below
#   scripts/bench.sh s3         # S3 mode, see bench_s3 below
#
# By default everything lives in /dev/shm, so the figures measure the
# pipelines and not the disk (whose writeback noise here is larger than the
# difference being measured); on a disk, sluice also fsyncs what the shell
# pipeline leaves in the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${SIZE_MIB:-1024}
runs=${RUNS:-3}
for tool in zstd age /usr/bin/time python3 bc; do
    command -v "$tool" >/dev/null || { echo "bench.sh needs $tool (apt-get install -y zstd age time)" >&2; exit 1; }
done
cargo build --release --quiet
sluice=$PWD/target/release/sluice

# Database mode: a generated PostgreSQL database of about ROWS×100 bytes of
# dump (10M rows ≈ 1 GiB), made with generate_series. Times, in each of RUNS
# rounds: pg_dump -Fc -Z0 > /dev/null (the physical limit), sluice backup,
# and pg_dump | zstd -3 -T0 | age; then sluice restore into a new database
# vs pg_restore of the uncompressed dump. Prints the best and the median
# wall of each, and the ratios. Goals: backup <= 1.15 x pg_dump alone,
# restore <= 1.1 x the plain restore.
bench_postgres() {
    local rows=${ROWS:-10000000} db=sluice_bench_src
    export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
    work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/sluice-bench.XXXXXX")
    trap 'rm -rf "$work"; for d in sluice_bench_src sluice_bench_a sluice_bench_b; do psql -qXc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null; done; psql -qXAtc "SELECT datname FROM pg_database WHERE datname LIKE '"'"'sluice_bench_a_sluice%'"'"'" | while read -r d; do psql -qXc "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)"; done' EXIT
    for d in "$db" sluice_bench_a sluice_bench_a_sluice_previous sluice_bench_b; do
        psql -qX -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" 2>/dev/null
    done
    psql -qX -c "CREATE DATABASE $db"
    echo "generating $rows rows..." >&2
    psql -qX -d "$db" -c "CREATE TABLE events (id bigint PRIMARY KEY, account int NOT NULL, kind text NOT NULL, payload text, at timestamptz NOT NULL);
        INSERT INTO events SELECT g, g % 100000, (ARRAY['login','view','buy','logout'])[1 + g % 4],
               md5(g::text) || ' ' || md5((g * 7)::text), '2026-01-01'::timestamptz + g * interval '1 second'
          FROM generate_series(1, $rows) g;"
    "$sluice" keygen -o "$work/key.txt" > "$work/recipient.txt" 2>/dev/null
    local recipient; recipient=$(cat "$work/recipient.txt")
    # Signed as a real backup host signs, and trusted by the restore.
    "$sluice" keygen --signing -o "$work/signing.key" > "$work/signer.txt" 2>/dev/null
    export SLUICE_SIGNING_KEY_FILE=$work/signing.key SLUICE_TRUSTED_SIGNERS
    SLUICE_TRUSTED_SIGNERS=$(cat "$work/signer.txt")
    mkdir "$work/store"
    pg_dump -Fc -Z0 -d "$db" > "$work/plain.pgdump"   # warm up, and the plain restore's input
    local size_mib=$(( $(stat -c %s "$work/plain.pgdump") / 1048576 ))
    # Prints "WALL BUSY": seconds, and CPU-seconds the whole host was busy
    # (the server included), from /proc/stat.
    busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
    # Each timed run starts with nothing left to write back: a restore that
    # followed another would otherwise pay for the checkpoint of its data.
    t() {
        local start end b0 b1
        sync; psql -qX -c CHECKPOINT
        b0=$(busy); start=$(date +%s.%N)
        "$@" > /dev/null || { echo "bench.sh: failed: $*" >&2; exit 1; }
        end=$(date +%s.%N); b1=$(busy)
        echo "$(echo "$end - $start" | bc) $(echo "scale=2; ($b1 - $b0) / $(getconf CLK_TCK)" | bc)"
    }
    # Contenders alternate within each of RUNS rounds, so a slow spell of
    # the machine hits all of them.
    : > "$work/results"
    for i in $(seq "$runs"); do
        echo "round $i of $runs..." >&2
        # (Assigned first: a failure inside `$(…)` in echo's arguments would
        # not stop the script.)
        r=$(t sh -c "pg_dump -Fc -Z0 -d $db > /dev/null"); echo "dump $r" >> "$work/results"
        r=$(t /usr/bin/time -f %M -o "$work/rss" "$sluice" -q backup bench --store "file://$work/store" -r "$recipient" --source "db=postgres:$db")
        echo "backup $r $(tail -n1 "$work/rss")" >> "$work/results"
        r=$(t sh -c "pg_dump -Fc -Z0 -d $db | zstd -3 -T0 -q | age -r $recipient > $work/pipe.age"); echo "pipe $r" >> "$work/results"
        psql -qX -c "DROP DATABASE IF EXISTS sluice_bench_b" -c "CREATE DATABASE sluice_bench_b TEMPLATE template0"
        psql -qX -c "DROP DATABASE IF EXISTS sluice_bench_a"
        # The restores take turns going first.
        if [ $((i % 2)) = 1 ]; then
            r=$(t pg_restore --exit-on-error -d sluice_bench_b "$work/plain.pgdump"); echo "plain $r" >> "$work/results"
        fi
        r=$(t "$sluice" -q restore bench --store "file://$work/store" -i "$work/key.txt" --into sluice_bench_a); echo "restore $r" >> "$work/results"
        if [ $((i % 2)) = 0 ]; then
            r=$(t pg_restore --exit-on-error -d sluice_bench_b "$work/plain.pgdump"); echo "plain $r" >> "$work/results"
        fi
    done
    python3 - "$size_mib" "$work/results" <<'PY'
import statistics, sys
size, path = int(sys.argv[1]), sys.argv[2]
runs = {}
for line in open(path):
    name, wall, busy, *rss = line.split()
    runs.setdefault(name, []).append((float(wall), float(busy), int(rss[0]) if rss else 0))
def walls(name):
    return sorted(w for w, _, _ in runs[name])
def row(label, name, base=None, goal=None):
    w = walls(name)
    cpu = statistics.median(b for _, b, _ in runs[name])
    text = f"{label:<27} best {w[0]:6.2f} s  median {statistics.median(w):6.2f} s  host CPU {cpu:4.1f} s"
    if base:
        b = walls(base)
        text += f"  ratio {w[0] / b[0]:.2f} best, {statistics.median(w) / statistics.median(b):.2f} median"
        if goal:
            text += f" (goal <= {goal})"
    print(text)
print(f"dump: {size} MiB (pg_dump -Fc -Z0), {len(walls('dump'))} rounds; walls in seconds")
row("pg_dump > /dev/null:", "dump")
row("sluice backup:", "backup", "dump", 1.15)
row("pg_dump | zstd -3 | age:", "pipe")
print(f"sluice / the pipeline:      {walls('backup')[0] / walls('pipe')[0]:.2f} best")
print(f"sluice peak RSS:            {max(r for _, _, r in runs['backup']) / 1024:.0f} MiB")
row("pg_restore (uncompressed):", "plain")
row("sluice restore:", "restore", "plain", 1.1)
PY
}

# S3 mode: the same dump-like data (SIZE_MIB, 1 GiB by default; run it with
# SIZE_MIB=4096 too) backed up to s3s-fs on 127.0.0.1 by sluice and, in the
# same run, by `zstd -3 -T0 | age -r KEY | aws s3 cp - s3://…` (the AWS CLI
# on PATH). Goals: ratio sluice/pipeline <= 0.7, sluice's peak RSS <= 128 MiB.
# s3s-fs 0.14.1 is installed into target/tools on first use.
bench_s3() {
    command -v aws >/dev/null || { echo "bench.sh s3 needs the AWS CLI (apt-get install -y awscli)" >&2; exit 1; }
    local s3s=target/tools/bin/s3s-fs
    [ -x "$s3s" ] || cargo install s3s-fs --version 0.14.1 --features binary --locked --root target/tools
    generate_data
    mkdir -p "$work/s3/bench"
    local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$s3s" --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret "$work/s3" > "$work/s3s.log" 2>&1 &
    s3s_pid=$!
    trap 'kill "$s3s_pid" 2>/dev/null; rm -rf "$work"' EXIT
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    cat > "$work/sluice.toml" <<TOML
[store]
url = "s3://bench/sluice"
endpoint = "http://127.0.0.1:$port"
path-style = true
TOML
    best() { sort -n | head -1; }
    local sluice_walls=() pipe_walls=() rss=() wall kib
    for i in $(seq "$runs"); do
        /usr/bin/time -f "%e %M" -o "$work/t" "$sluice" -q --config "$work/sluice.toml" backup bench \
            -r "$recipient" --source "data=files:$work/dir" > /dev/null
        read -r wall kib < "$work/t"
        sluice_walls+=("$wall"); rss+=("$kib")
        rm -rf "$work/s3/bench/sluice"
        /usr/bin/time -f "%e" -o "$work/t" sh -c "zstd -3 -T0 -q -c '$work/dir/data' | age -r '$recipient' | aws --endpoint-url http://127.0.0.1:$port s3 cp --only-show-errors - s3://bench/pipe.age"
        pipe_walls+=("$(cat "$work/t")")
        rm -f "$work/s3/bench/pipe.age"
    done
    report "$(printf '%s\n' "${sluice_walls[@]}" | best)" "$(printf '%s\n' "${pipe_walls[@]}" | best)" \
        "$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)" "s3s-fs on 127.0.0.1 ($bench_dir)" \
        "zstd|age|aws s3 cp" 0.7
}

if [ "${1:-}" = postgres ]; then
    bench_postgres
    exit 0
fi

bench_dir=${BENCH_DIR:-/dev/shm}
[ -d "$bench_dir" ] || bench_dir=${TMPDIR:-/tmp}
work=$(mktemp -d "$bench_dir/sluice-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 64 MiB of distinct dump-like rows, repeated: compressible like a real
# pg_dump, and no repeat falls inside zstd's window at level 3. Sets
# `recipient` and makes $work/key.txt.
generate_data() {
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
}

# Prints the figures: SLUICE_WALL PIPE_WALL RSS_KIB WHERE PIPELINE GOAL.
report() {
    python3 - "$size_mib" "$@" <<'PY'
import sys
size, s, p, rss, where, pipeline, goal = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
print(f"data:                {size} MiB, dump-like text, to {where}")
print(f"sluice backup:       {s:.2f} s  ({size / s:.0f} MiB/s)")
print(f"{pipeline + ':':<21}{p:.2f} s  ({size / p:.0f} MiB/s)")
print(f"ratio sluice/pipe:   {s / p:.2f}  (goal <= {goal})")
print(f"sluice peak RSS:     {rss / 1024:.0f} MiB  (goal <= 128 MiB)")
PY
}

if [ "${1:-}" = s3 ]; then
    bench_s3
    exit 0
fi
generate_data
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
report "$(printf '%s\n' "${sluice_walls[@]}" | best)" "$(printf '%s\n' "${pipe_walls[@]}" | best)" \
    "$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)" "a file:// store in $bench_dir" "zstd -3 -T0 | age" 1.0
