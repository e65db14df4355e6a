#!/usr/bin/env bash
# schemathesis.sh — property-based API fuzzing of one Flotilla master with
# schemathesis (PyPI), over the OpenAPI v3 documents the master serves.
#
# Usage:
#   tests/scripts/schemathesis.sh [CTL_BINARY]      # default: target/debug/ctl
#
# What it does:
#   1. installs schemathesis with pip if `st` is missing;
#   2. starts `CTL_BINARY init --no-agent` (one master, no Docker) on a free
#      127.0.0.1 port in a fresh temporary data directory;
#   3. reads the index at /openapi/v3 and runs `st run` against every
#      group-version document it lists (api/v1, apis/apps/v1, ...), with the
#      admin bearer token and the cluster CA (TLS verified, loopback only);
#   4. sends a few raw requests schemathesis cannot generate (unknown path,
#      unsupported method, invalid UTF-8 in the path, a chunked body over the
#      limit) whose answers must also be Kubernetes Status objects;
#   5. prints a one-line summary, kills the master and removes the directory.
#
# It fails (exit 1) on any 5xx, any error answer that is not a Kubernetes
# `Status` (`{"kind":"Status","apiVersion":"v1","status":"Failure","code":N}`),
# any response slower than ST_MAX_RESPONSE_TIME, any case schemathesis could
# not run, or a master that died during the run. Checks and hooks are in
# tests/scripts/schemathesis_hooks.py; the report parser in
# tests/scripts/schemathesis_summary.py.
#
# Knobs (environment; the defaults are the short CI pass, about 1–2 minutes):
#   ST_MAX_EXAMPLES=5         examples per operation in the fuzzing phase
#   ST_PHASES=examples,fuzzing  (add `coverage` for the long pass: on api/v1
#                             alone it sends ~28,000 requests, ~8 minutes)
#   ST_MAX_TIME=              per-document time budget in seconds (fuzzing
#                             repeats until it is spent); empty: no budget
#   ST_WATCH_LIMIT=1          watches sent per LIST operation (each lasts 1 s;
#                             later ones go as plain LISTs); -1: all
#   ST_MAX_RESPONSE_TIME=10   seconds; a slower answer is a failure
#   ST_CHECKS=not_a_server_error,kubernetes_status_error
#   ST_REPORT_DIR=            keep the NDJSON reports and logs here
#   ST_DETAILS=1              print a reproduction of each distinct failure
#
# The long pass reported for issue 15 (10 minutes, 10,562 requests) was:
#   ST_PHASES=examples,fuzzing ST_MAX_TIME=200 ST_WATCH_LIMIT=10 \
#       ST_MAX_EXAMPLES=100 tests/scripts/schemathesis.sh
# and the exhaustive coverage phase (28,588 requests on api/v1 alone) is:
#   ST_PHASES=examples,coverage,fuzzing tests/scripts/schemathesis.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ctl="${1:-target/debug/ctl}"
max_examples="${ST_MAX_EXAMPLES:-5}"
phases="${ST_PHASES:-examples,fuzzing}"
max_time="${ST_MAX_TIME:-}"
watch_limit="${ST_WATCH_LIMIT:-1}"
max_response_time="${ST_MAX_RESPONSE_TIME:-10}"
checks="${ST_CHECKS:-not_a_server_error,kubernetes_status_error}"
details="${ST_DETAILS:-1}"

fail() {
    echo "schemathesis.sh: $*" >&2
    exit 1
}

[ -x "$ctl" ] || fail "no executable ctl binary at $ctl (build it: cargo build --bin ctl)"
ctl="$(cd "$(dirname "$ctl")" && pwd)/$(basename "$ctl")"
command -v python3 >/dev/null || fail "python3 is missing (apt-get install python3 python3-pip)"
command -v curl >/dev/null || fail "curl is missing (apt-get install curl)"
if ! command -v st >/dev/null; then
    echo "schemathesis.sh: installing schemathesis from PyPI"
    python3 -m pip install --quiet schemathesis || fail "pip install schemathesis failed"
    command -v st >/dev/null || fail "schemathesis installed but \`st\` is not on PATH"
fi

work="$(mktemp -d /tmp/flotilla-schemathesis.XXXXXX)"
reports="${ST_REPORT_DIR:-$work/reports}"
mkdir -p "$reports"
reports="$(cd "$reports" && pwd)"
# schemathesis and Hypothesis keep their caches in the current directory:
# keep them out of the source tree.
cd "$work"
master_pid=""
cleanup() {
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        kill -TERM "$master_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$master_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$master_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="https://127.0.0.1:$port"
"$ctl" init --data-dir "$work/m1" --listen "127.0.0.1:$port" --name m1 --no-agent \
    >"$reports/master.log" 2>&1 &
master_pid=$!

# Wait (with a deadline) for the kubeconfig and a ready member.
deadline=$((SECONDS + 60))
until [ -s "$work/m1/admin.kubeconfig" ] && [ -s "$work/m1/pki/ca.crt" ] &&
    curl -sf --max-time 2 --cacert "$work/m1/pki/ca.crt" "$base/readyz" >/dev/null; do
    kill -0 "$master_pid" 2>/dev/null || {
        tail -20 "$reports/master.log" >&2
        fail "the master exited during start-up"
    }
    [ "$SECONDS" -lt "$deadline" ] || fail "the master was not ready within 60 s"
    sleep 0.2
done
token="$(awk '$1 == "token:" { print $2; exit }' "$work/m1/admin.kubeconfig")"
[ -n "$token" ] || fail "no token: line in $work/m1/admin.kubeconfig"
ca="$work/m1/pki/ca.crt"

documents="$(curl -sf --max-time 10 --cacert "$ca" -H "Authorization: Bearer $token" "$base/openapi/v3" |
    python3 -c 'import json, sys; print("\n".join(sorted(json.load(sys.stdin)["paths"])))')" ||
    fail "could not read the OpenAPI index at $base/openapi/v3"
[ -n "$documents" ] || fail "the OpenAPI index lists no documents"

st_status=0
for doc in $documents; do
    name="$(echo "$doc" | tr '/' '_')"
    args=(run "$base/openapi/v3/$doc" --url "$base"
        -H "Authorization: Bearer $token" --tls-verify "$ca"
        --checks "$checks" --max-response-time "$max_response_time"
        --request-timeout 30 --max-examples "$max_examples" --phases "$phases"
        --workers 1 --no-color --report ndjson --report-dir "$reports"
        --report-ndjson-path "$reports/$name.ndjson")
    [ -z "$max_time" ] || args+=(--max-time "$max_time")
    echo "schemathesis.sh: st run $base/openapi/v3/$doc"
    if ! SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
        ST_WATCH_LIMIT="$watch_limit" st "${args[@]}" >"$reports/$name.log" 2>&1; then
        st_status=1
    fi
    kill -0 "$master_pid" 2>/dev/null || {
        tail -40 "$reports/master.log" >&2
        fail "the master died while schemathesis ran $doc"
    }
done

# Raw requests schemathesis does not generate: every error must be a Status.
probe_failures=0
probe() {
    local expect_code="$1" method="$2" path="$3"
    shift 3
    local out code
    out="$(curl -s --max-time 20 --cacert "$ca" -H "Authorization: Bearer $token" -X "$method" \
        -o "$work/probe.body" -w '%{http_code}' "$@" "$base$path")" || out="000"
    code="$out"
    if ! python3 - "$work/probe.body" "$code" <<'EOF'; then
import json, sys
body, code = open(sys.argv[1], "rb").read(), int(sys.argv[2])
try:
    status = json.loads(body)
except ValueError:
    sys.exit(1)
ok = isinstance(status, dict) and status.get("kind") == "Status" and status.get("apiVersion") == "v1" \
    and status.get("status") == "Failure" and status.get("code") == code
sys.exit(0 if ok else 1)
EOF
        echo "  probe: $method $path -> $code (expected a $expect_code Status): $(head -c 200 "$work/probe.body")"
        probe_failures=$((probe_failures + 1))
    fi
}
python3 -c 'import sys; sys.stdout.write("{\"a\":\"" + "x" * (4 * 1024 * 1024) + "\"}")' >"$work/big.json"
probe_output="$(
    probe 404 GET /no/such/path
    probe 404 GET /apis/apps
    probe 405 POST /api
    probe 405 DELETE /openapi/v3
    probe 400 GET '/api/v1/namespaces/%FF/pods'
    probe 400 GET '/apis/%FF/v1/deployments'
    probe 413 POST /api/v1/namespaces/default/pods -H 'Content-Type: application/json' \
        -H 'Transfer-Encoding: chunked' --data-binary "@$work/big.json"
    echo "probe_failures=$probe_failures"
)"
probe_failures="$(echo "$probe_output" | sed -n 's/^probe_failures=//p')"
echo "$probe_output" | grep -v '^probe_failures=' || true

kill -0 "$master_pid" 2>/dev/null || {
    tail -40 "$reports/master.log" >&2
    fail "the master died during the probes"
}

summary_args=("$reports"/*.ndjson)
[ "$details" != 1 ] || summary_args+=(--details)
summary_status=0
summary="$(python3 "$here/schemathesis_summary.py" "${summary_args[@]}")" || summary_status=1
echo "$summary"

cases="$(echo "$summary" | sed -n 's/^test cases generated: \([0-9]*\); requests sent: \([0-9]*\)$/\1 cases, \2 requests/p')"
failures="$(echo "$summary" | sed -n 's/^distinct failures (check, operation, status): //p')"
if [ "$st_status" -ne 0 ] || [ "$summary_status" -ne 0 ] || [ "$probe_failures" -ne 0 ]; then
    echo "schemathesis: FAIL — $(echo "$documents" | wc -l) documents, $cases, $failures distinct schemathesis failures, $probe_failures raw probes not answered with a Status, master alive (reports: $reports)"
    [ -n "${ST_REPORT_DIR:-}" ] || echo "  (set ST_REPORT_DIR to keep the reports and st logs)"
    exit 1
fi
echo "schemathesis: OK — $(echo "$documents" | wc -l) documents, $cases, no 5xx, every error a Status, master alive"
