#!/usr/bin/env bash
# PostgreSQL and Redis for the tests. Uses the servers that answer on 127.0.0.1 (or the URLs given in
# TAM_TEST_DATABASE_URL / DATABASE_URL and TAM_TEST_REDIS_URL / REDIS_URL), else starts private ones,
# installing the Debian packages if needed, and exports TAM_TEST_DATABASE_URL and TAM_TEST_REDIS_URL.
#
#   source scripts/services.sh; services_up     # scripts/test: services_down runs when the shell exits
#   bash scripts/services.sh CMD [ARGS...]      # runs CMD with the services up, then stops them
#
# Private servers live in a fresh directory under the system temp dir (never under the checkout, which
# the postgres user may not be allowed to enter), listen on 127.0.0.1 only with their sockets in that
# directory, and are stopped by PID and the directory removed when the shell exits: normally, on a
# failure, on Ctrl-C or on SIGTERM.
set -euo pipefail

_SERVICES_PIDS=()
_SERVICES_DIR=""
SERVICES_START_TIMEOUT=${SERVICES_START_TIMEOUT:-60} # seconds a private server gets to answer

if ! declare -F apt_install >/dev/null; then
  apt_install() {
    if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; _APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
fi

_services_answers() { # host port: something accepts TCP connections there
  python3 -c "import socket,sys; socket.create_connection(('$1', $2), timeout=1).close()" 2>/dev/null
}

_services_free_port() { # preferred: that port if nothing listens on it, else one the kernel picks
  if ! _services_answers 127.0.0.1 "$1"; then echo "$1"; return; fi
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()"
}

_services_make_dir() { # sets _SERVICES_DIR: the private directory, made once, the postgres user may enter
  if [ -z "$_SERVICES_DIR" ]; then
    local base
    for base in "${TMPDIR:-/tmp}" /tmp; do
      _SERVICES_DIR=$(mktemp -d "$base/tam-services.XXXXXX") || continue
      chmod 755 "$_SERVICES_DIR"
      if ! id -u postgres >/dev/null 2>&1 || runuser -u postgres -- test -x "$_SERVICES_DIR"; then break; fi
      rm -rf "$_SERVICES_DIR"; _SERVICES_DIR=""
    done
    if [ -z "$_SERVICES_DIR" ]; then
      echo "services: no temp directory the postgres user can enter (tried ${TMPDIR:-/tmp} and /tmp)" >&2
      return 1
    fi
  fi
}

_services_fail() { # message log: say why, show the end of the server's log, give up
  echo "services: $1" >&2
  if [ -f "$2" ]; then echo "--- last lines of $2:" >&2; tail -n 20 "$2" >&2; echo "---" >&2; fi
  return 1
}

_services_wait() { # name pid log check...: poll check until it succeeds, the server dies, or the deadline
  local name=$1 pid=$2 log=$3; shift 3
  local deadline=$((SECONDS + SERVICES_START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || _services_fail "$name (pid $pid) exited before it answered" "$log" || return 1
    [ "$SECONDS" -lt "$deadline" ] ||
      _services_fail "$name (pid $pid) did not answer within ${SERVICES_START_TIMEOUT}s" "$log" || return 1
    sleep 0.1
  done
}

_services_start_postgres() {
  local bin dir port pid
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bin" ]; then
    echo "installing Debian's postgresql ..." >&2
    apt_install postgresql
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  _services_make_dir; dir=$_SERVICES_DIR
  mkdir -m 700 "$dir/pg" "$dir/pg-socket"
  chown postgres: "$dir/pg" "$dir/pg-socket"
  port=$(_services_free_port 55432)
  # PostgreSQL refuses to run as root: initdb and the server run as postgres, from a directory it may enter.
  (cd "$dir" && runuser -u postgres -- "$bin/initdb" -D "$dir/pg" -U postgres -A trust --no-sync) \
    >"$dir/initdb.log" 2>&1 || _services_fail "initdb failed" "$dir/initdb.log" || return 1
  # setpriv execs the server itself (runuser would stay in between), so $! is the server's PID.
  (cd "$dir" && exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
    "$bin/postgres" -D "$dir/pg" -h 127.0.0.1 -p "$port" -k "$dir/pg-socket" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off) >"$dir/pg.log" 2>&1 &
  pid=$!
  _SERVICES_PIDS+=("$pid")
  _services_wait PostgreSQL "$pid" "$dir/pg.log" "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U postgres ||
    return 1
  export TAM_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  echo "started PostgreSQL on 127.0.0.1:$port (pid $pid, in $dir)" >&2
}

_services_start_redis() {
  local dir port pid
  command -v redis-server >/dev/null || { echo "installing Debian's redis-server ..." >&2; apt_install redis-server; }
  _services_make_dir; dir=$_SERVICES_DIR
  mkdir -m 700 "$dir/redis"
  port=$(_services_free_port 56379)
  redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$dir/redis/redis.sock" --save "" \
    --appendonly no --dir "$dir/redis" >"$dir/redis.log" 2>&1 &
  pid=$!
  _SERVICES_PIDS+=("$pid")
  _services_wait Redis "$pid" "$dir/redis.log" redis-cli -h 127.0.0.1 -p "$port" ping || return 1
  export TAM_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
  echo "started Redis on 127.0.0.1:$port (pid $pid, in $dir)" >&2
}

services_down() { # stop what services_up started, by PID, and remove its directory
  local pid deadline
  for pid in "${_SERVICES_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done # PostgreSQL: fast shutdown
  deadline=$((SECONDS + 20))
  for pid in "${_SERVICES_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "services: pid $pid did not stop within 20s, killing it and its children" >&2
      pkill -KILL -P "$pid" 2>/dev/null || true # PostgreSQL's backends would outlive a killed postmaster
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  _SERVICES_PIDS=()
  if [ -n "$_SERVICES_DIR" ]; then
    rm -rf "$_SERVICES_DIR"
    _SERVICES_DIR=""
  fi
}

services_up() { # make TAM_TEST_DATABASE_URL and TAM_TEST_REDIS_URL point at servers that answer
  trap services_down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ -n "${TAM_TEST_DATABASE_URL:-}" ]; then :
  elif [ -n "${DATABASE_URL:-}" ]; then export TAM_TEST_DATABASE_URL="$DATABASE_URL"
  elif _services_answers 127.0.0.1 5432; then export TAM_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres"
  else _services_start_postgres
  fi
  if [ -n "${TAM_TEST_REDIS_URL:-}" ]; then :
  elif [ -n "${REDIS_URL:-}" ]; then export TAM_TEST_REDIS_URL="$REDIS_URL"
  elif _services_answers 127.0.0.1 6379; then export TAM_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
  else _services_start_redis
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# -gt 0 ] || { echo "usage: bash scripts/services.sh CMD [ARGS...]" >&2; exit 2; }
  services_up
  "$@"
fi
