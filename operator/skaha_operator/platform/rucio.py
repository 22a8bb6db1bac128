"""`RucioClient`: replication rules on a Rucio server (`docs/platform-api.md` §8).

Owns userpass token auth (`GET /auth/userpass` -> `X-Rucio-Auth-Token`, re-authenticating
before the token expires and once on a 401), rule create/get/list/delete, and Rucio's error
convention (`ExceptionClass` / `ExceptionMessage` headers). Creating a rule is a POST and is
never retried; `DuplicateRule` surfaces as `Conflict` so the caller can adopt the existing rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import SecretStr

from skaha_operator.platform.base import CallRecorder, ServiceClient
from skaha_operator.platform.errors import AuthError, Conflict, NotFound, Rejected, SkahaError
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.wire import RucioRule, RuleSpec

#: Re-authenticate this long before the server's stated expiry.
TOKEN_MARGIN = timedelta(seconds=60)
#: Assumed token lifetime when the server omits `X-Rucio-Auth-Token-Expires`.
DEFAULT_TOKEN_LIFETIME = timedelta(minutes=30)


class RucioClient(ServiceClient):
    """Replication rules of one Rucio account, authenticated by username and password."""

    service = "rucio"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        account: str,
        username: str,
        password: SecretStr,
        auth_url: str | None = None,
        vo: str | None = None,
        retry: RetryPolicy | None = None,
        on_call: CallRecorder | None = None,
        now: Callable[[], datetime] | None = None,
        concurrency: int | None = None,
    ) -> None:
        super().__init__(
            http, secrets=(password,), retry=retry, on_call=on_call, concurrency=concurrency
        )
        self._account = account
        self._username = username
        self._password = password
        # The auth host may differ from the rules host (§8: rucio-auth.srcnet.skao.int).
        self._auth_url = auth_url.rstrip("/") if auth_url else ""
        self._vo = vo
        self._now = now or (lambda: datetime.now(tz=UTC))
        self._token: SecretStr | None = None
        self._expires = datetime.min.replace(tzinfo=UTC)
        self._auth_lock = asyncio.Lock()

    @property
    def account(self) -> str:
        """The Rucio account the client acts as (`X-Rucio-Account`)."""
        return self._account

    async def authenticate(self) -> None:
        """`GET /auth/userpass` and keep the token and its expiry (§8)."""
        async with self._auth_lock:
            await self._authenticate_locked()

    async def _authenticate_locked(self) -> None:
        headers = {
            "X-Rucio-Account": self._account,
            "X-Rucio-Username": self._username,
            "X-Rucio-Password": self._password.get_secret_value(),
        }
        if self._vo:
            headers["X-Rucio-VO"] = self._vo
        response = await self._request(
            "GET", "/auth/userpass", base=self._auth_url, headers=headers
        )
        token = response.headers.get("X-Rucio-Auth-Token", "")
        if not token:
            raise self._bad_reply(response, "auth reply has no X-Rucio-Auth-Token")
        self._token = SecretStr(token)
        self._add_secret(self._token)
        self._expires = _parse_expiry(
            response.headers.get("X-Rucio-Auth-Token-Expires"), self._now()
        )

    async def _auth_headers(self) -> dict[str, str]:
        async with self._auth_lock:
            if self._token is None or self._now() >= self._expires - TOKEN_MARGIN:
                await self._authenticate_locked()
            assert self._token is not None  # set by _authenticate_locked or it raised
            headers = {
                "X-Rucio-Auth-Token": self._token.get_secret_value(),
                "X-Rucio-Account": self._account,
            }
        if self._vo:
            headers["X-Rucio-VO"] = self._vo
        return headers

    async def _call(self, method: str, route: str, **kwargs: Any) -> httpx.Response:
        """Send an authenticated call; on 401 re-authenticate once and resend.

        Resending a POST here is safe: a 401 means the server did not execute the request.
        """
        extra = kwargs.pop("headers", {})
        try:
            return await self._request(
                method, route, headers={**extra, **await self._auth_headers()}, **kwargs
            )
        except AuthError as exc:
            if exc.status != 401:
                raise
            async with self._auth_lock:
                self._token = None
        return await self._request(
            method, route, headers={**extra, **await self._auth_headers()}, **kwargs
        )

    async def create_rule(self, spec: RuleSpec) -> list[str]:
        """`POST /rules/` and return the new rule ids (§8: 201, a JSON array); never retried."""
        response = await self._call("POST", "/rules/", json=spec.to_json(), idempotent=False)
        data = self._json(response)
        if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
            raise self._bad_reply(response, "create-rule reply is not a JSON array of ids")
        return [str(item) for item in data]

    async def get_rule(self, rule_id: str) -> RucioRule:
        """`GET /rules/{id}` (§8)."""
        response = await self._call("GET", "/rules/{id}", path={"id": rule_id})
        return self._model(RucioRule, self._json(response), response)

    async def list_rules_for_did(self, scope: str, name: str) -> list[RucioRule]:
        """`GET /dids/{scope}/{name}/rules`, an `application/x-json-stream` (NDJSON) list (§8)."""
        response = await self._call(
            "GET", "/dids/{scope}/{name}/rules", path={"scope": scope, "name": name}
        )
        rules = []
        for line in response.text.splitlines():
            if line.strip():
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise self._bad_reply(response, "rule list is not NDJSON") from exc
                rules.append(self._model(RucioRule, item, response))
        return rules

    async def delete_rule(self, rule_id: str, purge_replicas: bool = False) -> bool:
        """`DELETE /rules/{id}`; False if the rule was already gone (404 RuleNotFound)."""
        try:
            await self._call(
                "DELETE",
                "/rules/{id}",
                path={"id": rule_id},
                json={"purge_replicas": purge_replicas},
            )
        except NotFound:
            return False
        return True

    def _server_message(self, response: httpx.Response) -> str:
        """`<ExceptionClass>: <ExceptionMessage>` from the body or, failing that, the headers."""
        cls = response.headers.get("ExceptionClass", "")
        msg = response.headers.get("ExceptionMessage", "")
        try:
            body = json.loads(response.content or b"null")
        except ValueError:
            body = None
        if isinstance(body, dict):
            # The header copy of the message is truncated to 125 chars (§8); prefer the body.
            cls = str(body.get("ExceptionClass") or cls)
            msg = str(body.get("ExceptionMessage") or msg)
        if not cls and not msg:
            return response.text.strip()
        return f"{cls}: {msg}" if cls else msg

    def _status_error(
        self, method: str, route: str, response: httpx.Response, idempotent: bool
    ) -> SkahaError:
        error = super()._status_error(method, route, response, idempotent)
        # Rucio answers 409 for many refusals (InsufficientAccountLimit, InvalidRSEExpression,
        # ...); only DuplicateRule means "it already exists", so only that one is a Conflict.
        if isinstance(error, Conflict) and not error.message.startswith("DuplicateRule"):
            return Rejected(
                error.message, status=error.status, service=self.service, method=method, route=route
            )
        return error


def _parse_expiry(value: str | None, now: datetime) -> datetime:
    """`X-Rucio-Auth-Token-Expires` is an RFC 1123 date (§8); fall back to a fixed lifetime."""
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return now + DEFAULT_TOKEN_LIFETIME
