#!/usr/bin/env bash
# Builds Flotilla's images on the local Docker Engine, from scratch and
# without pulling anything (there is no registry here):
#
#   flotilla/busybox:latest  Debian's busybox-static with its applets linked
#                            into /bin (sh, httpd, sleep, wget, cat, echo...):
#                            the image pods run in tests and examples.
#   flotilla/pause:latest    the pod sandbox: the same busybox, running a shell
#                            that sleeps until SIGTERM.
#   flotilla/ctl:latest      the release `ctl` binary (without debug info), the
#                            shared libraries it needs (found with ldd),
#                            busybox for scripts, and what a worker's pod
#                            network needs: Debian's CNI plugins
#                            (/usr/lib/cni), ip, bridge and iptables (nft).
#
# Usage: docker/build-images.sh [busybox] [pause] [ctl]
#   With no argument it builds busybox and pause, and ctl too when a release
#   binary exists. Naming ctl without a release binary is an error.
#   CTL_BIN=/path/to/ctl picks the binary (default: $CARGO_TARGET_DIR/release/ctl,
#   else target/release/ctl); a debug binary works too (its debug info is
#   stripped), which spares the half-hour release build while developing:
#     CTL_BIN=target/debug/ctl docker/build-images.sh ctl
#   CTL_IMAGE=name:tag names the ctl image (default flotilla/ctl:latest), so a
#   build from a branch need not replace the one others use.
#
# Idempotent: each image is labelled with a hash of its contents, and an image
# whose label matches is left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

say() { printf '%s\n' "$*" >&2; }
die() { say "build-images: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "the Docker Engine is not reachable (is dockerd running, and is /var/run/docker.sock readable?)"

ctl_bin="${CTL_BIN:-}"
if [[ -z "$ctl_bin" ]]; then
    for candidate in "${CARGO_TARGET_DIR:-}/release/ctl" "$repo/target/release/ctl"; do
        if [[ -x "$candidate" ]]; then ctl_bin="$candidate"; break; fi
    done
fi

wanted=("$@")
if [[ ${#wanted[@]} -eq 0 ]]; then
    wanted=(busybox pause)
    if [[ -n "$ctl_bin" ]]; then
        wanted+=(ctl)
    else
        say "build-images: no release ctl binary (cargo build --release --bin ctl): skipping flotilla/ctl"
    fi
fi
for w in "${wanted[@]}"; do
    case "$w" in
        busybox|pause|ctl) ;;
        *) die "unknown image '$w' (busybox, pause or ctl)" ;;
    esac
done

busybox_bin() {
    if ! dpkg -s busybox-static >/dev/null 2>&1; then
        say "build-images: installing Debian's busybox-static"
        [[ $(id -u) -eq 0 ]] || die "busybox-static is missing: sudo apt-get install busybox-static"
        DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >&2; } ||
            die "cannot install busybox-static"
    fi
    [[ -x /bin/busybox ]] || die "/bin/busybox is missing although busybox-static is installed"
    echo /bin/busybox
}

# Puts busybox and a link per applet under $1/bin.
add_busybox() {
    local root="$1" bb
    bb="$(busybox_bin)"
    mkdir -p "$root/bin"
    cp "$bb" "$root/bin/busybox"
    local applet
    for applet in $("$bb" --list); do
        [[ "$applet" == busybox ]] && continue
        ln -sf busybox "$root/bin/$applet"
    done
    mkdir -p "$root/tmp" "$root/etc" "$root/root" "$root/var/www"
    chmod 1777 "$root/tmp"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# add_binary ROOT PATH: copies PATH (resolving links) and the shared
# libraries ldd lists for it into ROOT at the same paths.
add_binary() {
    local root="$1" bin="$2" lib
    mkdir -p "$root$(dirname "$bin")"
    cp -L "$bin" "$root$bin"
    ldd "$bin" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# The pod network's tools for a worker (agent::network): the CNI plugins,
# iproute2's ip and bridge, iptables (nft) with its extensions, in
# /usr/lib/cni and /usr/sbin; /bin/ip and /bin/bridge (busybox's lack
# vxlan and fdb) point at the real ones.
add_network_tools() {
    local root="$1" f
    [[ -x /usr/lib/cni/bridge ]] || die "the CNI plugins are missing: apt-get install containernetworking-plugins (tests/scripts/setup.sh)"
    for f in /usr/lib/cni/*; do add_binary "$root" "$f"; done
    add_binary "$root" /usr/sbin/ip
    add_binary "$root" /usr/sbin/bridge
    add_binary "$root" /usr/sbin/xtables-nft-multi
    for f in /usr/lib/x86_64-linux-gnu/xtables/*.so; do add_binary "$root" "$f"; done
    for f in iptables iptables-save iptables-restore; do ln -sf xtables-nft-multi "$root/usr/sbin/$f"; done
    ln -sf /usr/sbin/ip "$root/bin/ip"
    ln -sf /usr/sbin/bridge "$root/bin/bridge"
    ln -sf /usr/sbin/iptables "$root/bin/iptables"
}

# build NAME CONTEXT_DIR: builds CONTEXT_DIR/Dockerfile as NAME unless an image
# with the same content hash exists.
build() {
    local name="$1" ctx="$2" hash current
    hash="$(cd "$ctx" && find . -print0 | LC_ALL=C sort -z |
        xargs -0 -I{} sh -c 'if [ -L "{}" ]; then echo "L {} $(readlink "{}")"; elif [ -f "{}" ]; then echo "F {} $(stat -c %a "{}") $(sha256sum < "{}")"; else echo "D {}"; fi' |
        sha256sum | cut -c1-32)"
    current="$(docker image inspect --format '{{ index .Config.Labels "io.flotilla.content" }}' "$name" 2>/dev/null || true)"
    if [[ "$current" == "$hash" ]]; then
        say "build-images: $name is up to date ($(docker image inspect --format '{{.Id}}' "$name" | cut -c1-19))"
        return
    fi
    printf '\nLABEL io.flotilla.content="%s"\n' "$hash" >>"$ctx/Dockerfile"
    # The classic builder: FROM scratch needs nothing from anywhere.
    DOCKER_BUILDKIT=0 docker build --quiet --pull=false -t "$name" "$ctx" >/dev/null 2>"$ctx/.build.log" || {
        cat "$ctx/.build.log" >&2
        die "building $name failed"
    }
    say "build-images: built $name ($(docker image inspect --format '{{.Id}} {{.Size}}' "$name" |
        awk '{printf "%s, %.1f MB", substr($1,1,19), $2/1e6}'))"
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for image in "${wanted[@]}"; do
    ctx="$work/$image"
    mkdir -p "$ctx/root"
    case "$image" in
    busybox)
        add_busybox "$ctx/root"
        cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY root/ /
ENV PATH=/bin
WORKDIR /
CMD ["/bin/sh"]
EOF
        build flotilla/busybox:latest "$ctx"
        ;;
    pause)
        add_busybox "$ctx/root"
        # PID 1 gets no default signal handlers: trap TERM so a stop is quick.
        cat >"$ctx/root/pause" <<'EOF'
#!/bin/sh
trap 'exit 0' TERM INT
while :; do
    sleep 86400 &
    wait $!
done
EOF
        chmod 755 "$ctx/root/pause"
        cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY root/ /
ENV PATH=/bin
ENTRYPOINT ["/pause"]
EOF
        build flotilla/pause:latest "$ctx"
        ;;
    ctl)
        [[ -n "$ctl_bin" && -x "$ctl_bin" ]] ||
            die "no release ctl binary: run 'cargo build --release --bin ctl' or set CTL_BIN"
        add_busybox "$ctx/root"
        add_network_tools "$ctx/root"
        cp "$ctl_bin" "$ctx/root/bin/ctl"
        # Debug info is most of the release binary's size (line tables for
        # backtraces, and RocksDB's); the image does without it.
        if command -v strip >/dev/null; then strip --strip-debug "$ctx/root/bin/ctl"; fi
        # The shared libraries it links, at the paths the loader looks in.
        ldd "$ctl_bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
            mkdir -p "$ctx/root$(dirname "$lib")"
            cp -L "$lib" "$ctx/root$lib"
        done
        mkdir -p "$ctx/root/data"
        cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY root/ /
ENV PATH=/bin:/usr/sbin
ENTRYPOINT ["/bin/ctl"]
CMD ["--help"]
EOF
        build "${CTL_IMAGE:-flotilla/ctl:latest}" "$ctx"
        say "build-images: ${CTL_IMAGE:-flotilla/ctl:latest} holds $ctl_bin ($("$ctl_bin" --version 2>/dev/null || echo '?'))"
        ;;
    esac
done
