#!/usr/bin/env bash
# scripts/test.sh — the one command that runs the whole Kiroku test suite.
#
# Installs Debian's chromium and chromium-driver when missing (the browser tests), starts
# a throwaway PostgreSQL 15 server (fresh data dir, free port on
# 127.0.0.1), exports KIROKU_TEST_POSTGRES_URL for the tests, then runs
#   cargo fmt --all --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo nextest run --workspace --no-fail-fast [ARGS...]   (if cargo-nextest is installed)
#   cargo test --workspace --all-targets [ARGS...]           (otherwise)
# stopping at the first failure. The server and its data dir are always
# removed on exit.
#
# Extra arguments are passed to the test command, e.g. `scripts/test.sh storage`.
#
# Environment:
#   KIROKU_SKIP_LINT=1   skip cargo fmt and cargo clippy (quick local runs)
#   KIROKU_PG_ONLY=1     only start PostgreSQL, run a smoke check with psql, and exit
#   KIROKU_PG_BIN=DIR    PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail

PG_BIN="${KIROKU_PG_BIN:-/usr/lib/postgresql/15/bin}"

say() { printf '== %s\n' "$*"; }
die() { printf '!! %s\n' "$*" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."

is_root=0
[[ "$(id -u)" -eq 0 ]] && is_root=1

# Run a command as the postgres user when we are root (initdb and pg_ctl
# refuse to run as root); run it directly otherwise. Runs from inside the
# temp dir so the postgres user never needs access to our working directory.
as_pg() {
    if (( is_root )); then
        if command -v runuser >/dev/null 2>&1; then
            (cd "$PG_TMP" && runuser -u postgres -- "$@")
        else
            (cd "$PG_TMP" && su postgres -s /bin/bash -c "$(printf '%q ' "$@")")
        fi
    else
        (cd "$PG_TMP" && "$@")
    fi
}

# --- PostgreSQL binaries --------------------------------------------------
if [[ ! -x "$PG_BIN/initdb" ]]; then
    say "PostgreSQL not found in $PG_BIN; installing it with apt-get"
    sudo_cmd=()
    (( is_root )) || sudo_cmd=(sudo)
    if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y postgresql; then
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y postgresql
    fi
    [[ -x "$PG_BIN/initdb" ]] || die "no initdb in $PG_BIN after installing postgresql (set KIROKU_PG_BIN?)"
fi
# --- Chromium for the browser tests (Debian's packages; nothing downloaded elsewhere) ----
if [[ ! -x /usr/bin/chromedriver || ! -x /usr/bin/chromium || ! -d /usr/share/doc/chromium-l10n ]] || ! fc-list 2>/dev/null | grep -qi ipa; then
    say "installing Debian's chromium, chromium-driver and a Japanese font for the browser tests"
    sudo_cmd=()
    (( is_root )) || sudo_cmd=(sudo)
    packages=(chromium chromium-driver chromium-l10n fonts-ipafont-gothic)
    if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${packages[@]}"; then
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
    fi
    [[ -x /usr/bin/chromedriver ]] || die "no /usr/bin/chromedriver after installing chromium-driver"
fi
# --- LibreOffice Calc: a spreadsheet opens the CSV downloads (formula injection test) -----
if [[ ! -x /usr/bin/soffice ]]; then
    say "installing Debian's libreoffice-calc for the spreadsheet test"
    sudo_cmd=()
    (( is_root )) || sudo_cmd=(sudo)
    if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends libreoffice-calc; then
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends libreoffice-calc
    fi
    [[ -x /usr/bin/soffice ]] || die "no /usr/bin/soffice after installing libreoffice-calc"
fi
# --- schemathesis (from PyPI) for the API fuzz test, in a virtual environment of its own --
# 3.39.16 is the last 3.x release; Hypothesis after 6.131.14 changed what it relies on.
SCHEMATHESIS_VENV="target/schemathesis-venv"
if [[ ! -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]]; then
    say "installing schemathesis into $SCHEMATHESIS_VENV"
    mkdir -p target
    python3 -m venv "$SCHEMATHESIS_VENV"
    "$SCHEMATHESIS_VENV/bin/pip" install --quiet 'schemathesis==3.39.16' 'hypothesis==6.131.14'
fi
export KIROKU_SCHEMATHESIS="$PWD/$SCHEMATHESIS_VENV/bin/schemathesis"

if (( is_root )); then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server as"
fi

# --- temp dir and cleanup ---------------------------------------------------
PG_TMP="$(mktemp -d "${TMPDIR:-/tmp}/kiroku-pg.XXXXXX")"
if (( is_root )); then
    chown postgres: "$PG_TMP"
    # TMPDIR may point somewhere the postgres user cannot reach; use /tmp then.
    if ! as_pg test -w "$PG_TMP" 2>/dev/null; then
        rm -rf "$PG_TMP"
        PG_TMP="$(mktemp -d /tmp/kiroku-pg.XXXXXX)"
        chown postgres: "$PG_TMP"
    fi
fi
PG_DATA="$PG_TMP/data"
PG_SOCK="$PG_TMP/sock"
PG_LOG="$PG_TMP/postgres.log"
PG_PID=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n "$PG_PID" ]]; then
        say "stopping PostgreSQL"
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1; then
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1
        fi
        # Last resort: the postmaster we started is still there.
        if [[ -f "$PG_DATA/postmaster.pid" ]]; then
            local pid
            pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null)"
            [[ "$pid" =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
        fi
        wait "$PG_PID" 2>/dev/null
    fi
    rm -rf "$PG_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- initdb -----------------------------------------------------------------
mkdir -p "$PG_SOCK"
(( is_root )) && chown postgres: "$PG_SOCK"

initdb_with_locale() {
    rm -rf "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres \
        --encoding=UTF8 --locale="$1" >"$PG_TMP/initdb.log" 2>&1
}
say "initialising PostgreSQL data directory in $PG_DATA"
if ! initdb_with_locale C.UTF-8; then
    say "initdb with --locale=C.UTF-8 failed; retrying with --locale=C"
    if ! initdb_with_locale C; then
        cat "$PG_TMP/initdb.log" >&2
        die "initdb failed"
    fi
fi

# --- pick a port and start ----------------------------------------------------
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' && return
    fi
    # No python3: probe random high ports until nothing answers.
    local p i
    for i in $(seq 1 100); do
        p=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    return 1
}

# postgres runs in the foreground as our child (not daemonised by
# `pg_ctl start`), so this script reaps it: no orphaned postmaster is left
# behind even where PID 1 does not reap zombies (containers without an init).
started=0
for attempt in 1 2 3 4 5; do
    PG_PORT="$(free_port)" || die "could not find a free TCP port"
    say "starting PostgreSQL on port $PG_PORT"
    as_pg "$PG_BIN/postgres" -D "$PG_DATA" \
        -c listen_addresses=127.0.0.1 -c port="$PG_PORT" \
        -c unix_socket_directories="$PG_SOCK" -c max_connections=200 \
        >"$PG_LOG" 2>&1 &
    PG_PID=$!
    # Wait (up to ~30s) until it accepts TCP connections, or dies.
    for _ in $(seq 1 60); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres; then
            started=1
            break
        fi
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.5
    done
    (( started )) && break
    if kill -0 "$PG_PID" 2>/dev/null; then
        tail -n 50 "$PG_LOG" >&2
        die "PostgreSQL did not accept TCP connections on 127.0.0.1:$PG_PORT within 30s"
    fi
    wait "$PG_PID" || true
    PG_PID=
    # Someone grabbed the port between probing and binding: try another one.
    if grep -q 'could not bind\|could not create listen socket\|Address already in use' "$PG_LOG"; then
        say "port $PG_PORT was taken; retrying (attempt $attempt)"
        continue
    fi
    break
done
if (( ! started )); then
    [[ -f "$PG_LOG" ]] && tail -n 50 "$PG_LOG" >&2
    die "PostgreSQL failed to start"
fi

export KIROKU_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# One master key (wrapping the personal keys) for every server and CLI the tests start, so
# they can open each other's ledgers; a fresh one per run, never a file in the checkout.
KIROKU_MASTER_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
export KIROKU_MASTER_KEY
# Servers answer 503 after 3 s without the database; two cores running the whole suite in
# parallel can take longer than that to open a connection, so the suite waits longer. The
# outage tests set 3 s for themselves.
export KIROKU_DATABASE_WAIT_MS=15000
say "PostgreSQL ready at $KIROKU_TEST_POSTGRES_URL"

# --- PostgreSQL smoke check only ------------------------------------------------
if [[ "${KIROKU_PG_ONLY:-0}" == 1 ]]; then
    "$PG_BIN/psql" "$KIROKU_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -c 'select version()'
    "$PG_BIN/psql" "$KIROKU_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -c 'create database t1'
    say "KIROKU_PG_ONLY=1: PostgreSQL check passed; not running cargo"
    exit 0
fi

# --- Rust checks and tests ------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH"

# A fresh CI clone builds once: incremental state would only double the disk the build
# needs (a CI disk once filled up while linking the test binaries).
if [[ "${CI:-}" == true ]]; then
    export CARGO_INCREMENTAL=0
fi
say "disk free before the build: $(df -h . | awk 'NR==2 {print $4}')"

if [[ "${KIROKU_SKIP_LINT:-0}" == 1 ]]; then
    say "KIROKU_SKIP_LINT=1: skipping cargo fmt and cargo clippy"
else
    say "cargo fmt --all --check"
    cargo fmt --all --check
    say "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
fi

if cargo nextest --version >/dev/null 2>&1; then
    say "cargo nextest run --workspace --no-fail-fast $*"
    cargo nextest run --workspace --no-fail-fast "$@"
else
    say "cargo test --workspace --all-targets $*"
    cargo test --workspace --all-targets "$@"
fi
say "all checks passed"
