#!/usr/bin/env bash
# Pod network measurements on the compose cluster (docker/cluster.sh up, with
# FLOTILLA_BACKEND=vxlan for the overlay), with at least two httpd pods on w1
# and one on w2 labelled app=web (e.g. the Deployment of tests/network.rs'
# web(), whose container is named httpd):
#
#   latency: busybox ping, 200 echoes 10 ms apart, average RTT;
#   throughput: 10 busybox wget of a 60 MB file (tmpfs) from busybox httpd;
#
# each pod to a pod on the same node, pod to a pod on the other node, and
# worker host w1 to worker host w2 (the containers flotilla_w1_1/w2_1, whose
# namespaces are the hosts of the pods) for the ratio. Everything runs
# through `docker exec`, whose ~0.1 s start-up is inside the throughput
# times, the same for every path.
set -euo pipefail
pod() { docker ps -q --filter "label=io.flotilla.node=$1" --filter label=io.kubernetes.container.name=httpd | sed -n "${2}p"; }
A=$(pod w1 1); A2=$(pod w1 2); B=$(pod w2 1)
[[ -n "$A" && -n "$A2" && -n "$B" ]] || { echo "need two httpd pods on w1 and one on w2" >&2; exit 1; }
ip_of() { docker exec "$1" sh -c "ip -4 -o addr show eth0" | awk '{print $4}' | cut -d/ -f1; }
A2_IP=$(ip_of "$A2"); B_IP=$(ip_of "$B"); W2_IP=10.243.0.22
lat() { docker exec "$1" ping -c 200 -i 0.01 -q "$2" | awk -F/ '/min\/avg/ {print $4}'; }
serve() { docker exec "$1" sh -c "dd if=/dev/zero of=/dev/shm/big bs=1M count=60 2>/dev/null; (httpd -p 8081 -h /dev/shm &)"; }
rate() {
    local t0 t1
    t0=$(date +%s.%N)
    docker exec "$1" sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O /dev/null $2; done"
    t1=$(date +%s.%N)
    echo "scale=0; 600 / ($t1 - $t0)" | bc
}
serve "$A2"; serve "$B"; serve flotilla_w2_1
for run in 1 2 3; do
    echo "run $run RTT ms: host w1->w2 $(lat flotilla_w1_1 $W2_IP) | pod same node $(lat "$A" "$A2_IP") | pod across $(lat "$A" "$B_IP")"
    echo "run $run MB/s:   host w1->w2 $(rate flotilla_w1_1 http://$W2_IP:8081/big) | pod same node $(rate "$A" "http://$A2_IP:8081/big") | pod across $(rate "$A" "http://$B_IP:8081/big")"
done
