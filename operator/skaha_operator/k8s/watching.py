"""One kind in one scope, listed once and then watched from the list's resourceVersion.

The API server's list+watch contract (docs/kubernetes-notes.md §3): a LIST answers a consistent
snapshot and its `metadata.resourceVersion`; a WATCH from that version delivers every later change
(ADDED, MODIFIED, DELETED) exactly once and in order, plus BOOKMARK events that only move the
version on. A watch ends by itself after `timeoutSeconds` and is reopened from the last version
seen; when that version is too old for the API server's watch cache it answers 410 Gone (as the
HTTP status or as an ERROR event), and the kind is listed again: the new snapshot is handed over
whole (`on_list`), so whoever keeps the objects can tell which ones went meanwhile.

The stream runs on the operator's event loop with aiohttp, with the same credentials as the
official client (`make_api_client`: in-cluster ServiceAccount or KUBECONFIG); a bearer token is
read again at every (re)connection, so a rotated ServiceAccount token is picked up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.k8s.api import Kube
from skaha_operator.k8s.http import Http, auth_headers

logger = logging.getLogger(__name__)

Body = dict[str, Any]
OnEvent = Callable[[str, Body], None]  # (ADDED | MODIFIED | DELETED, object)
OnList = Callable[[list[Body]], None]  # a fresh snapshot after the watch lost its place

SERVER_TIMEOUT = 300  # the API server ends each watch after this long; it is reopened at once
BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)  # between failed attempts, then the last one again


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed attempts in a row (at least 1)."""
    return BACKOFF[min(failures, len(BACKOFF)) - 1]


class Gone(Exception):
    """The resourceVersion is too old for the API server: list again."""


@dataclass(frozen=True)
class Scope:
    """One kind of ours in one namespace (None: every namespace)."""

    plural: str
    namespace: str | None

    def path(self) -> str:
        """The collection's URL path."""
        where = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"/apis/{GROUP}/{VERSION}{where}/{self.plural}"

    def __str__(self) -> str:
        return f"{self.plural} in {self.namespace or 'every namespace'}"


class Streams:
    """The watch connections of one operator: an aiohttp session of their own (one long request
    per kind and namespace, so no limit), credentials from `kube`."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._http = Http(kube.api.configuration, limit=0)

    async def list(self, scope: Scope) -> tuple[list[Body], str]:
        """Every object in the scope and the version to watch from (paged, one snapshot)."""
        return await self.kube.list_all(scope.plural, scope.namespace)

    async def events(self, scope: Scope, since: str) -> AsyncIterator[tuple[str, Body]]:
        """(type, object) until the API server ends the watch; raises Gone when `since` is gone.

        BOOKMARK events are yielded too (their object carries only the new resourceVersion).
        """
        query = urlencode({"watch": "true", "resourceVersion": since, "allowWatchBookmarks": "true",
                           "timeoutSeconds": SERVER_TIMEOUT})  # fmt: skip
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=SERVER_TIMEOUT + 30)
        url = scope.path().lstrip("/") + "?" + query
        headers = auth_headers(self._http.conf)
        async with self._http.session().get(url, headers=headers, timeout=timeout) as resp:
            if resp.status == 410:
                raise Gone(await resp.text())
            if resp.status != 200:
                text = await resp.text()
                raise client.ApiException(status=resp.status, reason=text[:500])
            async for line in _lines(resp.content):
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(str(obj.get("message")))
                    raise client.ApiException(status=obj.get("code"), reason=obj.get("message"))
                yield str(kind), obj

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-separated JSON documents, however the chunks split them (an object may be long)."""
    pending = b""
    async for chunk in stream.iter_any():
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


async def follow(
    streams: Streams, scope: Scope, since: str, on_event: OnEvent, on_list: OnList
) -> None:
    """Watch `scope` from `since` until cancelled: reopen, list again on Gone, back off on errors.

    Each event is handed to `on_event` in the order the API server sent it; after a Gone, the
    fresh list is handed to `on_list` and the watch goes on from its version.
    """
    failures = 0
    while True:
        try:
            async for kind, obj in streams.events(scope, since):
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    since = str(version)
                if kind != "BOOKMARK":
                    on_event(kind, obj)
                failures = 0
            failures = 0  # the server ended the watch (timeoutSeconds): reopen at once
        except asyncio.CancelledError:
            raise
        except Gone as exc:
            logger.info("watch of %s lost its place (%s); listing again", scope, exc)
            try:
                items, since = await streams.list(scope)
            except Exception as err:  # logged, retried after a pause
                failures += 1
                logger.warning("listing %s failed: %s", scope, err)
                await asyncio.sleep(backoff(failures))
                continue
            on_list(items)
            failures = 0
        except Exception as exc:  # connection or API error: reopen
            failures += 1
            delay = backoff(failures)
            logger.info("watch of %s ended (%s: %s); reopening in %.1fs",
                        scope, type(exc).__name__, exc, delay)  # fmt: skip
            await asyncio.sleep(delay)
