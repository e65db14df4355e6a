"""Schemathesis hooks for tests/scripts/schemathesis.sh (loaded via SCHEMATHESIS_HOOKS).

- `before_call`: a generated `?watch=true` (or `watch=1`) LIST is a stream that
  stays open for up to 30 minutes, as in Kubernetes; give it `timeoutSeconds=1`
  so the watch path is still exercised but every request ends. Each watch then
  costs a second: with ST_WATCH_LIMIT=N only the first N watches of each
  operation are sent as watches, later ones as plain LISTs (the short CI pass).
- `kubernetes_status_error`: every error answer (4xx/5xx) must be a Kubernetes
  `Status` object: JSON with kind "Status", apiVersion "v1", status "Failure"
  and `code` equal to the HTTP status.
"""

import json
import os

import schemathesis

WATCH_TIMEOUT_SECONDS = "1"
WATCH_LIMIT = int(os.environ.get("ST_WATCH_LIMIT", "-1"))
_watches_sent = {}


@schemathesis.hook
def before_call(context, case, kwargs):
    query = case.query
    if not isinstance(query, dict):
        return
    watch = query.get("watch")
    if str(watch).lower() not in ("true", "1"):
        return
    label = case.operation.label
    sent = _watches_sent.get(label, 0)
    if 0 <= WATCH_LIMIT <= sent:
        del query["watch"]
        return
    _watches_sent[label] = sent + 1
    query["timeoutSeconds"] = WATCH_TIMEOUT_SECONDS


@schemathesis.check
def kubernetes_status_error(ctx, response, case):
    """An error answer must be a Kubernetes Status object."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} answer is not JSON: {response.content[:300]!r}"
        )
    if not isinstance(body, dict):
        raise AssertionError(f"{response.status_code} answer is not a JSON object: {body!r}")
    problems = []
    if body.get("kind") != "Status":
        problems.append(f"kind={body.get('kind')!r}")
    if body.get("apiVersion") != "v1":
        problems.append(f"apiVersion={body.get('apiVersion')!r}")
    if body.get("status") != "Failure":
        problems.append(f"status={body.get('status')!r}")
    if body.get("code") != response.status_code:
        problems.append(f"code={body.get('code')!r} (HTTP {response.status_code})")
    if problems:
        raise AssertionError(
            f"{response.status_code} answer is not a Kubernetes Status ({', '.join(problems)}): "
            f"{response.content[:300]!r}"
        )
    return None
