"""Clients per platform: replaced clients stay usable for the steps that already hold them."""

from __future__ import annotations

import asyncio
from typing import Any

from skaha_operator.controllers.platforms import PlatformCache
from skaha_operator.domain.skaha_platform import SkahaPlatform
from skaha_operator.platform.hosts import HostPolicy


class _Kube:
    def __init__(self) -> None:
        self.reads = 0

    async def get(self, plural: str, ns: str, name: str) -> None:
        return None

    async def read_secret(self, ns: str, name: str, key: str) -> str:
        self.reads += 1
        await asyncio.sleep(0.01)  # a real read waits for the API server
        return "t0k3n"


def _platform() -> SkahaPlatform:
    return SkahaPlatform.model_validate(
        {
            "apiVersion": "skaha.broker.dev/v1alpha1",
            "kind": "SkahaPlatform",
            "metadata": {"name": "site", "namespace": "science", "uid": "u", "generation": 1},
            "spec": {
                "skaha": {"url": "http://127.0.0.1:9/skaha", "apiVersion": "v1"},
                "cavern": {"url": "http://127.0.0.1:9/arc", "user": "alice"},
                "tokenSecretRef": {"name": "tok"},
            },
        }
    )


def _cache(kube: Any, ttl: float) -> PlatformCache:
    return PlatformCache(kube, ttl=ttl, hosts=HostPolicy.parse(["127.0.0.1"]))


async def test_replaced_clients_are_closed_one_ttl_later_not_under_their_users() -> None:
    cache = _cache(_Kube(), ttl=0.2)
    try:
        old = await cache.clients(_platform())
        await asyncio.sleep(0.25)  # expired: the next use builds new clients
        new = await cache.clients(_platform())
        assert new is not old
        # A step that took `old` before the rebuild can still send with it.
        assert not old.skaha._http.is_closed
        await asyncio.sleep(0.4)
        assert old.skaha._http.is_closed  # closed one TTL after it was replaced
        assert not new.skaha._http.is_closed
    finally:
        await cache.aclose()
    assert new.skaha._http.is_closed


async def test_steps_that_need_new_clients_together_read_the_secret_once() -> None:
    kube = _Kube()
    cache = _cache(kube, ttl=300)
    try:
        got = await asyncio.gather(*(cache.clients(_platform()) for _ in range(50)))
        assert len({id(c) for c in got}) == 1
        assert kube.reads == 1
    finally:
        await cache.aclose()
