#!/usr/bin/env bash
# A local three-member etcd 3.4 cluster on 127.0.0.1: the peer `ctl bench kv
# --target etcd` is compared against.
#
#   etcd3.sh start DIR BASEPORT   start members e0..e2; client ports BASEPORT..BASEPORT+2,
#                                 peer ports BASEPORT+10..BASEPORT+12; data in DIR/eN.etcd,
#                                 logs in DIR/eN.log, pids in DIR/eN.pid. Waits until
#                                 `etcdctl endpoint health` reports every member healthy
#                                 (deadline: $ETCD3_TIMEOUT seconds, default 30), then
#                                 prints the client endpoints, comma-separated, on stdout.
#   etcd3.sh stop DIR             stop the members whose pid files are in DIR (TERM, then
#                                 KILL after 10 s) and remove those pid files; data and
#                                 logs stay.
#
# etcd fsyncs as it does in production (no --unsafe-no-fsync): the comparison
# is with a durable etcd. Everything but the endpoint list goes to stderr.
set -euo pipefail

MEMBERS=3
TIMEOUT=${ETCD3_TIMEOUT:-30}

usage() {
  echo "usage: $0 start DIR BASEPORT | stop DIR" >&2
  exit 2
}

log() { echo "etcd3: $*" >&2; }

# Whether PID is alive and is an etcd serving from DIR (guards against a pid
# reused by an unrelated process since the pid file was written).
is_our_etcd() {
  local pid=$1 dir=$2 cmdline
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *etcd* && $cmdline == *"--data-dir $dir/"* ]]
}

stop() {
  local dir=$1 pidfile pid deadline
  local -a pids=()
  shopt -s nullglob
  for pidfile in "$dir"/e*.pid; do
    pid=$(<"$pidfile")
    if is_our_etcd "$pid" "$dir"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$pidfile"
  done
  deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "member $pid ignored TERM for 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  log "stopped ${#pids[@]} member(s) in $dir"
}

start() {
  local dir=$1 base=$2 i cluster="" endpoints="" pidfile pid
  [[ $base =~ ^[0-9]+$ ]] && [ "$base" -gt 0 ] && [ $((base + 10 + MEMBERS)) -le 65535 ] ||
    { log "BASEPORT must be a port number with room for +$((10 + MEMBERS - 1))"; exit 2; }
  command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
    { log "etcd and etcdctl must be installed (tests/scripts/setup.sh)"; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  for pidfile in "$dir"/e*.pid; do
    [ -e "$pidfile" ] || continue
    if is_our_etcd "$(<"$pidfile")" "$dir"; then
      log "a member is already running from $dir ($pidfile); stop it first"
      exit 1
    fi
  done

  # A port already taken would let another server answer the health check for
  # a member that is about to fail to bind.
  local port
  for ((i = 0; i < MEMBERS; i++)); do
    for port in $((base + i)) $((base + 10 + i)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "127.0.0.1:$port is already in use"
        exit 1
      fi
    done
  done

  for ((i = 0; i < MEMBERS; i++)); do
    cluster+="${cluster:+,}e$i=http://127.0.0.1:$((base + 10 + i))"
    endpoints+="${endpoints:+,}127.0.0.1:$((base + i))"
  done
  for ((i = 0; i < MEMBERS; i++)); do
    etcd --name "e$i" \
      --data-dir "$dir/e$i.etcd" \
      --listen-client-urls "http://127.0.0.1:$((base + i))" \
      --advertise-client-urls "http://127.0.0.1:$((base + i))" \
      --listen-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((base + 10 + i))" \
      --initial-cluster "$cluster" \
      --initial-cluster-token "flotilla-bench-$base" \
      --initial-cluster-state new \
      --logger zap --log-outputs stderr \
      </dev/null >"$dir/e$i.log" 2>&1 &
    echo $! >"$dir/e$i.pid"
  done

  local deadline=$((SECONDS + TIMEOUT))
  until ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=1s --command-timeout=2s \
    endpoint health >/dev/null 2>&1; do
    for ((i = 0; i < MEMBERS; i++)); do
      pid=$(<"$dir/e$i.pid")
      if ! kill -0 "$pid" 2>/dev/null; then
        log "member e$i exited during start-up; the end of $dir/e$i.log:"
        tail -n 20 "$dir/e$i.log" >&2
        stop "$dir"
        exit 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the cluster was not healthy within ${TIMEOUT}s:"
      ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --dial-timeout=1s --command-timeout=2s \
        endpoint health >&2 || true
      stop "$dir"
      exit 1
    fi
    sleep 0.2
  done
  log "healthy: $endpoints (logs and data in $dir)"
  echo "$endpoints"
}

case "${1:-}" in
  start) [ $# -eq 3 ] || usage; start "$2" "$3" ;;
  stop) [ $# -eq 2 ] || usage; stop "$(cd "$2" && pwd)" ;;
  *) usage ;;
esac
