"""Who may read the operator's own endpoints: TokenReview, then SubjectAccessReview.

The secure-metrics pattern of controller-runtime (docs/observability.md): a scraper presents a
bearer token; the API server says whose it is (`authentication.k8s.io/v1` TokenReview) and
whether that user may `get` the non-resource URL `/metrics` (`authorization.k8s.io/v1`
SubjectAccessReview), which RBAC grants with a ClusterRole such as the chart's
`<release>-metrics-reader`. Answers are cached briefly under a hash of the token, never the token
itself, so a scrape every few seconds costs the API server two requests a minute per scraper.
Synchronous: the metrics server calls it from its request threads.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

log = logging.getLogger(__name__)

ALLOWED_TTL = 60.0  # seconds an allowed token is trusted without asking again
DENIED_TTL = 10.0  # seconds a refused token stays refused
MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Verdict:
    """An HTTP status for the request (200, 401, 403 or 500) and a short, secret-free reason."""

    code: int
    reason: str


class AccessReviewer:
    """Decides whether a bearer token may `verb` the non-resource URL `path`."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        path: str = "/metrics",
        verb: str = "get",
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.path, self.verb, self.now = path, verb, now
        self._cache: dict[str, tuple[float, Verdict]] = {}
        self._lock = threading.Lock()

    def check(self, token: str | None) -> Verdict:
        """The verdict for one request's token (None: no `Authorization: Bearer` header)."""
        if not token:
            return Verdict(401, "no bearer token")
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > self.now():
                return cached[1]
        verdict = self._review(token)
        if verdict.code != 500:  # an API server failure is not remembered
            ttl = ALLOWED_TTL if verdict.code == 200 else DENIED_TTL
            with self._lock:
                if len(self._cache) >= MAX_ENTRIES:
                    self._cache.clear()
                self._cache[key] = (self.now() + ttl, verdict)
        return verdict

    def _review(self, token: str) -> Verdict:
        try:
            review = self.authn.create_token_review(
                client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
            )
            status = review.status
            if status is None or not status.authenticated or status.user is None:
                return Verdict(401, "token not authenticated")
            user = status.user
            access = self.authz.create_subject_access_review(
                client.V1SubjectAccessReview(
                    spec=client.V1SubjectAccessReviewSpec(
                        user=user.username,
                        uid=user.uid,
                        groups=user.groups,
                        extra=user.extra,
                        non_resource_attributes=client.V1NonResourceAttributes(
                            path=self.path, verb=self.verb
                        ),
                    )
                )
            )
        except client.ApiException as exc:
            log.warning("access review failed: HTTP %s", exc.status)
            return Verdict(500, "access review failed")
        except Exception as exc:  # the API server is unreachable: refuse, say nothing more
            log.warning("access review failed: %s", type(exc).__name__)
            return Verdict(500, "access review failed")
        if access.status is None or not access.status.allowed:
            return Verdict(403, f"{user.username} may not {self.verb} {self.path}")
        return Verdict(200, "allowed")
