#!/usr/bin/env bash
# The compose cluster (docker/compose.yml): three masters, two Docker workers.
#
#   docker/cluster.sh up       start it (the first time: init m1, make the join
#                              tokens, join m2 and m3 one after the other, then
#                              the workers); writes docker/.cluster/admin.kubeconfig
#   docker/cluster.sh status   members and nodes
#   docker/cluster.sh down     stop it, remove its volumes and the pod
#                              containers its workers made (their pod
#                              network lived in the workers' namespaces)
#
# FLOTILLA_IMAGE picks the ctl image (default flotilla/ctl:latest);
# FLOTILLA_BACKEND=vxlan routes between the workers through VXLAN.
#
# Needs the images: docker/build-images.sh (flotilla/ctl needs a release
# binary first: cargo build --release --bin ctl).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="$here/.cluster"
project=flotilla
compose() { docker-compose -p "$project" -f "$here/compose.yml" "$@"; }
say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
ctl() { compose exec -T m1 ctl --kubeconfig /data/admin.kubeconfig "$@"; }

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every half second.
wait_for() {
    local what="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${seconds}s waiting for $what (see: docker-compose -p $project -f $here/compose.yml logs)"
        sleep 0.5
    done
}

voter() { ctl member list -o json | grep -A3 "\"name\": \"$1\"" | grep -q '"role": "voter"'; }
node_ready() { ctl get node "$1" | awk 'NR == 2 { found = 1; exit !($2 == "Ready") } END { exit !found }'; }

up() {
    command -v docker-compose >/dev/null || die "docker-compose is missing (apt-get install docker-compose)"
    for image in "${FLOTILLA_IMAGE:-flotilla/ctl:latest}" flotilla/busybox:latest flotilla/pause:latest; do
        docker image inspect "$image" >/dev/null 2>&1 ||
            die "image $image is missing: run 'cargo build --release --bin ctl' then docker/build-images.sh"
    done
    mkdir -p "$state"
    if [[ -f "$state/tokens.env" ]] && docker volume inspect "${project}_m1" >/dev/null 2>&1; then
        # shellcheck disable=SC1091
        source "$state/tokens.env"
        export FLOTILLA_MASTER_TOKEN FLOTILLA_WORKER_TOKEN
        say "resuming the existing cluster"
        compose up -d
    else
        say "starting m1 (ctl init)"
        export FLOTILLA_MASTER_TOKEN="" FLOTILLA_WORKER_TOKEN=""
        compose up -d m1
        wait_for "m1 to write its admin kubeconfig" 60 compose exec -T m1 test -f /data/admin.kubeconfig
        wait_for "m1 to answer" 60 ctl cluster status
        FLOTILLA_MASTER_TOKEN="$(ctl token create --role master --ttl 24h | tr -d '\r\n')"
        FLOTILLA_WORKER_TOKEN="$(ctl token create --role worker --ttl 24h | tr -d '\r\n')"
        export FLOTILLA_MASTER_TOKEN FLOTILLA_WORKER_TOKEN
        printf 'FLOTILLA_MASTER_TOKEN=%s\nFLOTILLA_WORKER_TOKEN=%s\n' \
            "$FLOTILLA_MASTER_TOKEN" "$FLOTILLA_WORKER_TOKEN" >"$state/tokens.env"
        chmod 600 "$state/tokens.env"
        for m in m2 m3; do
            say "joining $m"
            compose up -d "$m"
            wait_for "$m to become a voter" 90 voter "$m"
        done
        say "joining the workers w1 and w2"
        compose up -d w1 w2
    fi
    for w in w1 w2; do wait_for "node $w to be Ready" 90 node_ready "$w"; done
    compose exec -T m1 cat /data/admin.kubeconfig >"$state/admin.kubeconfig"
    chmod 600 "$state/admin.kubeconfig"
    ctl get nodes >&2 || true
    cat >&2 <<EOF

The cluster is up: masters 10.243.0.11-13:6443, workers w1 and w2.
  export KUBECONFIG=$state/admin.kubeconfig
  kubectl get nodes        (or: ctl get nodes)
  docker/cluster.sh down   removes it
EOF
}

down() {
    compose down -v --remove-orphans || true
    # The pods the workers ran are containers on the host's engine, not
    # compose services.
    local ids
    ids="$(docker ps -aq --filter label=io.flotilla.node=w1; docker ps -aq --filter label=io.flotilla.node=w2)"
    if [[ -n "$ids" ]]; then
        # shellcheck disable=SC2086
        docker rm -f -v $ids >/dev/null
        say "removed $(echo "$ids" | wc -l) pod containers of w1 and w2"
    fi
    rm -rf "$state"
    say "down"
}

status() {
    compose ps
    ctl cluster status || true
    ctl get nodes || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: docker/cluster.sh up | down | status" ;;
esac
