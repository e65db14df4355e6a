#!/usr/bin/env bash
# Installs what building and testing Flotilla needs on a fresh Debian machine
# of this kind: libclang (RocksDB's bindings) and etcd 3.4 (the benchmark peer).
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need+=(libclang-dev)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v kubectl >/dev/null 2>&1 || true
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
