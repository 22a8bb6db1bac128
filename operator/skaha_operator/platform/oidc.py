"""OIDC access tokens from a refresh token, handed to the Skaha and Cavern clients per request.

Owns `OidcTokenSource` (the OAuth2 `refresh_token` grant against the issuer's token endpoint,
found through `/.well-known/openid-configuration` when only the issuer is given;
docs/platform-api.md §5.1) and `TokenAuth` (the httpx auth that asks the source for the current
access token on every request and, after a 401, refreshes at once and resends once).

Rules kept here:
- the access token is refreshed before it expires: lazily, on the first request after
  `refresh_fraction` (80 %) of its lifetime (`expires_in`, or DEFAULT_LIFETIME without it);
- a refresh token the issuer rotates is kept in memory and handed to `on_rotate` (the caller
  may write it back to its Secret); every refresh token held is remembered by hash so that a
  Secret holding one of them is recognised as ours, not as a new one from a human;
- an issuer refusal (`error`, `error_description`, bounded and scrubbed) is `CredentialsRefused`,
  repeated without asking again for REFUSAL_COOLDOWN seconds; then the Secret is read again
  (`reload`), and a refresh token not seen before is tried at once;
- an issuer that does not answer (or answers what cannot be understood) is `Unavailable`, but an
  access token that is still valid stays in use meanwhile; a discovery document that is refused
  or does not fit is `CredentialsRefused`;
- nothing secret reaches a message, a log line or a repr (docs/design.md §4.7).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr

from skaha_operator.platform.base import (
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    CallRecorder,
    ServiceClient,
    make_http_client,
    trust_context,
)
from skaha_operator.platform.errors import (
    BadReply,
    CredentialsRefused,
    Rejected,
    SkahaError,
    Unavailable,
    scrub,
)
from skaha_operator.platform.hosts import HostPolicy
from skaha_operator.platform.retry import RetryPolicy

log = logging.getLogger(__name__)

#: Assumed access-token lifetime when the token endpoint omits `expires_in` (RFC 6749 §5.1).
DEFAULT_LIFETIME = 300.0
#: After a refusal, the same error is repeated this long before the issuer is asked again.
REFUSAL_COOLDOWN = 15.0
#: A 401 forces a refresh at most this often (a service refusing fresh tokens too must not
#: turn every request into a call to the issuer).
FORCED_REFRESH_INTERVAL = 5.0
#: While the issuer does not answer and the access token is still valid, ask again after this.
UNAVAILABLE_RETRY = 5.0
#: Refresh tokens remembered (by hash) besides the first: rotations to recognise in the Secret.
REMEMBERED_ROTATIONS = 16
#: The issuer's `error` and `error_description` are cut to these lengths.
MAX_ERROR_CHARS = 64
MAX_DESCRIPTION_CHARS = 300
DISCOVERY_PATH = "/.well-known/openid-configuration"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class TokenSource(Protocol):
    """Where a client gets its bearer token, per request.

    `token` and `refused` raise only `CredentialsRefused` (a person must fix the credential) or
    `Unavailable` with `maybe_committed` false (try later), so that nothing the source raises can
    be mistaken for an answer of the service the request was meant for.
    """

    async def token(self) -> SecretStr:
        """The access token to send now (refreshed first when due)."""
        ...

    async def refused(self, token: SecretStr) -> bool:
        """`token` was answered 401: True when a different token is now current (resend)."""
        ...

    def secrets(self) -> tuple[SecretStr, ...]:
        """Every secret this source sends or holds, for scrubbing messages."""
        ...


class TokenAuth(httpx.Auth):
    """`Authorization: Bearer <current access token>`; after a 401, refresh and resend once.

    Resending is safe for a POST too: a 401 means the service did not act on the request.
    """

    requires_request_body = True

    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """The platform clients are asynchronous only."""
        raise RuntimeError("TokenAuth needs an httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Attach the current token; on a 401 ask the source for a fresh one and resend."""
        token = await self._source.token()
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401 and await self._source.refused(token):
            token = await self._source.token()
            request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            yield request

    def secrets(self) -> tuple[SecretStr, ...]:
        """What the source holds (read by the clients' scrubbing, platform/base.py)."""
        return self._source.secrets()

    def __repr__(self) -> str:
        return "TokenAuth(token=SecretStr('**********'))"


@dataclass(frozen=True)
class OidcSettings:
    """One OIDC credential: where the token endpoint is and what to present to it."""

    client_id: str
    refresh_token: SecretStr
    token_url: str | None = None
    issuer: str | None = None
    client_secret: SecretStr | None = None
    client_auth: str = "client_secret_basic"  # or client_secret_post
    scope: str | None = None
    refresh_fraction: float = 0.8
    # Extra CAs trusted for the issuer, as for the platform's services (platform/base.py).
    ca_file: str | None = None
    ca_pem: str | None = field(default=None, repr=False)
    # Checked before every request, the discovered token endpoint included (platform/hosts.py).
    hosts: HostPolicy | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    limits: httpx.Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if (self.token_url is None) == (self.issuer is None):
            raise ValueError("exactly one of token_url and issuer")


@dataclass(frozen=True)
class TokenState:
    """What may be shown of a source (no secret): for status and tests."""

    expires_at: datetime | None
    token_endpoint: str | None
    refreshes: int
    rotations: int


RotateHook = Callable[[SecretStr], Awaitable[None]]
ReloadHook = Callable[[], Awaitable[str | None]]


def fingerprint(value: str) -> str:
    """A stable, non-reversible name for a secret value (to recognise it, never to show it)."""
    return hashlib.sha256(value.encode()).hexdigest()


class OidcTokenSource(ServiceClient):
    """Access tokens from one refresh token; share one per credential, close with `aclose()`."""

    service = "oidc"

    def __init__(
        self,
        settings: OidcSettings,
        *,
        on_rotate: RotateHook | None = None,
        reload: ReloadHook | None = None,
        on_call: CallRecorder | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        http = make_http_client(
            "",
            timeout=settings.timeout,
            limits=settings.limits,
            transport=transport,
            verify=trust_context(settings.ca_file, settings.ca_pem),
            hosts=settings.hosts,
        )
        super().__init__(http, retry=settings.retry, on_call=on_call)
        self._settings = settings
        self._on_rotate = on_rotate
        self._reload = reload
        self._clock = clock
        self._wall = wall
        self._lock = asyncio.Lock()
        self._refresh_token = settings.refresh_token
        self._previous: SecretStr | None = None  # the refresh token before the last rotation
        self._first = fingerprint(settings.refresh_token.get_secret_value())
        self._rotated: dict[str, None] = {}  # fingerprints of later refresh tokens, oldest first
        self._endpoint = settings.token_url
        self._access: SecretStr | None = None
        self._expires = 0.0  # monotonic
        self._refresh_at = 0.0  # monotonic
        self._expires_wall: datetime | None = None
        self._forced_at: float | None = None
        self._refusal: tuple[CredentialsRefused, float] | None = None
        self.refreshes = 0
        self.rotations = 0

    # -- what callers use ------------------------------------------------------------------

    async def token(self) -> SecretStr:
        """The current access token; refreshed first when 80 % of its lifetime has passed."""
        async with self._lock:
            if self._access is None or self._clock() >= self._refresh_at:
                await self._refresh_locked()
            assert self._access is not None  # set by a refresh, or it raised
            return self._access

    async def refused(self, token: SecretStr) -> bool:
        """A service answered 401 to `token`: refresh at once (at most every few seconds)."""
        async with self._lock:
            if self._access is not None and self._access != token:
                return True  # refreshed meanwhile: resend with the new token
            now = self._clock()
            if self._forced_at is not None and now - self._forced_at < FORCED_REFRESH_INTERVAL:
                return False
            self._forced_at = now
            self._refresh_at = now  # the token is dead whatever its expiry said
            await self._refresh_locked(keep_valid=False)
            return self._access is not None and self._access != token

    def knows(self, refresh_token: str) -> bool:
        """Whether `refresh_token` is one this source has held (its start or a rotation)."""
        digest = fingerprint(refresh_token)
        return digest == self._first or digest in self._rotated

    def state(self) -> TokenState:
        """Expiry (wall clock) and counters, without any secret."""
        return TokenState(self._expires_wall, self._endpoint, self.refreshes, self.rotations)

    def secrets(self) -> tuple[SecretStr, ...]:
        """The refresh tokens (current and previous), the client secret, the access token."""
        held = (self._refresh_token, self._previous, self._settings.client_secret, self._access)
        return tuple(s for s in held if s is not None)

    def _scrub(self, text: str) -> str:
        return scrub(text, tuple(s.get_secret_value() for s in self.secrets()))

    def __repr__(self) -> str:
        where = self._settings.token_url or self._settings.issuer
        return f"OidcTokenSource(endpoint={where!r}, client_id={self._settings.client_id!r})"

    # -- refreshing --------------------------------------------------------------------------

    async def _refresh_locked(self, *, keep_valid: bool = True) -> None:
        """Exchange the refresh token; on failure keep a still-valid token unless refused."""
        now = self._clock()
        if self._refusal is not None and now - self._refusal[1] < REFUSAL_COOLDOWN:
            raise _copy(self._refusal[0])
        try:
            try:
                await self._exchange()
            except CredentialsRefused:
                if not await self._adopt_reloaded():
                    raise
                await self._exchange()
        except CredentialsRefused as exc:
            self._refusal = (exc, self._clock())
            self._access = None
            self._expires_wall = None
            log.warning("OIDC issuer refused the refresh token: %s", exc)
            raise
        except SkahaError as exc:
            if keep_valid and self._access is not None and self._clock() < self._expires:
                # The issuer is down or odd; the token in use still works for a while.
                self._refresh_at = min(self._clock() + UNAVAILABLE_RETRY, self._expires)
                log.warning("OIDC refresh failed, the current access token stays in use: %s", exc)
                return
            raise _unavailable(exc) from exc
        self._refusal = None

    async def _adopt_reloaded(self) -> bool:
        """After a refusal: use the refresh token now in the Secret if it is one never tried."""
        if self._reload is None:
            return False
        fresh = await self._reload()
        if not fresh or self.knows(fresh):
            return False
        log.info("OIDC: the refresh-token Secret holds a new refresh token; using it")
        self._hold(SecretStr(fresh))
        return True

    def _hold(self, refresh_token: SecretStr) -> None:
        self._previous, self._refresh_token = self._refresh_token, refresh_token
        self._rotated[fingerprint(refresh_token.get_secret_value())] = None
        while len(self._rotated) > REMEMBERED_ROTATIONS:
            del self._rotated[next(iter(self._rotated))]

    async def _exchange(self) -> None:
        """One `refresh_token` grant (RFC 6749 §6): a form POST, never retried blindly."""
        endpoint = self._endpoint or await self._discover()
        origin, route = _split(endpoint)
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token.get_secret_value(),
        }
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        settings = self._settings
        if settings.scope:
            form["scope"] = settings.scope
        secret = settings.client_secret
        if secret is not None and settings.client_auth == "client_secret_basic":
            headers["Authorization"] = _basic(settings.client_id, secret)
        else:
            form["client_id"] = settings.client_id
            if secret is not None:
                form["client_secret"] = secret.get_secret_value()
        started, started_wall = self._clock(), self._wall()
        try:
            response = await self._request(
                "POST", route, base=origin, data=form, headers=headers, idempotent=False
            )
        except Rejected as exc:
            raise CredentialsRefused(
                f"the token endpoint refused the refresh token: {exc.message}",
                status=exc.status,
                service=self.service,
                method=exc.method,
                route=exc.route,
            ) from exc
        access, lifetime, rotated = self._parse_grant(response)
        self._access = access
        self._expires = started + lifetime
        self._refresh_at = started + lifetime * self._settings.refresh_fraction
        self._expires_wall = started_wall + timedelta(seconds=lifetime)
        self.refreshes += 1
        if rotated is not None and rotated != self._refresh_token:
            await self._rotate(rotated)

    def _parse_grant(self, response: httpx.Response) -> tuple[SecretStr, float, SecretStr | None]:
        body = self._json(response)
        if not isinstance(body, dict):
            raise self._bad_reply(response, "token reply is not a JSON object")
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise self._bad_reply(response, "token reply has no access_token")
        kind = body.get("token_type", "Bearer")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise self._bad_reply(response, f"token_type {_clean(kind, 32)!r} is not Bearer")
        rotated = body.get("refresh_token")
        return (
            SecretStr(access),
            _lifetime(body.get("expires_in")),
            SecretStr(rotated) if isinstance(rotated, str) and rotated else None,
        )

    async def _rotate(self, new: SecretStr) -> None:
        self._hold(new)
        log.info("OIDC: the issuer rotated the refresh token")
        self.rotations += 1
        if self._on_rotate is None:
            return
        try:
            await self._on_rotate(new)
        except Exception as exc:  # keeping the token matters more than storing it
            log.warning("OIDC: the rotated refresh token is kept in memory only: %s",
                        self._scrub(str(exc)))  # fmt: skip

    async def _discover(self) -> str:
        """The token endpoint from `<issuer>/.well-known/openid-configuration` (OIDC Discovery).

        A refusal or a document that does not fit is a configuration a person must fix:
        `CredentialsRefused`; an issuer that does not answer stays `Unavailable`.
        """
        try:
            return await self._discover_once()
        except (Rejected, BadReply) as exc:
            raise CredentialsRefused(
                f"issuer discovery failed: {exc}",
                status=exc.status,
                service=self.service,
                method=exc.method,
                route=exc.route,
            ) from exc

    async def _discover_once(self) -> str:
        issuer = self._settings.issuer or ""
        origin, path = _split(issuer.rstrip("/") + DISCOVERY_PATH)
        response = await self._request("GET", path, base=origin)
        doc = self._json(response)
        if not isinstance(doc, dict):
            raise self._bad_reply(response, "discovery document is not a JSON object")
        said = doc.get("issuer")
        if not isinstance(said, str) or said.rstrip("/") != issuer.rstrip("/"):
            raise self._bad_reply(
                response, f"discovery document names issuer {_clean(said, 200)!r}"
            )
        endpoint = doc.get("token_endpoint")
        if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
            raise self._bad_reply(response, "discovery document has no http(s) token_endpoint")
        self._endpoint = endpoint
        return endpoint

    def _server_message(self, response: httpx.Response) -> str:
        """RFC 6749 §5.2: `error` and `error_description`, scrubbed, then bounded on one line."""
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return _clean(self._scrub(response.text), MAX_DESCRIPTION_CHARS)
        error = _clean(self._scrub(body["error"]), MAX_ERROR_CHARS)
        description = body.get("error_description")
        if isinstance(description, str) and description.strip():
            return f"{error}: {_clean(self._scrub(description), MAX_DESCRIPTION_CHARS)}"
        return error


def _unavailable(exc: SkahaError) -> Unavailable:
    """The issuer failed (5xx, timeout, a reply not understood): try later. Never "maybe
    committed": the service request this token was for has not been sent."""
    return Unavailable(
        exc.message,
        retry_after=exc.retry_after if isinstance(exc, Unavailable) else None,
        maybe_committed=False,
        status=exc.status,
        service=exc.service,
        method=exc.method,
        route=exc.route,
    )


def _copy(exc: CredentialsRefused) -> CredentialsRefused:
    """The same refusal as a fresh exception (re-raising one object grows its traceback)."""
    return CredentialsRefused(
        exc.message, status=exc.status, service=exc.service, method=exc.method, route=exc.route
    )


def _basic(client_id: str, secret: SecretStr) -> str:
    """RFC 6749 §2.3.1: both parts form-urlencoded, then Basic."""
    raw = f"{quote(client_id, safe='')}:{quote(secret.get_secret_value(), safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode("ascii")


def _lifetime(value: Any) -> float:
    """`expires_in` in seconds (a number or a numeric string); DEFAULT_LIFETIME without it."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME
    return max(0.0, seconds) if seconds == seconds else DEFAULT_LIFETIME  # NaN


def _split(url: str) -> tuple[str, str]:
    """(scheme://host[:port], path[?query]) with braces doubled: the path is a route label."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}", path.replace("{", "{{").replace("}", "}}")


def _clean(value: Any, limit: int) -> str:
    """Issuer text on one line, without control characters, at most `limit` characters."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
