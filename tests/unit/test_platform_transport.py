"""platform/transport.py against a local aiohttp server: what arrives, what comes back, and
which failures say "not sent" (the only ones a launch may be retried after)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from skaha_operator.platform.base import make_http_client
from skaha_operator.platform.transport import AiohttpTransport
from tests.unit.local_server import serving


class Server:
    """Records each request; `/slow` answers late, `/cut` drops the connection unanswered, `/half`
    drops it halfway through the answer."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.inside = 0
        self.most_inside = 0
        self.peers: set[object] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.method, request.raw_path, dict(request.headers), body))
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            if request.path == "/slow":
                await asyncio.sleep(1)
            if request.path == "/pause":
                await asyncio.sleep(0.05)
        finally:
            self.inside -= 1
        if request.path == "/cut":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if request.path == "/half":  # the head and half the body, then the connection ends
            answer = web.StreamResponse(headers={"Content-Length": "100"})
            await answer.prepare(request)
            await answer.write(b"x" * 50)
            assert request.transport is not None
            request.transport.abort()
            return answer
        if request.path == "/gzip":
            packed = gzip.compress(json.dumps({"id": "s1"}).encode())
            return web.Response(body=packed, headers={"Content-Encoding": "gzip"})
        return web.Response(status=201, text="abc123\n", content_type="text/plain")


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, str]]:
    server = Server()
    async with serving(server.handle) as base:
        yield server, base


def client(base: str, read: float = 5.0, connections: int = 20) -> httpx.AsyncClient:
    return make_http_client(
        base,
        timeout=httpx.Timeout(connect=2.0, read=read, write=read, pool=2.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def test_the_default_transport_is_aiohttp_and_a_form_post_arrives_as_sent(
    served: tuple[Server, str],
) -> None:
    server, base = served
    async with client(base) as http:
        assert isinstance(http._transport, AiohttpTransport)
        answer = await http.post(
            "/skaha/v1/session",
            data={"name": "nb 1", "image": "images.example/x:1"},
            headers={"Authorization": "Bearer t0"},
        )
    assert (answer.status_code, answer.text, answer.reason_phrase) == (201, "abc123\n", "Created")
    assert answer.headers["content-type"].startswith("text/plain")
    method, path, headers, body = server.seen[0]
    assert (method, path) == ("POST", "/skaha/v1/session")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Authorization"] == "Bearer t0"
    assert headers["User-Agent"] == "skaha-operator"
    assert body == b"name=nb+1&image=images.example%2Fx%3A1"


async def test_an_encoded_path_and_query_arrive_unchanged(served: tuple[Server, str]) -> None:
    server, base = served
    async with client(base) as http:
        await http.get("/cavern/home/a%20b/c%2Fd", params={"q": "x y&z"})
    assert server.seen[0][1] == "/cavern/home/a%20b/c%2Fd?q=x+y%26z"


async def test_a_compressed_answer_is_decoded_by_httpx(served: tuple[Server, str]) -> None:
    _, base = served
    async with client(base) as http:
        answer = await http.get("/gzip")
    assert answer.json() == {"id": "s1"}


async def test_a_refused_connection_is_a_connect_error_not_sent() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/skaha/v1/session", data={"name": "x"})


async def test_a_late_answer_is_a_read_timeout_after_the_request_arrived(
    served: tuple[Server, str],
) -> None:
    server, base = served
    async with client(base, read=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/slow", data={"name": "x"})
    assert [s[1] for s in server.seen] == ["/slow"]


async def test_a_connection_dropped_unanswered_may_have_been_sent(
    served: tuple[Server, str],
) -> None:
    server, base = served
    async with client(base) as http:
        with pytest.raises(httpx.TransportError) as caught:
            await http.post("/cut", data={"name": "x"})
    assert isinstance(caught.value, httpx.RemoteProtocolError)
    assert [s[1] for s in server.seen] == ["/cut"]


async def test_an_answer_cut_halfway_is_a_protocol_error(served: tuple[Server, str]) -> None:
    """As httpcore reported it: the fault metrics and the chaos campaign count it by this name."""
    server, base = served
    async with client(base) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/half", data={"name": "x"})
    assert [s[1] for s in server.seen] == ["/half"]


async def test_connections_stay_within_the_limit_and_are_reused(
    served: tuple[Server, str],
) -> None:
    server, base = served
    async with client(base, connections=3) as http:
        answers = await asyncio.gather(*(http.get("/pause") for _ in range(30)))
        await http.get("/pause")
    assert [a.status_code for a in answers] == [201] * 30
    assert server.most_inside == 3
    assert len(server.peers) == 3


async def test_a_closed_client_opens_a_fresh_session_when_used_again(
    served: tuple[Server, str],
) -> None:
    server, base = served
    transport = AiohttpTransport(verify=False)
    http = httpx.AsyncClient(base_url=base, transport=transport)
    await http.get("/one")
    await transport.aclose()
    await http.get("/two")
    await http.aclose()
    assert [s[1] for s in server.seen] == ["/one", "/two"]


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[list[str], str]]:
    """A forward proxy that answers itself, recording the absolute URL each request names."""
    asked: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(f"{request.url} {request.headers.get('Proxy-Authorization', '-')}")
        return web.Response(text="from the proxy")

    async with serving(handle) as base:
        yield asked, base.removeprefix("http://")


async def test_the_environment_proxy_carries_requests_unless_no_proxy_names_the_host(
    proxy: tuple[list[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's httpProxy/noProxy reach the clients as HTTP_PROXY/NO_PROXY; httpx reads them
    only for its own transport, so this one must (names under .invalid never resolve)."""
    asked, where = proxy
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://site:pw@{where}")
    monkeypatch.setenv("NO_PROXY", "direct.invalid,localhost")
    async with client("http://skaha.invalid") as http:
        answer = await http.get("/skaha/v1/session")
        with pytest.raises(httpx.ConnectError):  # straight to a name that does not resolve
            await http.get("http://x.direct.invalid/skaha/v1/session")
    assert answer.text == "from the proxy"
    assert asked == ["http://skaha.invalid/skaha/v1/session Basic c2l0ZTpwdw=="]


async def test_without_proxy_settings_requests_go_direct(
    served: tuple[Server, str], proxy: tuple[list[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, base = served
    asked, where = proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://{where}")
    transport = AiohttpTransport(trust_env=False)  # as httpx's trust_env=False
    async with httpx.AsyncClient(base_url=base, transport=transport) as http:
        await http.get("/direct")
    assert ([s[1] for s in server.seen], asked) == (["/direct"], [])
