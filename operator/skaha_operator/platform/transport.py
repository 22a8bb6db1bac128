"""`AiohttpTransport`: the bytes of the platform clients' httpx requests, carried by aiohttp.

The clients are httpx clients (auth flows, hooks, timeouts, typed errors, `MockTransport` in
tests); only the layer that moves bytes is swapped, through httpx's documented transport
interface. httpx's own transport (httpcore on anyio) cost about 2.5 ms of operator CPU per
request at 20 in flight, most of it scanning its pool for each request and asking each socket
whether it is readable; this one costs about 0.7 ms (docs/performance.md, "The Skaha client's
transport"). aiohttp is already a dependency (kopf, the operator's watch and API requests).

What httpx's transport did and this one keeps:
- timeouts from the request: `connect` (and `pool`) bound getting a connection, `read` bounds
  each wait for the answer's bytes. aiohttp has no write timeout; the bodies sent are small.
- failures as httpx exceptions, split the way the retry policy needs them (docs/design.md
  §4.8): `ConnectError`/`ConnectTimeout` only when no connection was made, so the request
  certainly was not sent; everything after that (`ReadTimeout`, `RemoteProtocolError`,
  `ReadError`) may have reached the server.
- the body as received: content-encoding is left for httpx to decode, as before.
- the URL as httpx built it (already percent-encoded; aiohttp must not encode it again).
- the pool limits: at most `max_connections`, idle ones kept `keepalive_expiry` seconds.
- proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, as the
  chart's `httpProxy`/`httpsProxy`/`noProxy` set them, docs/install.md): httpx reads them only
  for its own transport, so this one reads them itself, once, when it is made.
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any
from urllib.request import getproxies_environment

import aiohttp
import certifi
import httpx
from yarl import URL

HTTP_VERSION = b"HTTP/1.1"


def client_ssl(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The TLS context for `verify` as httpx reads it: True is the public CAs (certifi)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        return ssl.create_default_context(cafile=certifi.where())
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    limits: dict[str, float | None] = request.extensions.get("timeout", {})
    connect, pool = limits.get("connect"), limits.get("pool")
    wait = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(
        total=None, connect=wait, sock_connect=connect, sock_read=limits.get("read")
    )


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception for an aiohttp failure; only a connection never made is not sent."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text, request=request)
    if isinstance(exc, TimeoutError):  # SocketTimeoutError, a late answer
        return httpx.ReadTimeout(text, request=request)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):  # closed before or during the answer, or an answer that is not HTTP
        return httpx.RemoteProtocolError(text, request=request)
    return httpx.ReadError(text, request=request)


class Proxies:
    """The proxy for a URL from the environment's settings, read once (urllib's reading of them,
    which is httpx's too: scheme or `all`, unless `no_proxy` names the host or `*`)."""

    def __init__(self, settings: dict[str, str]) -> None:
        self._settings = settings

    def __bool__(self) -> bool:
        return any(key != "no" for key in self._settings)

    def options(self, url: httpx.URL) -> dict[str, Any]:
        """aiohttp's `proxy` for `url`; none when it goes direct."""
        host = url.host if url.port is None else f"{url.host}:{url.port}"
        # Public in urllib, though missing from its type stubs.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not self or bypass(host, self._settings):
            return {}
        found = self._settings.get(url.scheme) or self._settings.get("all")
        if not found:
            return {}
        # Credentials in the proxy URL go as Proxy-Authorization (aiohttp moves them there).
        return {"proxy": URL(found if "://" in found else f"http://{found}")}


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session per httpx client, created on first use (so on the loop using it)."""

    def __init__(
        self,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        trust_env: bool = True,
    ) -> None:
        self._proxies = Proxies(getproxies_environment() if trust_env else {})
        self._ssl = client_ssl(verify)
        limits = limits or httpx.Limits()
        self._limit = limits.max_connections or 0
        self._keepalive = limits.keepalive_expiry or 0.0
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, ssl=self._ssl, keepalive_timeout=self._keepalive or None
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request and read the whole answer; httpx decodes and closes it."""
        body = await request.aread()
        options: dict[str, Any] = {
            "headers": list(request.headers.multi_items()),
            "data": body or None,
            "allow_redirects": False,
            "timeout": _timeout(request),
            **self._proxies.options(request.url),
        }
        url = URL(str(request.url), encoded=True)
        try:
            async with self._open().request(request.method, url, **options) as answer:
                content = await answer.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, request) from exc
        return httpx.Response(
            answer.status,
            headers=list(answer.raw_headers),
            stream=httpx.ByteStream(content),
            extensions={
                "http_version": HTTP_VERSION,
                "reason_phrase": (answer.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
