"""`SkahaClient`: the typed async client of the Skaha session API (`docs/platform-api.md` §1–§5).

Paths are `/{v0|v1}/session...` under the service base `https://<host>/skaha`; the version
comes from VOSI `/capabilities` (§1). A launch is a form-urlencoded POST answered
`200 text/plain "<id>\\n"` (§2) and is never retried (docs/design.md §4.8).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

import httpx
from pydantic import SecretStr

from skaha_operator.platform.base import CallRecorder, ServiceClient
from skaha_operator.platform.errors import NotFound
from skaha_operator.platform.ports import RegistryCredentials
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.wire import (
    ApiVersion,
    Capabilities,
    SessionParams,
    SessionType,
    SkahaContext,
    SkahaImage,
    SkahaSession,
    SkahaSessionStatus,
    parse_capabilities,
)

REGISTRY_AUTH_HEADER = "x-skaha-registry-auth"


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for a private image registry, sent as `x-skaha-registry-auth` (§2)."""

    username: str
    secret: SecretStr

    def header_value(self) -> str:
        """`base64(username:secret)`, as Skaha expects."""
        raw = f"{self.username}:{self.secret.get_secret_value()}".encode()
        return base64.b64encode(raw).decode("ascii")


class SkahaClient(ServiceClient):
    """Sessions, images, context and capabilities of one Skaha service."""

    service = "skaha"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token: SecretStr,
        api_version: ApiVersion = ApiVersion.V1,
        retry: RetryPolicy | None = None,
        on_call: CallRecorder | None = None,
        concurrency: int | None = None,
    ) -> None:
        super().__init__(
            http, secrets=(token,), retry=retry, on_call=on_call, concurrency=concurrency
        )
        self.api_version = api_version

    def _route(self, tail: str) -> str:
        return f"/{self.api_version.value}{tail}"

    async def capabilities(self) -> Capabilities:
        """Read VOSI `/capabilities` (unversioned, §1) and report the API version it names."""
        response = await self._request("GET", "/capabilities", headers={"Accept": "text/xml"})
        try:
            return parse_capabilities(response.text)
        except ParseError as exc:
            raise self._bad_reply(response, f"capabilities are not VOSI XML: {exc}") from exc

    async def detect_api_version(self) -> ApiVersion:
        """Switch this client to the API version the service advertises (default v1)."""
        found = (await self.capabilities()).api_version
        if found is not None:
            self.api_version = found
        return self.api_version

    async def context(self) -> SkahaContext:
        """`GET /context`: resource options and the interactive cap (§4)."""
        response = await self._request("GET", self._route("/context"))
        return self._model(SkahaContext, self._json(response), response)

    async def images(self, type: SessionType | None = None) -> list[SkahaImage]:
        """`GET /image[?type=]`: images the caller may launch (§4)."""
        params = {"type": type.value} if type is not None else None
        response = await self._request("GET", self._route("/image"), params=params)
        return [self._model(SkahaImage, item, response) for item in self._list(response)]

    async def repositories(self) -> list[str]:
        """`GET /repository`: the allowed registry hosts (§4)."""
        response = await self._request("GET", self._route("/repository"))
        return [str(item) for item in self._list(response)]

    async def list_sessions(
        self, type: SessionType | None = None, status: SkahaSessionStatus | None = None
    ) -> list[SkahaSession]:
        """`GET /session[?type=&status=]`: the caller's sessions (§1)."""
        params: dict[str, str] = {}
        if type is not None:
            params["type"] = type.value
        if status is not None:
            params["status"] = status.value
        response = await self._request("GET", self._route("/session"), params=params or None)
        return [self._model(SkahaSession, item, response) for item in self._list(response)]

    async def get_session(self, session_id: str) -> SkahaSession:
        """`GET /session/{id}`; another user's id is NotFound too (§5)."""
        response = await self._request("GET", self._route("/session/{id}"), path={"id": session_id})
        return self._model(SkahaSession, self._json(response), response)

    async def create_session(
        self, params: SessionParams, registry_auth: RegistryCredentials | None = None
    ) -> str:
        """`POST /session` (form-urlencoded, §2) and return the new id; never retried."""
        headers: dict[str, str] = {}
        if registry_auth is not None:
            headers[REGISTRY_AUTH_HEADER] = registry_auth.header_value()
            self._add_secret(SecretStr(headers[REGISTRY_AUTH_HEADER]))
            if isinstance(registry_auth, RegistryAuth):
                self._add_secret(registry_auth.secret)
        # httpx sends `data=` as application/x-www-form-urlencoded; Skaha reads POST parameters
        # only with that content type (§2, CORE SyncInput).
        response = await self._request(
            "POST",
            self._route("/session"),
            data=_form_dict(params.to_form()),
            headers=headers,
            idempotent=False,
        )
        session_id = response.text.strip()
        if not session_id or any(ch.isspace() for ch in session_id):
            raise self._bad_reply(response, f"launch reply is not a session id: {session_id!r}")
        return session_id

    async def logs(self, session_id: str) -> str:
        """`GET /session/{id}?view=logs` as text (§1)."""
        return await self._text_view(session_id, "logs")

    async def events(self, session_id: str) -> str:
        """`GET /session/{id}?view=events` as text, `<none>` when there are none (§9.6)."""
        return await self._text_view(session_id, "events")

    async def renew(self, session_id: str) -> None:
        """`POST /session/{id}?action=renew` (§3; a no-op for headless); never retried."""
        await self._request(
            "POST",
            self._route("/session/{id}"),
            path={"id": session_id},
            # In the form body: Skaha ignores POST parameters unless the request is
            # form-urlencoded (§2, CORE SyncInput), and an empty POST is "Cannot modify".
            data={"action": "renew"},
            idempotent=False,
        )

    async def delete_session(self, session_id: str) -> None:
        """`DELETE /session/{id}`; an absent session counts as deleted (HEAD 200, old 404, §5)."""
        try:
            await self._request("DELETE", self._route("/session/{id}"), path={"id": session_id})
        except NotFound:
            return

    async def _text_view(self, session_id: str, view: str) -> str:
        response = await self._request(
            "GET",
            self._route("/session/{id}"),
            path={"id": session_id},
            params={"view": view},
            headers={"Accept": "text/plain"},
        )
        return response.text

    def _list(self, response: httpx.Response) -> list[object]:
        data = self._json(response)
        if not isinstance(data, list):
            raise self._bad_reply(response, "expected a JSON array")
        return data


def _form_dict(fields: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Group repeated form fields (`env`) into lists, as httpx's `data=` expects."""
    grouped: dict[str, list[str]] = {}
    for key, value in fields:
        grouped.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}
