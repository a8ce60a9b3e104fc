#!/usr/bin/env bash
# Runs every check sluice's CI runs, in this order: installs the stock tools
# the interoperability tests use (age, zstd, systemd, tzdata) when missing, installs moto
# (the S3 server of the gc tests) and a newer PostgreSQL's binaries into .venv
# when missing, starts the local
# PostgreSQL and MariaDB the anonymizer's restore tests use when they are
# down, then format, lints, all tests, and the dependency audit against the
# offline advisory snapshot.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in age zstd; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
# systemd-analyze checks the units `sluice schedule` writes.
command -v systemd-analyze >/dev/null || missing+=(systemd)
# The schedules' time zones (Europe/Berlin, America/New_York in the tests).
[ -e /usr/share/zoneinfo/Europe/Berlin ] || missing+=(tzdata)
# openssl makes the certificates of the notification tests' https server.
command -v openssl >/dev/null || missing+=(openssl)
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

# Pinned, in .venv: moto, the S3 server for what s3s-fs lacks
# (ListMultipartUploads; tests/it/support/moto.rs starts it);
# prometheus-client, whose parser checks the metrics textfile; and pgserver,
# a wheel holding PostgreSQL 16's binaries: a server newer than Debian's
# pg_dump, for the version-mismatch test (only its binaries are used, so it
# goes in without its Python dependencies).
moto_version=5.2.5
prometheus_client_version=0.26.0
pgserver_version=0.1.4
if ! .venv/bin/python -c "import moto, moto.server, prometheus_client, sys; from importlib.metadata import version; sys.exit(moto.__version__ != '$moto_version' or version('prometheus-client') != '$prometheus_client_version')" 2>/dev/null; then
    echo "test.sh: installing moto $moto_version and prometheus-client $prometheus_client_version into .venv" >&2
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$moto_version" "prometheus-client==$prometheus_client_version"
fi
if ! .venv/bin/python -c "import sys; from importlib.metadata import version; sys.exit(version('pgserver') != '$pgserver_version')" 2>/dev/null; then
    echo "test.sh: installing pgserver $pgserver_version (PostgreSQL 16's binaries) into .venv" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "pgserver==$pgserver_version"
fi
export SLUICE_TEST_MOTO_PYTHON="$PWD/.venv/bin/python"
SLUICE_TEST_NEWER_POSTGRES="$(.venv/bin/python -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('pgserver').origin), 'pginstall', 'bin'))")"
export SLUICE_TEST_NEWER_POSTGRES

# PostgreSQL at 127.0.0.1:5432 (user postgres, trust) and MariaDB at
# 127.0.0.1:3306 (root, no password), as Debian's packages set them up.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "test.sh: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
fi
if ! mariadb-admin -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; then
    echo "test.sh: starting MariaDB" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 60); do
        mariadb-admin -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1 && break
        sleep 1
    done
fi
for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "test.sh: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
mariadb-admin -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1 || { echo "test.sh: MariaDB is not reachable on 127.0.0.1:3306" >&2; exit 1; }

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
scripts/deny.sh
