"""A small async Kubernetes client for the benchmarks: create, guarded status patch, watch.

The benchmark client and the floor must not be the bottleneck they measure, so they speak HTTP
directly (httpx, one pooled connection set) instead of the synchronous official client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane


class Conflict(Exception):
    """A guarded write was refused (409, or 422 from a failed JSON-patch test)."""


class KubeApi:
    """Just the calls the benchmarks need, against one control plane."""

    def __init__(self, cp: ControlPlane, connections: int = 64) -> None:
        self.http = httpx.AsyncClient(
            base_url=cp.server,
            headers={"Authorization": f"Bearer {cp.token}"},
            verify=cp.ssl_context(),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(60.0),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    @staticmethod
    def path(plural: str, ns: str, name: str = "") -> str:
        """The collection or object path of one of our kinds."""
        base = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{plural}"
        return f"{base}/{name}" if name else base

    async def create(self, plural: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an object; returns the stored object."""
        resp = await self.http.post(self.path(plural, ns), json=body)
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out

    async def patch_status(
        self, plural: str, ns: str, name: str, ops: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A JSON patch of /status; Conflict when its `test` fails or the object moved."""
        resp = await self.http.patch(
            self.path(plural, ns, name) + "/status",
            content=json.dumps(ops),
            headers={"Content-Type": "application/json-patch+json"},
        )
        if resp.status_code in (409, 422):
            raise Conflict(resp.text)
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out

    async def event(self, ns: str, obj: dict[str, Any], reason: str, message: str) -> None:
        """POST one core/v1 Event about `obj` (what a transition costs by design §3)."""
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
        resp = await self.http.post(f"/api/v1/namespaces/{ns}/events", json=body)
        resp.raise_for_status()

    async def list(self, plural: str, ns: str) -> dict[str, Any]:
        """One LIST of a kind in a namespace."""
        resp = await self.http.get(self.path(plural, ns))
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out

    async def watch(
        self, plural: str, ns: str, resource_version: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events of a kind in a namespace from `resource_version` (one long request)."""
        params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "3600"}
        async with self.http.stream(
            "GET", self.path(plural, ns), params=params, timeout=httpx.Timeout(None)
        ) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if line:
                    yield json.loads(line)
