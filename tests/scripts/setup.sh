#!/usr/bin/env bash
# Installs what building and testing Flotilla needs on a fresh Debian machine
# of this kind: libclang (RocksDB's bindings), etcd 3.4 (the benchmark peer),
# the CNI plugins of the pod network, and the Docker images the end-to-end
# tests run.
# Idempotent: installs only what is missing.
set -euo pipefail
need=()
[ -e /usr/lib/llvm-14/lib/libclang.so ] || ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need+=(libclang-dev)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v kubectl >/dev/null 2>&1 || true
# The pod network: Debian's CNI plugins (bridge, host-local, portmap,
# loopback...) in /usr/lib/cni, and the ip/bridge/iptables tools the agent runs.
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The Docker end-to-end tests (tests/docker.rs) need a running engine and the
# images pods run: flotilla/busybox and flotilla/pause, built from scratch by
# docker/build-images.sh (which installs busybox-static if missing). The
# flotilla/ctl image is built only when a release binary exists.
if ! docker info >/dev/null 2>&1; then
  echo "setup: the Docker Engine is not answering; starting it"
  service docker start >/dev/null 2>&1 || (nohup dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup: the Docker Engine did not start" >&2; exit 1; }
fi
"$(dirname "$0")/../../docker/build-images.sh" busybox pause
