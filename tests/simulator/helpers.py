"""A thin aiohttp wrapper for simulator tests: one call, one captured reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
IMAGE = "images.canfar.net/skaha/astroml:latest"


@dataclass
class Reply:
    """Status, headers and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)

    @property
    def content_type(self) -> str:
        """The media type without parameters."""
        return self.headers.get("Content-Type", "").split(";")[0]


class Api:
    """Requests against one served simulator with one bearer token (or none)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str | None) -> None:
        self.http = http
        self.base = base_url
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
        deadline_s: float | None = None,
    ) -> Reply:
        """One request; returns the whole reply."""
        merged = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        merged.update(headers or {})
        kwargs: dict[str, Any] = {"params": params, "headers": merged}
        if data is not None:
            kwargs["data"] = data
        if json_body is not None:
            kwargs["json"] = json_body
        if deadline_s is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=deadline_s)
        async with self.http.request(method, self.base + path, **kwargs) as resp:
            body = await resp.text()
            return Reply(resp.status, dict(resp.headers), body)

    async def launch(self, **params: Any) -> Reply:
        """POST /skaha/v1/session with the params in the query string and the form content type."""
        query = [(k, v) for k, v in params.items() if not isinstance(v, list)]
        for key, value in params.items():
            if isinstance(value, list):
                query.extend((key, item) for item in value)
        return await self.call("POST", "/skaha/v1/session", params=query, headers=FORM)

    async def launch_id(self, **params: Any) -> str:
        """Launch and return the new session id (asserting success)."""
        params.setdefault("image", IMAGE)
        params.setdefault("name", "test")
        reply = await self.launch(**params)
        assert reply.status == 200, reply.text
        return reply.text.rstrip("\n")

    async def session(self, session_id: str) -> Reply:
        """GET /skaha/v1/session/{id}."""
        return await self.call("GET", f"/skaha/v1/session/{session_id}")

    async def status(self, session_id: str) -> str:
        """The session's status field."""
        reply = await self.session(session_id)
        assert reply.status == 200, reply.text
        status: str = reply.json()["status"]
        return status

    async def sessions(self, **params: str) -> list[dict[str, Any]]:
        """GET /skaha/v1/session with filters."""
        reply = await self.call("GET", "/skaha/v1/session", params=params)
        assert reply.status == 200, reply.text
        result: list[dict[str, Any]] = reply.json()
        return result


async def rucio_headers(api: Api) -> dict[str, str]:
    """Log in to Rucio with userpass; the header carrying the issued token."""
    reply = await api.call(
        "GET",
        "/rucio/auth/userpass",
        headers={"X-Rucio-Account": "alice", "X-Rucio-Username": "alice", "X-Rucio-Password": "pw"},
    )
    assert reply.status == 200, reply.text
    return {"X-Rucio-Auth-Token": reply.headers["X-Rucio-Auth-Token"]}


def one_rule(name: str = "file1") -> dict[str, object]:
    """A create-rule body for one DID of scope user.alice."""
    return {"dids": [{"scope": "user.alice", "name": name}], "copies": 1, "rse_expression": "R"}


async def until(check: Callable[[], Awaitable[bool]], deadline_s: float = 5.0) -> None:
    """Wait (polling every 20 ms) until `check()` is true; fail after `deadline_s`."""
    # Polling: the state lives behind HTTP or in another thread, with no event to wait on.
    async with asyncio.timeout(deadline_s):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
