#!/usr/bin/env bash
# RabbitMQ test support, sourced by ci/test.sh.
#   rabbitmq_start    starts a throwaway RabbitMQ broker for the tests: its own node name, data,
#                     log, config and Erlang cookie under `mktemp -d`, no plugins, listening on
#                     127.0.0.1 only on a free port (56720 or the next free one), with its own
#                     epmd on a port of its own (so it never shares one with another Erlang
#                     node). Waits until the broker accepts AMQP connections and exports
#                     OXSTACK_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2f and
#                     OXSTACK_TEST_AMQP_CTL, a script that takes `stop`, `start` or `restart` and
#                     stops/starts the broker application (rabbitmqctl stop_app/start_app), for
#                     tests that restart the broker mid-run. It also serves amqps on PORT+3000
#                     with a certificate for 127.0.0.1 of a throwaway CA (ci/tls_certs.sh) and
#                     exports OXSTACK_TEST_AMQPS_URL and OXSTACK_TEST_AMQPS_CA (the CA's path).
#                     Installs Debian's rabbitmq-server when missing.
#   rabbitmq_restart  restarts the broker application (what `$OXSTACK_TEST_AMQP_CTL restart` does).
#   rabbitmq_stop     stops the broker and its epmd by PID, waits for both to exit and removes the
#                     temporary directory. Does nothing when nothing was started.
# Tests that need a broker (api/tests/amqp_*.rs, bus/tests/amqp_restart.rs and the bus's
# amqp::tests) say SKIPPED without OXSTACK_TEST_AMQP_URL.

rabbitmq_pid=""
rabbitmq_dir=""
rabbitmq_epmd_port=""
rabbitmq_epmd=""

# Whether PID is a live process (a zombie left for a non-reaping init counts as gone).
rabbitmq_alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $stat != Z* ]]
}

rabbitmq_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

rabbitmq_find_bin() {
  if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "rabbitmq: installing rabbitmq-server"
    apt-get update -qq
    # policy-rc.d may forbid starting the service on install; we never use the system service.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  fi
  if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    echo "rabbitmq: no /usr/lib/rabbitmq/bin/rabbitmq-server, even after installing it" >&2
    return 1
  fi
  # The package may have started its own service; it is not ours, leave it be (it listens on
  # 5672 and the default epmd port, neither of which we use).
}

# Starts epmd on our own port as a child of this shell (rabbitmq-server would otherwise start
# one with -daemon, left to an init that may never reap it), so rabbitmq_stop stops it by PID.
rabbitmq_start_epmd() {
  (exec epmd -port "$rabbitmq_epmd_port" -address 127.0.0.1) </dev/null >"$rabbitmq_dir/epmd.log" 2>&1 &
  rabbitmq_epmd=$!
  for _ in $(seq 1 40); do
    rabbitmq_port_in_use "$rabbitmq_epmd_port" && return 0
    rabbitmq_alive "$rabbitmq_epmd" || break
    sleep 0.25
  done
  echo "rabbitmq: epmd did not start on port $rabbitmq_epmd_port:" >&2
  cat "$rabbitmq_dir/epmd.log" >&2
  return 1
}

rabbitmq_start() {
  if [ -n "$rabbitmq_pid" ]; then
    echo "rabbitmq: already running (PID $rabbitmq_pid)"
    return 0
  fi
  rabbitmq_find_bin || return 1
  rabbitmq_dir=$(mktemp -d /tmp/oxstack-rabbitmq.XXXXXX)
  local d=$rabbitmq_dir port="" p
  for p in $(seq 56720 56819); do
    # the AMQP port, the distribution port and epmd's port must all be free
    rabbitmq_port_in_use "$p" && continue
    rabbitmq_port_in_use $((p + 1000)) && continue
    rabbitmq_port_in_use $((p + 2000)) && continue
    rabbitmq_port_in_use $((p + 3000)) && continue
    port=$p
    break
  done
  if [ -z "$port" ]; then
    echo "rabbitmq: no free port in 56720-56819" >&2
    return 1
  fi
  rabbitmq_epmd_port=$((port + 2000))
  : >"$d/enabled_plugins.conf"
  : >"$d/rabbitmq-env.conf"
  printf '[].\n' >"$d/enabled_plugins"
  # amqps:// beside amqp:// (bus/tests/amqps.rs), with a certificate for 127.0.0.1 of a
  # throwaway CA; clients are not asked for certificates.
  . "$(dirname "${BASH_SOURCE[0]}")/tls_certs.sh"
  tls_make_certs "$d/tls" || return 1
  cat >"$d/rabbitmq.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$((port + 3000))
ssl_options.cacertfile = $d/tls/ca.pem
ssl_options.certfile = $d/tls/server.pem
ssl_options.keyfile = $d/tls/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
  head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$d/.erlang.cookie"
  chmod 400 "$d/.erlang.cookie"
  local node="oxstack-test-$port@localhost"
  # Everything the broker and rabbitmqctl read, in one file both source.
  cat >"$d/env" <<EOF
export HOME='$d'
export RABBITMQ_CONF_ENV_FILE='$d/rabbitmq-env.conf'
export RABBITMQ_CONFIG_FILE='$d/rabbitmq'
export RABBITMQ_ADVANCED_CONFIG_FILE='$d/advanced.config'
export RABBITMQ_ENABLED_PLUGINS_FILE='$d/enabled_plugins'
export RABBITMQ_MNESIA_BASE='$d/mnesia'
export RABBITMQ_LOG_BASE='$d/log'
export RABBITMQ_PID_FILE='$d/rabbitmq.pid'
export RABBITMQ_NODENAME='$node'
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_DIST_PORT=$((port + 1000))
export ERL_EPMD_PORT=$rabbitmq_epmd_port
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
  cat >"$d/ctl" <<EOF
#!/usr/bin/env bash
# Stops/starts the test broker's application: ctl stop | start | restart
set -euo pipefail
. '$d/env'
ctl() { /usr/lib/rabbitmq/bin/rabbitmqctl -q -n '$node' "\$@"; }
case "\${1:-}" in
  stop) ctl stop_app ;;
  start) ctl start_app && ctl await_startup ;;
  restart) ctl stop_app && ctl start_app && ctl await_startup ;;
  *) echo "usage: \$0 stop|start|restart" >&2; exit 2 ;;
esac
EOF
  chmod +x "$d/ctl"
  rabbitmq_start_epmd || return 1
  # The broker runs in the background as a child of this shell (the start script, which runs
  # the Erlang VM as its child and passes SIGTERM on), so rabbitmq_stop can stop it by PID and
  # reap it; the VM's own PID is in $d/rabbitmq.pid.
  (cd "$d" && . "$d/env" && exec /usr/lib/rabbitmq/bin/rabbitmq-server) </dev/null >"$d/server.log" 2>&1 &
  rabbitmq_pid=$!
  local ready=""
  for _ in $(seq 1 120); do
    rabbitmq_alive "$rabbitmq_pid" || break
    if rabbitmq_port_in_use "$port"; then
      ready=1
      break
    fi
    sleep 0.5
  done
  if [ -z "$ready" ]; then
    echo "rabbitmq: the broker did not accept connections on port $port within 60 s:" >&2
    tail -30 "$d/server.log" >&2
    return 1
  fi
  export OXSTACK_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
  export OXSTACK_TEST_AMQP_CTL="$d/ctl"
  export OXSTACK_TEST_AMQPS_URL="amqps://guest:guest@127.0.0.1:$((port + 3000))/%2f"
  export OXSTACK_TEST_AMQPS_CA="$d/tls/ca.pem"
  echo "rabbitmq: broker $node up (PID $rabbitmq_pid, epmd PID $rabbitmq_epmd on $rabbitmq_epmd_port); OXSTACK_TEST_AMQP_URL=$OXSTACK_TEST_AMQP_URL"
}

rabbitmq_restart() {
  if [ -z "$rabbitmq_dir" ]; then
    echo "rabbitmq: not started" >&2
    return 1
  fi
  "$rabbitmq_dir/ctl" restart
}

# Sends SIGTERM to PID (named WHAT in messages), waits up to 30 s for it to exit, then SIGKILLs
# it; reaps it when it is this shell's child. Does nothing when it is not running.
rabbitmq_kill() {
  local pid=$1 what=$2
  [ -n "$pid" ] && rabbitmq_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 120); do
    rabbitmq_alive "$pid" || break
    sleep 0.25
  done
  if rabbitmq_alive "$pid"; then
    echo "rabbitmq: $what (PID $pid) still runs 30 s after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  echo "rabbitmq: stopped $what (PID $pid)"
}

rabbitmq_stop() {
  local beam=""
  if [ -n "$rabbitmq_dir" ] && [ -f "$rabbitmq_dir/rabbitmq.pid" ]; then
    beam=$(head -1 "$rabbitmq_dir/rabbitmq.pid") # the Erlang VM, a child of the start script
  fi
  # The start script passes SIGTERM on to the VM, which shuts the broker down cleanly.
  rabbitmq_kill "$rabbitmq_pid" "the broker"
  rabbitmq_kill "$beam" "the broker's Erlang VM"
  rabbitmq_kill "$rabbitmq_epmd" "its epmd"
  rabbitmq_epmd=""
  rabbitmq_pid=""
  rabbitmq_epmd_port=""
  if [ -n "$rabbitmq_dir" ]; then
    rm -rf "$rabbitmq_dir"
    rabbitmq_dir=""
  fi
  unset OXSTACK_TEST_AMQP_URL OXSTACK_TEST_AMQP_CTL
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "ci/rabbitmq.sh is a library: source it, then call rabbitmq_start and rabbitmq_stop (see its header)" >&2
  exit 2
fi
