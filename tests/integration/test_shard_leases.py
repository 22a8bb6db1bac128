"""Shard Leases against a real API server (runtime/shards.py), in-process with short timings
(duration 2 s, renew 0.4 s): one replica takes every shard, a second one gets its fair share, a
clean stop hands its shards over at once, a replica that stops renewing loses them after the
Lease runs out, and no shard ever has two holders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.k8s.leases import Leases
from skaha_operator.runtime.shards import LeaseConfig, LeaseShards

pytestmark = pytest.mark.integration

SHARDS = 8
DURATION, RENEW = 2.0, 0.4


def _api(cp: ControlPlane) -> client.ApiClient:
    config = client.Configuration()
    config.host = cp.server
    config.ssl_ca_cert = str(cp.ca_file)
    config.api_key = {"authorization": f"Bearer {cp.token}"}
    return client.ApiClient(config)


class Replica:
    """One LeaseShards with the shards it was handed over, as the runtime would see them."""

    def __init__(self, cp: ControlPlane, namespace: str, identity: str) -> None:
        cfg = LeaseConfig(namespace, "t", identity, SHARDS, DURATION, RENEW)
        self.taken: list[frozenset[int]] = []
        self.shards = LeaseShards(
            cfg, Leases(_api(cp), namespace), self.taken.append, lambda keys: None
        )


@asynccontextmanager
async def replica(cp: ControlPlane, namespace: str, identity: str) -> AsyncIterator[Replica]:
    r = Replica(cp, namespace, identity)
    await r.shards.start()
    try:
        yield r
    finally:
        await r.shards.aclose()


async def until(what: str, probe: Callable[[], bool], within: float) -> float:
    """Seconds until `probe` holds; fails after `within` seconds."""
    started = time.monotonic()
    while not probe():
        assert time.monotonic() - started < within, f"timed out after {within}s: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def holders(cp: ControlPlane, namespace: str) -> dict[str, str | None]:
    with _api(cp) as api:
        leases = client.CoordinationV1Api(api).list_namespaced_lease(
            namespace, label_selector="skaha.broker.dev/lease-role=shard"
        )
    return {lease.metadata.name: lease.spec.holder_identity for lease in leases.items}


async def test_shards_split_hand_over_and_fail_over(
    controlplane: ControlPlane, namespace: str
) -> None:
    async with replica(controlplane, namespace, "a") as a:
        # Alone: every shard after the first round, handed over once each.
        assert a.shards.held() == frozenset(range(SHARDS))
        assert sorted(i for taken in a.taken for i in taken) == list(range(SHARDS))
        async with replica(controlplane, namespace, "b") as b:
            await until(
                "an even split",
                lambda: len(a.shards.held()) == len(b.shards.held()) == SHARDS // 2,
                within=30,
            )
            assert a.shards.held().isdisjoint(b.shards.held())
            on_server = holders(controlplane, namespace)
            assert len(on_server) == SHARDS
            assert sorted(on_server.values()) == ["a"] * 4 + ["b"] * 4
            b_shards = b.shards.held()
        # b stopped cleanly: its Leases are released at once (not left to expire) and a takes
        # them, each handed over to a's runtime.
        assert "b" not in holders(controlplane, namespace).values()
        await until(
            "a holds everything again", lambda: a.shards.held() == frozenset(range(SHARDS)), 30
        )
        assert b_shards <= {i for taken in a.taken for i in taken}
        assert set(holders(controlplane, namespace).values()) == {"a"}

    # A replica that stops renewing without releasing (as if killed): its shards are taken only
    # once its Leases have expired, and no shard is held by two replicas at any moment.
    async with replica(controlplane, namespace, "c") as c:
        dying = Replica(controlplane, namespace, "d")
        await dying.shards.start()
        await until("d gets its share", lambda: len(dying.shards.held()) == SHARDS // 2, 30)
        dying.shards.stop_renewing()  # as if killed: no more rounds, nothing released
        killed = time.monotonic()
        overlap = []
        # The Lease arithmetic: taken between (duration - renew) and (duration + renew) after the
        # last renewal; the upper bound gets 5 s of margin for a loaded machine.
        while len(c.shards.held()) < SHARDS:
            overlap += list(c.shards.held() & dying.shards.held())
            assert time.monotonic() - killed < DURATION + RENEW + 5, c.shards.held()
            await asyncio.sleep(0.02)
        takeover = time.monotonic() - killed
        assert overlap == []
        assert takeover >= DURATION - RENEW - 0.5  # not before the Lease ran out (0.5 s: a round)
        await dying.shards.aclose()
