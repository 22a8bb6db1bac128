"""Requests to the API server on the operator's event loop, with aiohttp.

The official client is synchronous: each of its calls runs in a worker thread, and a request
costs the operator about 1.9 ms of CPU (urllib3, the thread hand-over both ways, the GIL passed
around); the same create or status PATCH sent with aiohttp on the loop costs about 0.8 ms
(docs/performance.md, "Writes on the event loop"). The operator's hot path (its custom resources
and Events) goes through here; the rare calls (Secrets, ConfigMaps) stay on the official client.

aiohttp is what kopf itself and the operator's watch use (docs/design.md §4.12), so it adds no
dependency; it is maintained by aio-libs. The credentials are the official client's
(`make_api_client`: in-cluster ServiceAccount or KUBECONFIG), read again when a second has passed
since the last read or when the API server answers 401, so a rotated ServiceAccount token or a
refreshed exec-plugin token is picked up. (Reading them runs the client's refresh hook, about
0.15 ms from a kubeconfig; once per request that was 4% of the operator's CPU.) A refusal raises
`kubernetes.client.ApiException` with the status, reason and body, as the official client does,
so callers handle both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from kubernetes import client

from skaha_operator import __version__

JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# A request that waits for a free connection is not late; one whose answer stalls this long is.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
# How long credentials read from the client's configuration are used before reading them again.
CREDENTIALS_SECONDS = 1.0
# Names the operator in the API server's audit log and, as the field manager, in every object's
# managedFields (docs/kubernetes-notes.md §12); aiohttp's own would read "Python".
USER_AGENT = f"skaha-operator/{__version__}"


def ssl_context(conf: client.Configuration) -> ssl.SSLContext | bool:
    """The TLS context the official client's configuration describes (False for plain HTTP)."""
    if not str(conf.host).startswith("https"):
        return False
    ctx = ssl.create_default_context(cafile=conf.ssl_ca_cert or None)
    if conf.cert_file:
        ctx.load_cert_chain(conf.cert_file, conf.key_file or None)
    if not conf.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def auth_headers(conf: client.Configuration) -> dict[str, str]:
    """The client's own authentication headers (a bearer token, basic auth), read now: the
    client's refresh hook runs first (an in-cluster token file that rotates)."""
    settings: dict[str, dict[str, Any]] = dict(conf.auth_settings())  # type: ignore[arg-type]
    return {
        str(auth["key"]): str(auth["value"])
        for auth in settings.values()
        if auth.get("in") == "header" and auth.get("value")
    }


class Http:
    """One aiohttp session to the API server; at most `limit` requests in flight (0: no limit).

    Requests beyond the limit wait their turn in order (a FIFO semaphore, as the official
    client's worker threads take queued calls in order). aiohttp's own connection limit does not
    keep that order: a request that finds an idle connection in the pool takes it at once
    (`BaseConnector.connect` looks there first), even while others wait to be woken for it. A
    step that writes again as soon as its last write is answered then overtakes every waiting
    request; at N = 1000 the spread of waits made Sessions write their progress more often (17.5
    writes per Session instead of 15.0, docs/performance.md, "Writes on the event loop").
    Created on first use, so on the loop that uses it.
    """

    def __init__(
        self,
        conf: client.Configuration,
        limit: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conf = conf
        self.limit = limit
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._turns: asyncio.Semaphore | None = None
        self._credentials: dict[str, str] = {}
        self._read_at: float | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session (its base URL is the API server's)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=ssl_context(self.conf), limit=0)
            self._session = aiohttp.ClientSession(
                base_url=str(self.conf.host).rstrip("/") + "/",
                connector=connector,
                headers={"User-Agent": USER_AGENT},  # requests and watches alike
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        """Send one request; its JSON answer. A status of 400 or more raises ApiException."""
        url = path.lstrip("/")
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": JSON}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        if self.limit and self._turns is None:
            self._turns = asyncio.Semaphore(self.limit)
        async with self._turns or contextlib.nullcontext():
            fresh = self._read_credentials()
            resp, raw = await self._send(method, url, data, headers)
            if resp.status == 401 and not fresh:  # credentials changed within the second
                self._read_credentials(now=True)
                resp, raw = await self._send(method, url, data, headers)
        if resp.status >= 400:
            text = raw.decode(errors="replace")
            exc = client.ApiException(status=resp.status, reason=resp.reason, body=text)
            exc.headers = dict(resp.headers)  # Retry-After of a 429 or 503 (runtime/driver.py)
            raise exc
        answer: dict[str, Any] = json.loads(raw) if raw else {}
        return answer

    def _read_credentials(self, now: bool = False) -> bool:
        """Read the credentials again if a second has passed (or `now`); True if it did."""
        at = self._clock()
        if not now and self._read_at is not None and at - self._read_at < CREDENTIALS_SECONDS:
            return False
        self._credentials = auth_headers(self.conf)
        self._read_at = at
        return True

    async def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        with_credentials = {**headers, **self._credentials}
        async with self.session().request(
            method, url, data=data, headers=with_credentials, timeout=TIMEOUT
        ) as resp:
            return resp, await resp.read()

    async def aclose(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
