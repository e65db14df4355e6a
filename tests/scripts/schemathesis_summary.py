"""Summarizes schemathesis NDJSON reports (tests/scripts/schemathesis.sh).

Usage: python3 schemathesis_summary.py REPORT.ndjson... [--details]

Prints the test cases generated, the requests sent, the HTTP status
histogram, the failures per check and, with --details, one reproduction
(method, URL, body, response) for each distinct failure: the same check,
operation and HTTP status count as one. Exits 1 if any check failed or the
reports record errors (schemathesis could not run a case), 0 otherwise.
"""

import base64
import collections
import json
import sys


def decode(blob):
    if not isinstance(blob, dict):
        return ""
    if "$base64" in blob:
        return base64.b64decode(blob["$base64"]).decode("utf-8", "replace")
    return str(blob.get("string", ""))


def main(argv):
    details = "--details" in argv
    paths = [a for a in argv if a != "--details"]
    cases = 0
    requests = 0
    errors = []
    statuses = collections.Counter()
    checks_run = collections.Counter()
    checks_failed = collections.Counter()
    distinct = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                event = json.loads(line)
                kind, body = next(iter(event.items()))
                if kind == "NonFatalError":
                    errors.append(f"{body.get('label')}: {str(body.get('info', body))[:300]}")
                if kind != "ScenarioFinished":
                    continue
                recorder = body.get("recorder") or {}
                label = recorder.get("label", "?")
                cases += len(recorder.get("cases", {}))
                interactions = recorder.get("interactions", {})
                requests += len(interactions)
                for interaction in interactions.values():
                    response = interaction.get("response") or {}
                    statuses[response.get("status_code", "none")] += 1
                for case_id, results in recorder.get("checks", {}).items():
                    for check in results:
                        name = check.get("name")
                        checks_run[name] += 1
                        if check.get("status") != "failure":
                            continue
                        checks_failed[name] += 1
                        interaction = interactions.get(case_id) or {}
                        response = interaction.get("response") or {}
                        request = interaction.get("request") or {}
                        key = (name, label, response.get("status_code"))
                        if key not in distinct:
                            distinct[key] = (request, response)
    print(f"test cases generated: {cases}; requests sent: {requests}")
    print("HTTP statuses: " + ", ".join(f"{k}={v}" for k, v in sorted(statuses.items(), key=str)))
    for name in sorted(checks_run):
        print(f"check {name}: {checks_run[name]} run, {checks_failed[name]} failed")
    print(f"distinct failures (check, operation, status): {len(distinct)}")
    for (name, label, status), (request, response) in sorted(distinct.items(), key=str):
        print(f"  {name}: {label} -> {status}")
        if details:
            print(f"    request: {request.get('method')} {request.get('uri')}")
            req_body = decode(request.get("body"))
            if req_body:
                print(f"    body: {req_body[:600]}")
            print(f"    response: {decode(response.get('content'))[:400]}")
    for error in errors:
        print(f"  error: {error}")
    return 1 if checks_failed or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
