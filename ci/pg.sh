#!/usr/bin/env bash
# PostgreSQL test support, sourced by ci/test.sh.
#   pg_start  starts a throwaway PostgreSQL server for the tests: a fresh data directory under
#             `mktemp -d`, trust authentication, listening on 127.0.0.1 only, on a free port
#             (55432 or the next free one), with fsync, synchronous_commit and full_page_writes
#             off. Waits until it accepts connections, creates the database `oxstack_test` and
#             exports OXSTACK_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/oxstack_test.
#             Installs PostgreSQL (Debian's `postgresql`) when its server binaries are missing.
#             Also exports OXSTACK_TEST_PG_DATA and OXSTACK_TEST_PG_BIN, for a test that restarts it.
#             With OXSTACK_PG_TLS=1 it also serves TLS (ssl = on) with a certificate for 127.0.0.1
#             of a throwaway CA, and exports the CA's path as OXSTACK_TEST_PG_TLS_CA.
#   pg_stop   stops the server pg_start started, by PID (fast shutdown; the PID in its pid file
#             when a test restarted it), waits for it to exit and removes its data directory.
#             Does nothing when nothing was started.
# The server runs as the `postgres` user (initdb refuses root); pg_start creates it if missing.
# Tests that need PostgreSQL (db/tests/postgres_schema.rs) say SKIPPED without the variable.

pg_started_pid=""
pg_dir=""
pg_bindir=""

# Finds the server binaries (on PATH, else under /usr/lib/postgresql/*/bin), installing them when
# absent, and sets pg_bindir to the directory that holds them.
pg_find_bin() {
  local initdb
  initdb=$(command -v initdb 2>/dev/null || true)
  if [ -z "$initdb" ]; then
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
  fi
  if [ -z "$initdb" ]; then
    echo "pg: installing postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
  fi
  if [ -z "$initdb" ]; then
    echo "pg: no initdb found, even after installing postgresql" >&2
    return 1
  fi
  pg_bindir=$(dirname "$(readlink -f "$initdb")")
  PATH="$pg_bindir:$PATH"
}

# Runs a command as the postgres user (when root) from a directory it may read.
pg_as() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# Whether PID is a live process (a zombie left for a non-reaping init counts as gone).
pg_alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* ]]
}

pg_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pg_start() {
  if [ -n "$pg_started_pid" ]; then
    echo "pg: already running (PID $pg_started_pid)"
    return 0
  fi
  pg_find_bin || return 1
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  fi
  pg_dir=$(mktemp -d /tmp/oxstack-pg.XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_dir"
  fi
  local data="$pg_dir/data" log="$pg_dir/server.log"
  if ! pg_as "$pg_bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$pg_dir/initdb.log" 2>&1; then
    echo "pg: initdb failed:" >&2
    cat "$pg_dir/initdb.log" >&2
    return 1
  fi
  cat >>"$data/postgresql.conf" <<EOF
# oxstack tests: a throwaway server, durability off
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg_dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  if [ "${OXSTACK_PG_TLS:-}" = 1 ]; then
    # TLS besides plain connections (db/tests/pg_tls.rs): a certificate for 127.0.0.1 of a
    # throwaway CA. Only in a server of its own: sqlx's default sslmode (prefer) would take
    # every other test over TLS as well.
    . "$(dirname "${BASH_SOURCE[0]}")/tls_certs.sh"
    local owner=""
    [ "$(id -u)" -eq 0 ] && owner=postgres:
    tls_make_certs "$pg_dir/tls" "$owner" || return 1
    cat >>"$data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$pg_dir/tls/server.pem'
ssl_key_file = '$pg_dir/tls/server.key'
EOF
    export OXSTACK_TEST_PG_TLS_CA="$pg_dir/tls/ca.pem"
  fi
  # The postmaster runs in the background as a child of this shell (setpriv execs it as
  # postgres, where `runuser` or `pg_ctl` would leave it to an init that may never reap it), so
  # pg_stop can reap it.
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  fi
  local port="" p pid
  for p in $(seq 55432 55531); do
    pg_port_in_use "$p" && continue
    (cd / && exec "${as[@]}" "$pg_bindir/postgres" -D "$data" -p "$p") </dev/null >>"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 60); do
      pg_alive "$pid" || break
      if "$pg_bindir/pg_isready" -q -h 127.0.0.1 -p "$p" -U postgres; then
        port=$p
        break
      fi
      sleep 0.5
    done
    [ -n "$port" ] && break
    if pg_alive "$pid"; then
      pg_started_pid=$pid # so that pg_stop stops it
      echo "pg: the server (PID $pid) did not accept connections within 30 s:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    # It exited at once: most likely another process took the port meanwhile.
    wait "$pid" 2>/dev/null || true
    echo "pg: the server did not start on port $p:" >&2
    tail -5 "$log" >&2
  done
  if [ -z "$port" ]; then
    echo "pg: could not start PostgreSQL on any port in 55432-55531" >&2
    return 1
  fi
  pg_started_pid=$(head -1 "$data/postmaster.pid")
  "$pg_bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'CREATE DATABASE oxstack_test' || return 1
  export OXSTACK_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/oxstack_test"
  # For tests that restart the server (tests/pg_restart.rs): its data directory and binaries.
  export OXSTACK_TEST_PG_DATA="$data" OXSTACK_TEST_PG_BIN="$pg_bindir"
  echo "pg: PostgreSQL $("$pg_bindir/postgres" -V | awk '{print $3}') up (PID $pg_started_pid); OXSTACK_TEST_PG_URL=$OXSTACK_TEST_PG_URL"
}

pg_stop() {
  local pid=$pg_started_pid
  # A test may have restarted the server (tests/pg_restart.rs, with pg_ctl): then the
  # postmaster to stop is the one its pid file names.
  if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
    pid=$(head -1 "$pg_dir/data/postmaster.pid")
  fi
  if [ -n "$pid" ] && pg_alive "$pid"; then
    kill -INT "$pid" 2>/dev/null || true # SIGINT: fast shutdown
    for _ in $(seq 1 60); do
      pg_alive "$pid" || break
      sleep 0.5
    done
    if pg_alive "$pid"; then
      echo "pg: PID $pid still runs 30 s after a fast shutdown; sending SIGQUIT" >&2
      kill -QUIT "$pid" 2>/dev/null || true # immediate shutdown
      for _ in $(seq 1 20); do
        pg_alive "$pid" || break
        sleep 0.5
      done
    fi
    wait "$pid" 2>/dev/null || true # reap it (when it is this shell's child)
    echo "pg: stopped (PID $pid)"
  fi
  pg_started_pid=""
  if [ -n "$pg_dir" ]; then
    rm -rf "$pg_dir"
    pg_dir=""
  fi
  unset OXSTACK_TEST_PG_URL OXSTACK_TEST_PG_DATA OXSTACK_TEST_PG_BIN
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "ci/pg.sh is a library: source it, then call pg_start and pg_stop (see its header)" >&2
  exit 2
fi
