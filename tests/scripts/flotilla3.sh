#!/usr/bin/env bash
# A local three-master Flotilla cluster on 127.0.0.1 (the HA trio), for
# benchmarks and trying things out by hand.
#
#   flotilla3.sh start DIR BASEPORT   `ctl init` m1 on BASEPORT, then `ctl join
#                                     --control-plane` m2 and m3 on BASEPORT+1 and +2;
#                                     data in DIR/mN, logs in DIR/mN.log, pids in
#                                     DIR/mN.pid. Waits (deadline $FLOTILLA3_TIMEOUT s,
#                                     default 60) until each is a voter, then prints the
#                                     endpoints, comma-separated, on stdout. The admin
#                                     kubeconfig is DIR/m1/admin.kubeconfig.
#   flotilla3.sh stop DIR             SIGTERM the members (SIGKILL after 10 s).
#
# The binary is $CTL (default: target/release/ctl under $CARGO_TARGET_DIR or ./target).
set -euo pipefail

TIMEOUT=${FLOTILLA3_TIMEOUT:-60}
TARGET=${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}
CTL=${CTL:-$TARGET/release/ctl}

log() { echo "flotilla3: $*" >&2; }

wait_until() {
  local what=$1 deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out waiting for $what"; exit 1; }
    sleep 0.2
  done
}

is_voter() {
  "$CTL" --kubeconfig "$1/m1/admin.kubeconfig" member list -o json | grep -A3 "\"name\": \"$2\"" | grep -q '"role": "voter"'
}

start() {
  local dir=$1 base=$2 kubeconfig token i
  [ -x "$CTL" ] || { log "no ctl binary at $CTL (cargo build --release, or set CTL)"; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  kubeconfig=$dir/m1/admin.kubeconfig
  "$CTL" init --data-dir "$dir/m1" --listen "127.0.0.1:$base" --name m1 --no-agent >"$dir/m1.log" 2>&1 &
  echo $! >"$dir/m1.pid"
  wait_until "m1 to write its kubeconfig" test -s "$kubeconfig"
  wait_until "m1 to answer" "$CTL" --kubeconfig "$kubeconfig" member list
  token=$("$CTL" --kubeconfig "$kubeconfig" token create --role master --ttl 1h)
  for i in 2 3; do
    "$CTL" join "127.0.0.1:$base" --token "$token" --control-plane --data-dir "$dir/m$i" \
      --listen "127.0.0.1:$((base + i - 1))" --name "m$i" >"$dir/m$i.log" 2>&1 &
    echo $! >"$dir/m$i.pid"
    wait_until "m$i to become a voter" is_voter "$dir" "m$i"
  done
  log "three voters up; export KUBECONFIG=$kubeconfig"
  echo "127.0.0.1:$base,127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2))"
}

stop() {
  local dir=$1 pidfile pid deadline
  shopt -s nullglob
  for pidfile in "$dir"/m*.pid; do
    pid=$(<"$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

case "${1:-}" in
  start) [ $# -eq 3 ] || { echo "usage: $0 start DIR BASEPORT" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 start DIR BASEPORT | stop DIR" >&2; exit 2 ;;
esac
