"""The shared HTTP plumbing of the Skaha, Cavern and Rucio clients.

Owns: building one pooled `httpx.AsyncClient` per service (its bytes carried by aiohttp,
`transport.py`) with explicit timeouts, sending a request with the retry policy, mapping
failures to `errors.py` (httpx error chained as cause), the per-attempt call counter hook, the
allowed-hosts guard on every request (`hosts.py`), and keeping secrets out of every message and
log line; server text is cut to `errors.MAX_SERVER_TEXT`. Logs name the route template, never
the headers or a secret.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from skaha_operator.platform.errors import (
    AuthError,
    BadReply,
    Conflict,
    HostNotAllowed,
    NotFound,
    RateLimited,
    Rejected,
    SkahaError,
    Unavailable,
    bounded,
    scrub,
)
from skaha_operator.platform.hosts import HostPolicy
from skaha_operator.platform.retry import RetryPolicy, call_with_retry
from skaha_operator.platform.transport import AiohttpTransport

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)


def make_timeout(read_seconds: float) -> httpx.Timeout:
    """Timeouts with the given read/write limit (connect and pool stay short)."""
    return httpx.Timeout(connect=5.0, read=read_seconds, write=read_seconds, pool=10.0)


DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
# Connection never established: the request certainly did not reach the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class CallRecord:
    """One HTTP attempt, for `skaha_requests_total{service,method,route,code}`."""

    service: str
    method: str
    route: str
    code: str
    started: float = 0.0  # wall clock
    seconds: float = 0.0


CallRecorder = Callable[[CallRecord], None]


class BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer <token>` per request; the token stays a SecretStr."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Attach the bearer header."""
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=SecretStr('**********'))"


def host_guard(hosts: HostPolicy) -> Callable[[httpx.Request], Awaitable[None]]:
    """An httpx request hook refusing, before anything is sent, a host the policy refuses.

    It runs for every request the client sends (Rucio's separate auth host included), so no
    URL a SkahaPlatform or a server reply names can take the operator elsewhere.
    """

    async def check(request: httpx.Request) -> None:
        why = hosts.host_refusal(request.url.host)
        if why is not None:
            raise HostNotAllowed(why, route=request.url.path)

    return check


def auth_secrets(auth: httpx.Auth | None) -> tuple[SecretStr, ...]:
    """The secrets an auth object sends, when it says (a refreshed bearer token changes)."""
    known = getattr(auth, "secrets", None)
    return tuple(known()) if callable(known) else ()


def make_http_client(
    base_url: str,
    *,
    auth: httpx.Auth | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool = True,
    hosts: HostPolicy | None = None,
) -> httpx.AsyncClient:
    """One pooled client for one service, with explicit timeouts; `hosts` guards every request.

    Redirects are never followed (httpx's default): a 3xx cannot move a request to a host the
    check did not see. The bytes go through aiohttp (`transport.py`) unless a test passes its
    own transport.
    """
    if transport is None:
        transport = AiohttpTransport(verify=verify, limits=limits)
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        verify=verify,
        auth=auth,
        timeout=timeout,
        limits=limits,
        transport=transport,
        follow_redirects=False,
        event_hooks={"request": [host_guard(hosts)]} if hosts is not None else None,
        headers={"User-Agent": "skaha-operator", "Accept": "application/json"},
    )


def trust_context(ca_file: str | None = None, ca_pem: str | None = None) -> ssl.SSLContext | bool:
    """What the clients verify server certificates with: the public CAs (certifi, as httpx
    uses), plus a site's CA bundle from a file (`--ca-bundle`) and/or PEM text (a platform's
    caBundleSecretRef). True (httpx's default) when neither is given."""
    if not ca_file and not ca_pem:
        return True
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    return context


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse `Retry-After` (delta-seconds or an HTTP date) into seconds from now."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(tz=UTC))).total_seconds())


class ServiceClient:
    """Base of the three clients: sends requests and turns failures into typed errors."""

    service: ClassVar[str] = "platform"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        secrets: tuple[SecretStr, ...] = (),
        retry: RetryPolicy | None = None,
        on_call: CallRecorder | None = None,
        concurrency: int | None = None,
    ) -> None:
        self._http = http
        self._secrets = set(secrets)
        self._retry = retry or RetryPolicy()
        self._on_call = on_call
        # Requests in flight, at most as many as the pool's connections: httpcore hands a freed
        # connection to its queued requests by scanning them all, which with hundreds queued
        # (a burst of launches) cost a third of the operator's CPU (docs/performance.md).
        limit = concurrency or DEFAULT_LIMITS.max_connections or 20
        self._slots = asyncio.Semaphore(limit)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self._http.base_url)!r})"

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    def _add_secret(self, secret: SecretStr) -> None:
        self._secrets.add(secret)

    def _scrub(self, text: str) -> str:
        secrets = (*self._secrets, *auth_secrets(self._http.auth))
        return scrub(text, tuple(s.get_secret_value() for s in secrets))

    async def _request(
        self,
        method: str,
        route: str,
        *,
        path: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        base: str = "",
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one call (retrying if idempotent) and return a 2xx response or raise.

        `route` is the template (it labels logs and counters); `base` overrides the client's
        base URL for services split over two hosts (Rucio auth).
        """
        url = base + _fill_route(route, path or {})
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent

        async def attempt() -> httpx.Response:
            return await self._attempt(method, route, url, safe, kwargs)

        return await call_with_retry(self._retry, safe, attempt)

    async def _attempt(
        self, method: str, route: str, url: str, idempotent: bool, kwargs: dict[str, Any]
    ) -> httpx.Response:
        async with self._slots:
            return await self._send(method, route, url, idempotent, kwargs)

    async def _send(
        self, method: str, route: str, url: str, idempotent: bool, kwargs: dict[str, Any]
    ) -> httpx.Response:
        started = time.time()
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self._record(method, route, type(exc).__name__, started)
            self._scrub_exception(exc)
            raise self._transport_error(method, route, exc, idempotent) from exc
        self._record(method, route, str(response.status_code), started)
        log.debug("%s %s %s -> %d", self.service, method, route, response.status_code)
        if response.is_success:
            return response
        error = self._status_error(method, route, response, idempotent)
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            self._scrub_exception(exc)
            raise error from exc
        raise error

    def _record(self, method: str, route: str, code: str, started: float) -> None:
        if self._on_call is not None:
            took = time.time() - started
            self._on_call(CallRecord(self.service, method, route, code, started, took))

    def _scrub_exception(self, exc: Exception) -> None:
        """Scrub secrets from a chained httpx error too: tracebacks print the whole chain."""
        exc.args = tuple(self._scrub(a) if isinstance(a, str) else a for a in exc.args)

    def _transport_error(
        self, method: str, route: str, exc: httpx.HTTPError, idempotent: bool
    ) -> Unavailable:
        detail = bounded(self._scrub(str(exc))) or "no detail"
        return Unavailable(
            f"{type(exc).__name__}: {detail}",
            maybe_committed=not idempotent and not isinstance(exc, _NOT_SENT),
            service=self.service,
            method=method,
            route=route,
        )

    def _server_message(self, response: httpx.Response) -> str:
        """The server's error text; OpenCADC sends `text/plain` `<message>\\n` (§5)."""
        return response.text.strip()

    def _status_error(
        self, method: str, route: str, response: httpx.Response, idempotent: bool
    ) -> SkahaError:
        code = response.status_code
        message = bounded(self._scrub(self._server_message(response))) or (
            response.reason_phrase or f"HTTP {code}"
        )
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        kind = _error_kind(code)
        if issubclass(kind, Unavailable):
            return kind(
                message,
                retry_after=retry_after,
                maybe_committed=code >= 500 and not idempotent,
                status=code,
                service=self.service,
                method=method,
                route=route,
            )
        return kind(message, status=code, service=self.service, method=method, route=route)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise self._bad_reply(response, "reply is not JSON") from exc

    def _model(self, model: type[M], data: Any, response: httpx.Response) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise self._bad_reply(response, f"unexpected {model.__name__}: {exc}") from exc

    def _bad_reply(self, response: httpx.Response, why: str) -> BadReply:
        request = response.request
        return BadReply(
            bounded(self._scrub(why)),
            status=response.status_code,
            service=self.service,
            method=request.method,
            route=request.url.path,
        )


def _error_kind(code: int) -> type[SkahaError]:
    """The error class for an HTTP status (kopf's mapping: 4xx permanent except 429)."""
    if code == 429:
        return RateLimited
    if code >= 500:
        return Unavailable
    return {401: AuthError, 403: AuthError, 404: NotFound, 409: Conflict}.get(code, Rejected)


def _fill_route(route: str, values: Mapping[str, str]) -> str:
    """Format a route template; `{path}` keeps its slashes, every other value is one segment."""
    quoted = {key: quote(value, safe="/" if key == "path" else "") for key, value in values.items()}
    return route.format(**quoted)
