#!/usr/bin/env bash
# Flotilla vs etcd 3.4, side by side, with one client (`ctl bench kv`):
# a three-master Flotilla and a three-member etcd on this machine, puts and
# linearizable gets at 1, 16 and 64 clients. Prints a Markdown table.
#
#   tests/scripts/bench-kv.sh [OPS] [VALUE_SIZE]     (defaults: 20000 ops, 256 bytes)
#
# Uses target/release/ctl (cargo build --release first). Loopback only; every
# run is bounded by its op count.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OPS=${1:-20000}
SIZE=${2:-256}
TARGET=${CARGO_TARGET_DIR:-$here/../../target}
CTL=${CTL:-$TARGET/release/ctl}
work=$(mktemp -d /tmp/flotilla-bench.XXXXXX)
cleanup() {
  "$here/flotilla3.sh" stop "$work/flotilla" || true
  "$here/etcd3.sh" stop "$work/etcd" || true
  rm -rf "$work"
}
trap cleanup EXIT

flotilla=$(CTL=$CTL "$here/flotilla3.sh" start "$work/flotilla" 17301)
etcd=$("$here/etcd3.sh" start "$work/etcd" 17401)
export KUBECONFIG=$work/flotilla/m1/admin.kubeconfig

field() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" | head -1; }

echo "| op | clients | Flotilla ops/s | etcd ops/s | Flotilla p50 / p99 ms | etcd p50 / p99 ms |"
echo "|----|--------:|---------------:|-----------:|----------------------:|------------------:|"
for op in put get; do
  for clients in 1 16 64; do
    ops=$OPS
    [ "$clients" -eq 1 ] && ops=$((OPS / 10))
    f=$("$CTL" bench kv --target flotilla --endpoints "$flotilla" --op $op --clients $clients --ops $ops --value-size $SIZE -o json)
    e=$("$CTL" bench kv --target etcd --endpoints "$etcd" --op $op --clients $clients --ops $ops --value-size $SIZE -o json)
    printf "| %s | %d | %.0f | %.0f | %.2f / %.2f | %.2f / %.2f |\n" "$op" "$clients" \
      "$(echo "$f" | field ops_per_second)" "$(echo "$e" | field ops_per_second)" \
      "$(echo "$f" | field p50_ms)" "$(echo "$f" | field p99_ms)" \
      "$(echo "$e" | field p50_ms)" "$(echo "$e" | field p99_ms)"
  done
done
