"""coordination.k8s.io/v1 Leases: list, create, compare-and-swap update, delete.

The operator's replicas split the objects between them with one Lease per shard and one per live
replica (runtime/shards.py). Every update is a PUT carrying the resourceVersion the decision was
made from, so two replicas can never both take a Lease: the loser gets 409 and `None` back.

The Lease calls run on their own client and their own threads, not on the pool the status writes
queue on: under a burst of hundreds of status writes a renewal must still go out on time, or the
replica would stop stepping its shards while nothing is wrong. A round renews every shard it holds
at once (one PUT each), so the threads are as many as it takes for a round to last about one
request, not sixteen (measured at N = 300: two threads made a round last over 5 s).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

LEASE_API = "coordination.k8s.io/v1"
REQUEST_TIMEOUT = (3.0, 5.0)  # connect, read (s): a renewal that takes longer is late anyway


def micro_time(when: datetime) -> str:
    """A Lease MicroTime (RFC 3339 with exactly six fractional digits, in UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """One Lease as last read or written."""

    name: str
    holder: str | None
    renewed: datetime | None
    duration: float
    version: str
    transitions: int = 0
    acquired: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def live(self, now: datetime) -> bool:
        """Held by someone whose last renewal has not yet run out."""
        if not self.holder or self.renewed is None:
            return False
        return (now - self.renewed).total_seconds() < self.duration


def _record(lease: Any) -> LeaseRecord:
    meta, spec = lease.metadata, lease.spec
    return LeaseRecord(
        name=str(meta.name),
        holder=spec.holder_identity or None,
        renewed=spec.renew_time,
        duration=float(spec.lease_duration_seconds or 0),
        version=str(meta.resource_version),
        transitions=int(spec.lease_transitions or 0),
        acquired=spec.acquire_time,
        labels=dict(meta.labels or {}),
    )


class Leases:
    """Leases of one namespace, on a client and threads of their own."""

    def __init__(self, api: client.ApiClient, namespace: str, threads: int = 8) -> None:
        self.api = api
        self.namespace = namespace
        self._coord = client.CoordinationV1Api(api)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lease")

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, *args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        return await loop.run_in_executor(self._pool, call)

    async def list(self, selector: str) -> list[LeaseRecord]:
        """Every Lease matching a label selector."""
        found = await self._call(
            self._coord.list_namespaced_lease, self.namespace, label_selector=selector
        )
        return [_record(item) for item in found.items]

    async def create(
        self,
        name: str,
        labels: dict[str, str],
        holder: str | None,
        duration: float,
        now: datetime,
    ) -> LeaseRecord | None:
        """A new Lease held by `holder`; None when one of that name exists already."""
        body = {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": _spec(holder, duration, now, now if holder else None, 0),
        }
        try:
            made = await self._call(self._coord.create_namespaced_lease, self.namespace, body)
        except client.ApiException as exc:
            if exc.status == 409:
                return None
            raise
        return _record(made)

    async def update(
        self,
        seen: LeaseRecord,
        holder: str | None,
        duration: float,
        now: datetime,
    ) -> LeaseRecord | None:
        """Write `holder` into a Lease as it was `seen`; None when it changed meanwhile (or went).

        A new holder counts a transition and restarts acquireTime; the same holder only renews.
        """
        same = holder is not None and holder == seen.holder
        acquired = seen.acquired if same else (now if holder else None)
        transitions = seen.transitions + (0 if same or holder is None else 1)
        body = {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {
                "name": seen.name,
                "namespace": self.namespace,
                "labels": seen.labels,
                "resourceVersion": seen.version,
            },
            "spec": _spec(holder, duration, now, acquired, transitions),
        }
        try:
            done = await self._call(
                self._coord.replace_namespaced_lease, seen.name, self.namespace, body
            )
        except client.ApiException as exc:
            if exc.status in (404, 409):
                return None
            raise
        return _record(done)

    async def delete(self, name: str) -> None:
        """Remove a Lease (already gone is fine)."""
        try:
            await self._call(self._coord.delete_namespaced_lease, name, self.namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    def close(self) -> None:
        """Stop the threads and the client."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api.close()


def _spec(
    holder: str | None,
    duration: float,
    now: datetime,
    acquired: datetime | None,
    transitions: int,
) -> dict[str, Any]:
    return {
        "holderIdentity": holder,
        "leaseDurationSeconds": max(1, round(duration)),
        "renewTime": micro_time(now) if holder else None,
        "acquireTime": micro_time(acquired) if acquired else None,
        "leaseTransitions": transitions,
    }
