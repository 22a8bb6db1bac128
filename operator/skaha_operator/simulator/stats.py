"""Request counts, so a test can assert how many calls a client sent (`GET /_sim/stats`).

Every request outside `/_sim/` and the connect pages is counted when it arrives, keyed by method,
path, the credential it carried (the bearer token, else the `X-Rucio-Auth-Token`, else none), the
user that credential maps to at arrival, and its outcome: `in-flight` until it ends, then the
HTTP status, `reset` (connection dropped by `p_reset`) or `cancelled` (the client gave up).
Imports no HTTP library.
"""

from __future__ import annotations

from collections import Counter
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

IN_FLIGHT = "in-flight"
NO_TOKEN = "<none>"


class RequestKey(NamedTuple):
    """What one counted request is filed under."""

    method: str
    path: str
    token: str
    user: str
    outcome: str


class RequestStats:
    """Counters of requests by method, path, token, user and outcome."""

    def __init__(self) -> None:
        self._counts: Counter[RequestKey] = Counter()

    def begin(self, method: str, path: str, token: str | None, user: str | None) -> RequestKey:
        """Count a request as it arrives (outcome `in-flight`)."""
        key = RequestKey(method.upper(), path, token or NO_TOKEN, user or "", IN_FLIGHT)
        self._counts[key] += 1
        return key

    def end(self, key: RequestKey, outcome: str) -> None:
        """Move a request from `in-flight` to its outcome (a reset in between is ignored)."""
        left = self._counts.get(key, 0)
        if left <= 0:
            return
        if left == 1:
            del self._counts[key]
        else:
            self._counts[key] = left - 1
        self._counts[key._replace(outcome=outcome)] += 1

    def reset(self) -> None:
        """Forget every count."""
        self._counts.clear()

    def summary(
        self,
        *,
        method: str | None = None,
        route: str | None = None,
        token: str | None = None,
        user: str | None = None,
        outcome: str | None = None,
    ) -> dict[str, Any]:
        """Totals of the requests matching every given filter (`route` is an fnmatch on path)."""
        by_route: Counter[str] = Counter()
        by_token: Counter[str] = Counter()
        by_user: Counter[str] = Counter()
        by_outcome: Counter[str] = Counter()
        for key, count in self._counts.items():
            if (
                (method is not None and key.method != method.upper())
                or (route is not None and not fnmatchcase(key.path, route))
                or (token is not None and key.token != token)
                or (user is not None and key.user != user)
                or (outcome is not None and key.outcome != outcome)
            ):
                continue
            by_route[f"{key.method} {key.path}"] += count
            by_token[key.token] += count
            by_user[key.user] += count
            by_outcome[key.outcome] += count
        return {
            "count": sum(by_route.values()),
            "by_route": dict(sorted(by_route.items())),
            "by_token": dict(sorted(by_token.items())),
            "by_user": dict(sorted(by_user.items())),
            "by_outcome": dict(sorted(by_outcome.items())),
        }
