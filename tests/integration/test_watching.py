"""The operator's own list+watch (k8s/watching.py) on a real kube-apiserver and etcd.

The windows a watch has: the API server ends every watch after `timeoutSeconds` and it is reopened
from the last version seen (nothing may be lost or delivered twice across the gap), and a version
too old for the API server is answered with 410 Gone (the kind is listed again, and the fresh list
is handed over whole).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.k8s import watching
from skaha_operator.k8s.api import Kube
from skaha_operator.k8s.watching import Scope, Streams, follow
from skaha_operator.runtime.watch import _why

pytestmark = pytest.mark.integration

PLURAL = "skahaplatforms"


def platform(namespace: str, name: str, user: str = "alice") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SkahaPlatform",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "skaha": {"url": "http://127.0.0.1:8765/skaha"},
            "cavern": {"url": "http://127.0.0.1:8765/arc", "user": user},
            "tokenSecretRef": {"name": "skaha-token"},
        },
    }


def create(custom: client.CustomObjectsApi, namespace: str, name: str) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, platform(namespace, name)
    )


async def until(what: str, probe: Any, deadline_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not probe():
        assert loop.time() < end, f"timed out after {deadline_s}s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def streams(api_client: client.ApiClient) -> AsyncIterator[Streams]:
    kube = Kube(api_client)
    found = Streams(kube)
    yield found
    await found.aclose()
    await kube.http.aclose()  # the shared api_client stays open for other tests


async def test_a_watch_reopened_every_second_loses_nothing_and_repeats_nothing(
    api_client: client.ApiClient, crds: list[str], namespace: str, streams: Streams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(watching, "SERVER_TIMEOUT", 1)  # the API server ends each watch after 1 s
    custom = client.CustomObjectsApi(api_client)
    scope = Scope(PLURAL, namespace)
    items, since = await streams.list(scope)
    assert items == []
    seen: list[tuple[str, str, str]] = []  # (type, name, resourceVersion)
    relisted: list[list[dict[str, Any]]] = []
    task = asyncio.create_task(follow(
        streams, scope, since,
        lambda kind, obj: seen.append((kind, obj["metadata"]["name"],
                                       obj["metadata"]["resourceVersion"])),
        relisted.append))  # fmt: skip
    try:
        names = [f"p{i}" for i in range(12)]
        for name in names:  # spread over several watches: 12 x (create, edit, delete) in ~4 s
            await asyncio.to_thread(create, custom, namespace, name)
            await asyncio.sleep(0.15)
            await asyncio.to_thread(custom.patch_namespaced_custom_object,
                                    GROUP, VERSION, namespace, PLURAL, name,
                                    {"spec": {"cavern": {"user": "bob"}}})  # fmt: skip
            await asyncio.sleep(0.15)
            await asyncio.to_thread(custom.delete_namespaced_custom_object,
                                    GROUP, VERSION, namespace, PLURAL, name)  # fmt: skip
        await until("every deletion seen", lambda: sum(k == "DELETED" for k, _, _ in seen) >= 12)
        await asyncio.sleep(1.5)  # one more reopening: nothing may come twice after it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert relisted == []
    for name in names:
        assert [k for k, n, _ in seen if n == name] == ["ADDED", "MODIFIED", "DELETED"], seen
    versions = [int(rv) for _, _, rv in seen]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


async def test_a_version_the_api_server_no_longer_has_is_listed_again(
    api_client: client.ApiClient, crds: list[str], namespace: str, streams: Streams
) -> None:
    custom = client.CustomObjectsApi(api_client)
    for name in ("kept", "edited"):
        await asyncio.to_thread(create, custom, namespace, name)
    seen: list[tuple[str, str]] = []
    relisted: list[list[str]] = []
    scope = Scope(PLURAL, namespace)
    # Version 1 is long compacted out of the API server's watch cache: 410 Gone.
    task = asyncio.create_task(follow(
        streams, scope, "1",
        lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
        lambda items: relisted.append(sorted(i["metadata"]["name"] for i in items))))  # fmt: skip
    try:
        await until("the list after Gone", lambda: relisted)
        assert relisted == [["edited", "kept"]]
        # The watch goes on from the new list's version: later changes arrive, once.
        await asyncio.to_thread(custom.patch_namespaced_custom_object,
                                GROUP, VERSION, namespace, PLURAL, "edited",
                                {"spec": {"cavern": {"user": "bob"}}})  # fmt: skip
        await asyncio.to_thread(custom.delete_namespaced_custom_object,
                                GROUP, VERSION, namespace, PLURAL, "kept")  # fmt: skip
        await until("both changes", lambda: len(seen) >= 2)
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen == [("MODIFIED", "edited"), ("DELETED", "kept")]
    assert len(relisted) == 1


async def test_a_kind_the_api_server_does_not_serve_is_named_as_missing_crds(
    streams: Streams,
) -> None:
    """What the start-up list logs when the CRDs are not installed (runtime/watch.py): the API
    server answers a kind it does not serve with 404, which reads as "install the CRDs"."""
    with pytest.raises(client.ApiException) as refused:
        await streams.list(Scope("notinstalleds", None))
    assert refused.value.status == 404
    assert "our CRDs are not installed" in _why(refused.value)
