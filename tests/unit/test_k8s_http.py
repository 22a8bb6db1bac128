"""k8s/http.py against a local aiohttp server: turns taken in order, refusals, fresh credentials."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client

from skaha_operator.k8s.http import Http
from tests.unit.local_server import serving


class Server:
    """Answers every request after a pause, recording the order and the headers it saw."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.auth: list[str] = []
        self.inside = 0
        self.most_inside = 0
        self.pause = 0.02
        self.arrived = asyncio.Event()  # set at the first request
        self.valid: str | None = None  # when set, any other credential is answered 401

    async def handle(self, request: web.Request) -> web.Response:
        self.order.append(request.query.get("i", ""))
        self.arrived.set()
        self.auth.append(request.headers.get("Authorization", ""))
        if self.valid is not None and self.auth[-1] != self.valid:
            return web.Response(status=401, text='{"kind":"Status","reason":"Unauthorized"}')
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await asyncio.sleep(self.pause)
        finally:
            self.inside -= 1
        if request.path.endswith("/busy"):
            body = '{"kind":"Status","reason":"TooManyRequests"}'
            headers = {"Retry-After": "3"}
            return web.Response(status=429, text=body, headers=headers)
        if request.path.endswith("/absent"):
            body = '{"kind":"Status","reason":"NotFound","message":"absent not found"}'
            return web.Response(status=404, text=body, content_type="application/json")
        payload: dict[str, Any] = {"path": request.path}
        if request.can_read_body:
            payload["got"] = await request.json()
            payload["type"] = request.headers.get("Content-Type")
        return web.json_response(payload)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, client.Configuration]]:
    server = Server()
    async with serving(server.handle) as base:
        conf = client.Configuration()
        conf.host = base
        conf.api_key = {"authorization": "Bearer one"}
        yield server, conf


async def test_requests_beyond_the_limit_wait_their_turn_in_order(
    served: tuple[Server, client.Configuration],
) -> None:
    server, conf = served
    http = Http(conf, limit=2)
    try:
        # Issued one after the other, each as soon as the previous is waiting.
        tasks = []
        for i in range(12):
            tasks.append(asyncio.create_task(http.request("GET", "/x", query={"i": i})))
            await asyncio.sleep(0)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        await http.aclose()
    assert server.most_inside == 2
    # Two at a time, in the order asked: request k is answered in round k // 2.
    assert [int(i) // 2 for i in server.order] == [k // 2 for k in range(12)]


async def test_a_refusal_raises_the_api_exception_with_its_status_body_and_headers(
    served: tuple[Server, client.Configuration],
) -> None:
    _, conf = served
    http = Http(conf, limit=4)
    try:
        with pytest.raises(client.ApiException) as refused:
            await http.request("GET", "/apis/g/v1/namespaces/ns/things/absent")
        with pytest.raises(client.ApiException) as busy:
            await http.request("POST", "/apis/g/v1/namespaces/ns/busy", body={})
        ok = await http.request("PATCH", "/x/status", body=[{"op": "test"}],
                                content_type="application/json-patch+json")  # fmt: skip
    finally:
        await http.aclose()
    assert refused.value.status == 404
    assert "absent not found" in str(refused.value.body)
    # Its headers too: the Retry-After of a 429 or 503 (runtime/driver.py).
    assert (busy.value.status, busy.value.headers["Retry-After"]) == (429, "3")
    assert ok == {"path": "/x/status", "got": [{"op": "test"}],
                  "type": "application/json-patch+json"}  # fmt: skip


async def test_the_credentials_are_read_again_once_a_second_has_passed(
    served: tuple[Server, client.Configuration],
) -> None:
    server, conf = served
    now = [100.0]
    http = Http(conf, limit=0, clock=lambda: now[0])
    try:
        await http.request("GET", "/a")
        conf.api_key = {"authorization": "Bearer two"}  # a rotated ServiceAccount token
        now[0] += 0.5
        await http.request("GET", "/b")
        now[0] += 0.5
        await http.request("GET", "/c")
    finally:
        await http.aclose()
    assert server.auth == ["Bearer one", "Bearer one", "Bearer two"]


async def test_a_401_reads_the_credentials_again_and_sends_once_more(
    served: tuple[Server, client.Configuration],
) -> None:
    """An exec-plugin token is refreshed only once it has expired: the API server may refuse
    the one read a moment ago. The request goes again with the credentials read now."""
    server, conf = served
    now = [100.0]
    http = Http(conf, limit=1, clock=lambda: now[0])
    try:
        await http.request("GET", "/a")
        conf.api_key = {"authorization": "Bearer two"}
        server.valid = "Bearer two"
        answer = await http.request("PATCH", "/b/status", body={"x": 1})
        server.valid = "Bearer nobody has"
        now[0] += 2  # read again before sending: a 401 then is the answer, not sent again
        with pytest.raises(client.ApiException) as refused:
            await http.request("GET", "/c")
    finally:
        await http.aclose()
    assert answer["got"] == {"x": 1}
    assert server.auth == ["Bearer one", "Bearer one", "Bearer two", "Bearer two"]
    assert refused.value.status == 401


async def test_a_request_asked_later_never_overtakes_one_waiting_for_its_turn(
    served: tuple[Server, client.Configuration],
) -> None:
    """A step writes again the moment its previous write is answered; a request already waiting
    goes first. (With aiohttp's own connection limit, the new request took the connection just
    handed back while the waiting one was still being woken.)"""
    server, conf = served
    http = Http(conf, limit=1)

    async def chain() -> None:
        await http.request("GET", "/x", query={"i": "a0"})
        await http.request("GET", "/x", query={"i": "a1"})  # at once, no pause in between

    try:
        first = asyncio.create_task(chain())
        await asyncio.wait_for(server.arrived.wait(), 30)  # a0 is in flight
        waiting = asyncio.create_task(http.request("GET", "/x", query={"i": "b"}))
        await asyncio.wait_for(asyncio.gather(first, waiting), 30)
    finally:
        await http.aclose()
    assert server.order == ["a0", "b", "a1"]
