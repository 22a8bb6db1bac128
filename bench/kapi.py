"""A small async Kubernetes client for the benchmarks: create, guarded status patch, watch.

The benchmark client and the floor must not be the bottleneck they measure, so they speak HTTP
directly (aiohttp, one pooled connector; httpx was measurably slower here) instead of the
synchronous official client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane


class Conflict(Exception):
    """A guarded write was refused (409, or 422 from a failed JSON-patch test)."""


class KubeApi:
    """Just the calls the benchmarks need, against one control plane."""

    def __init__(self, cp: ControlPlane, connections: int = 64) -> None:
        self.base = cp.server
        self.http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {cp.token}"},
            connector=aiohttp.TCPConnector(ssl=cp.ssl_context(), limit=connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=120),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.close()

    def path(self, plural: str, ns: str, name: str = "") -> str:
        """The collection or object URL of one of our kinds."""
        base = f"{self.base}/apis/{GROUP}/{VERSION}/namespaces/{ns}/{plural}"
        return f"{base}/{name}" if name else base

    async def create(self, plural: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an object; returns the stored object."""
        async with self.http.post(self.path(plural, ns), json=body) as resp:
            resp.raise_for_status()
            out: dict[str, Any] = await resp.json()
        return out

    async def patch_status(
        self, plural: str, ns: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A JSON patch of /status; Conflict when its `test` fails or the object moved."""
        async with self.http.patch(
            self.path(plural, ns, name) + "/status",
            data=json.dumps(ops),
            headers={"Content-Type": "application/json-patch+json"},
        ) as resp:
            if resp.status in (409, 422):
                raise Conflict(await resp.text())
            resp.raise_for_status()
            out: dict[str, Any] = await resp.json()
        return out

    async def event(self, ns: str, obj: dict[str, Any], reason: str, message: str) -> None:
        """POST one core/v1 Event about `obj` (one per phase change, docs/design.md §3)."""
        meta = obj["metadata"]
        body = {
            "metadata": {"generateName": f"{meta['name']}."},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": ns,
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": "bench-floor"},
        }
        url = f"{self.base}/api/v1/namespaces/{ns}/events"
        async with self.http.post(url, json=body) as resp:
            resp.raise_for_status()

    async def list(self, plural: str, ns: str) -> dict[str, Any]:
        """One LIST of a kind in a namespace."""
        async with self.http.get(self.path(plural, ns)) as resp:
            resp.raise_for_status()
            out: dict[str, Any] = await resp.json()
        return out

    async def watch(
        self, plural: str, ns: str, resource_version: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events of a kind in a namespace from `resource_version` (one long request)."""
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "3600"}
        async with self.http.get(self.path(plural, ns), params=params) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


async def follow(
    api: KubeApi, plural: str, ns: str, rv: str, seen: Callable[[dict[str, Any]], None]
) -> None:
    """Hand every object of a kind in a namespace to `seen`, for as long as the caller waits.

    A watch the API server ends (410 Gone: the resourceVersion fell out of its watch cache, which
    keeps about a hundred events per kind, while hundreds of Sessions are created at once) is
    followed by a LIST, whose objects are handed over too, and a watch from its resourceVersion.
    """
    while True:
        async for event in api.watch(plural, ns, rv):
            obj = event.get("object") or {}
            if event.get("type") == "ERROR":
                break
            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
            seen(obj)
        listed = await api.list(plural, ns)
        for obj in listed.get("items") or []:
            seen(obj)
        rv = listed["metadata"]["resourceVersion"]
