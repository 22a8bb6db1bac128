"""The operator's Kubernetes access (k8s/api.py over k8s/http.py) on a real kube-apiserver and etcd.

Each method's answers the reconcilers depend on: an existing name on create, a missing object on
get and delete, a guarded status write that lost its race (409 on a stale resourceVersion, 422 on
a failed phase test: both `ConflictError`), a status the schema refuses (a 422 that is *not* a
conflict), paged lists of one snapshot, label selectors, Events, finalizers and spec patches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.k8s.api import ConflictError, Kube

pytestmark = pytest.mark.integration

PLURAL = "skahaplatforms"


def platform(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SkahaPlatform",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "skaha": {"url": "http://127.0.0.1:8765/skaha"},
            "cavern": {"url": "http://127.0.0.1:8765/arc", "user": "alice"},
            "tokenSecretRef": {"name": "skaha-token"},
        },
    }


@pytest.fixture
async def kube(api_client: client.ApiClient, crds: list[str]) -> AsyncIterator[Kube]:
    stored: list[tuple[str, dict[str, Any]]] = []
    found = Kube(api_client, on_stored=lambda plural, body: stored.append((plural, body)))
    found.stored = stored  # type: ignore[attr-defined]
    yield found
    await found.http.aclose()  # the shared api_client stays open for other tests


async def test_create_hands_over_the_stored_object_and_a_second_create_is_false(
    kube: Kube, namespace: str
) -> None:
    assert await kube.create(PLURAL, namespace, platform("p1")) is True
    assert await kube.create(PLURAL, namespace, platform("p1")) is False
    (plural, body), *_ = kube.stored  # type: ignore[attr-defined]
    assert plural == PLURAL
    assert body["metadata"]["name"] == "p1"
    assert body["metadata"]["resourceVersion"]


async def test_get_and_delete_of_a_missing_object(kube: Kube, namespace: str) -> None:
    assert await kube.get(PLURAL, namespace, "absent") is None
    assert await kube.delete(PLURAL, namespace, "absent") is False
    await kube.create(PLURAL, namespace, platform("p1"))
    got = await kube.get(PLURAL, namespace, "p1")
    assert got is not None
    assert got["spec"]["cavern"]["user"] == "alice"
    assert await kube.delete(PLURAL, namespace, "p1") is True
    assert await kube.get(PLURAL, namespace, "p1") is None


async def test_a_status_write_that_lost_its_race_is_a_conflict(kube: Kube, namespace: str) -> None:
    await kube.create(PLURAL, namespace, platform("p1"))
    fresh = await kube.get(PLURAL, namespace, "p1")
    assert fresh is not None
    first = await kube.write_status(PLURAL, fresh, {"phase": "Waiting", "message": "probing"})
    assert first is not None
    assert first["status"]["phase"] == "Waiting"
    # The first write again, from the view before it: the resourceVersion test fails (409/422).
    with pytest.raises(ConflictError):
        await kube.write_status(PLURAL, fresh, {"phase": "Preparing"})
    # A decision made from Waiting, after someone else moved the phase on: the phase test fails.
    other = await kube.write_status(PLURAL, first, {"phase": "Available"})
    assert other is not None
    with pytest.raises(ConflictError):
        await kube.write_status(PLURAL, first, {"phase": "Failed"})
    now = await kube.get(PLURAL, namespace, "p1")
    assert now is not None
    assert now["status"]["phase"] == "Available"
    # Nothing to change: no request at all.
    assert await kube.write_status(PLURAL, now, {"phase": "Available"}) is None


async def test_the_status_is_owned_whole_by_the_operator(
    kube: Kube, api_client: client.ApiClient, namespace: str
) -> None:
    """One managedFields entry for the status, `f:status` alone, under the operator's name
    (docs/kubernetes-notes.md §12); before, one path per field under aiohttp's "Python"."""
    await kube.create(PLURAL, namespace, platform("p1"))
    fresh = await kube.get(PLURAL, namespace, "p1")
    assert fresh is not None
    written = await kube.write_status(PLURAL, fresh, {"phase": "Waiting", "message": "probing"})
    assert written is not None
    await kube.write_status(PLURAL, written, {"phase": "Available", "reason": "Probed"})
    stored = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "p1"
    )
    assert stored["status"] == {"phase": "Available", "message": "probing", "reason": "Probed"}
    entries = stored["metadata"]["managedFields"]
    status = [e for e in entries if e.get("subresource") == "status"]
    assert [(e["manager"], e["fieldsV1"]) for e in status] == [("skaha-operator", {"f:status": {}})]
    assert {e["manager"] for e in entries} == {"skaha-operator"}


async def test_a_status_the_schema_refuses_is_an_error_not_a_conflict(
    kube: Kube, namespace: str
) -> None:
    await kube.create(PLURAL, namespace, platform("p1"))
    fresh = await kube.get(PLURAL, namespace, "p1")
    assert fresh is not None
    with pytest.raises(client.ApiException) as refused:
        await kube.write_status(PLURAL, fresh, {"phase": "NoSuchPhase"})
    assert refused.value.status == 422
    assert "phase" in str(refused.value.body)


async def test_list_all_pages_one_snapshot_and_list_filters_by_label(
    kube: Kube, namespace: str
) -> None:
    for i in range(5):
        await kube.create(PLURAL, namespace, platform(f"p{i}", {"odd": str(i % 2)}))
    items, version = await kube.list_all(PLURAL, namespace, page=2)
    assert sorted(o["metadata"]["name"] for o in items) == [f"p{i}" for i in range(5)]
    assert version
    odd = await kube.list(PLURAL, namespace, label_selector="odd=1")
    assert sorted(o["metadata"]["name"] for o in odd) == ["p1", "p3"]
    everywhere, _ = await kube.list_all(PLURAL, None)
    assert {o["metadata"]["name"] for o in everywhere if o["metadata"]["namespace"] == namespace} \
        == {f"p{i}" for i in range(5)}  # fmt: skip


async def test_finalizers_are_added_and_removed_without_dropping_anothers(
    kube: Kube, namespace: str
) -> None:
    await kube.create(PLURAL, namespace, platform("p1"))
    fresh = await kube.get(PLURAL, namespace, "p1")
    assert fresh is not None
    held = await kube.add_finalizer(PLURAL, fresh, "ours.test/a")
    assert held["metadata"]["finalizers"] == ["ours.test/a"]
    # Another writer's finalizer arrives; a stale view cannot add ours over it.
    theirs = await kube._patch_meta(PLURAL, held, [
        {"op": "add", "path": "/metadata/finalizers/-", "value": "theirs.test/b"}])  # fmt: skip
    assert theirs is not None
    with pytest.raises(ConflictError):
        await kube.add_finalizer(PLURAL, held, "ours.test/c")
    await kube.remove_finalizer(PLURAL, theirs, "ours.test/a")
    now = await kube.get(PLURAL, namespace, "p1")
    assert now is not None
    assert now["metadata"]["finalizers"] == ["theirs.test/b"]
    await kube.remove_finalizer(PLURAL, now, "theirs.test/b")


async def test_spec_patches_and_events(
    kube: Kube, namespace: str, api_client: client.ApiClient
) -> None:
    await kube.create(PLURAL, namespace, platform("p1"))
    assert await kube.patch_spec(PLURAL, namespace, "p1", {"cavern": {"user": "bob"}}) is None
    got = await kube.get(PLURAL, namespace, "p1")
    assert got is not None
    assert got["spec"]["cavern"]["user"] == "bob"
    assert got["spec"]["skaha"]["url"].endswith("/skaha")  # merged, not replaced
    refused = await kube.patch_spec(PLURAL, namespace, "absent", {"cavern": {"user": "bob"}})
    assert refused is not None
    assert refused.startswith("HTTP 404")
    ref = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SkahaPlatform", "name": "p1",
           "namespace": namespace, "uid": got["metadata"]["uid"]}  # fmt: skip
    await kube.create_event(namespace, {
        "metadata": {"generateName": "p1.", "namespace": namespace}, "involvedObject": ref,
        "type": "Normal", "reason": "Probed", "message": "the platform answered",
    })  # fmt: skip
    events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
    assert [(e.reason, e.involved_object.name) for e in events] == [("Probed", "p1")]
