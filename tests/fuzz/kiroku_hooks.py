"""Schemathesis hooks for Kiroku's API (loaded through SCHEMATHESIS_HOOKS=kiroku_hooks).

- Attendance imports are sent as text/csv, the way a city sends them.
- Path ids are sometimes those of a staff member, a session, a plan item and an incident the
  test recorded first (KIROKU_FUZZ_IDS), so that generated bodies reach the domain's rules
  instead of stopping at 404.
- The check `refusals_are_problems_that_record_nothing`: every 4xx is problem+json with a
  `code`, and the head of the log does not move over a refused request (the requests are
  sent one at a time).
"""

import json
import os
import random

import requests
import schemathesis

BASE = os.environ["KIROKU_FUZZ_BASE"]
IDS = json.loads(os.environ.get("KIROKU_FUZZ_IDS", "{}"))
LAST_HEAD = [None]


@schemathesis.serializer("text/csv")
class CsvSerializer:
    def as_requests(self, context, value):
        if isinstance(value, bytes):
            return {"data": value}
        return {"data": str(value).encode("utf-8")}

    def as_werkzeug(self, context, value):
        return self.as_requests(context, value)


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    path = context.operation.path
    if path_parameters is None or random.random() < 0.3:
        return path_parameters
    known = {
        "/staff/": ("id", IDS.get("staff")),
        "/sessions/": ("id", IDS.get("session")),
        "/compliance-incidents/": ("id", IDS.get("incident")),
        "/plan-items/": ("code", IDS.get("code")),
    }
    for prefix, (name, value) in known.items():
        if path.startswith(prefix) and value and name in path_parameters:
            path_parameters[name] = value
    if "staff_id" in path_parameters and IDS.get("staff"):
        path_parameters["staff_id"] = IDS["staff"]
    return path_parameters


def head():
    return requests.get(BASE + "/healthz", timeout=30).json()["position"]


@schemathesis.check
def refusals_are_problems_that_record_nothing(response, case):
    status = response.status_code
    if 400 <= status < 500:
        media = response.headers.get("Content-Type", "")
        if not media.startswith("application/problem+json"):
            raise AssertionError(f"{status} answered as {media!r}, not problem+json")
        body = response.json()
        if not body.get("code") or not body.get("detail"):
            raise AssertionError(f"{status} problem without code or detail: {body}")
    now = head()
    if status >= 400 and LAST_HEAD[0] is not None and now != LAST_HEAD[0]:
        raise AssertionError(f"refused with {status}, yet the log moved from {LAST_HEAD[0]} to {now}")
    LAST_HEAD[0] = now
