#!/usr/bin/env bash
# Pod start-up latency on this machine's Docker Engine, as the README reports it:
# a one-machine cluster (`ctl init`, whose in-process agent runs pods on
# Docker), then `ctl bench startup` once per RUN, then the cluster is stopped.
#
#   tests/scripts/bench-startup.sh [RUN...]     RUN is PODS or PODS@QPS
#   tests/scripts/bench-startup.sh 50 100 50@1 50@2
#
# Needs the images (docker/build-images.sh) and a release binary: $CTL, default
# target/release/ctl under $CARGO_TARGET_DIR or ./target. Prints one JSON report
# per run on stdout. Numbers swing with whatever else the two cores are doing:
# run it on a quiet machine.
set -euo pipefail

TARGET=${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}
CTL=${CTL:-$TARGET/release/ctl}
log() { echo "bench-startup: $*" >&2; }

[ -x "$CTL" ] || { log "no ctl binary at $CTL (cargo build --release --bin ctl, or set CTL)"; exit 1; }
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(50 100)

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
FLOTILLA_LOG=warn "$CTL" init --data-dir "$dir/m1" --listen "127.0.0.1:$port" --name "bench-$port" >"$dir/m1.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Whatever the node still had (a run that failed half-way).
  local ids
  ids=$(docker ps -aq --filter "label=io.flotilla.node=bench-$port")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
export KUBECONFIG=$dir/m1/admin.kubeconfig
deadline=$((SECONDS + 60))
until "$CTL" get node "bench-$port" 2>/dev/null | grep -qw Ready; do
  [ "$SECONDS" -lt "$deadline" ] || { log "the node did not become Ready:"; cat "$dir/m1.log" >&2; exit 1; }
  sleep 0.2
done
log "cluster on 127.0.0.1:$port, node bench-$port Ready; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for run in "${runs[@]}"; do
  pods=${run%@*}
  qps=0
  [[ "$run" == *@* ]] && qps=${run#*@}
  log "--pods $pods --qps $qps"
  "$CTL" bench startup --pods "$pods" --qps "$qps" -o json | tr -d '\n ' 
  echo
done
