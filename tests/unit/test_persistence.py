"""kopf's bookkeeping in memory, and the cache primed at start-up."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf

from skaha_operator.runtime.persistence import MemoryDiffBaseStorage


def _body() -> dict[str, Any]:
    return {
        "apiVersion": "skaha.broker.dev/v1alpha1",
        "kind": "Compute",
        "metadata": {
            "name": "c1",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": "42",
            "labels": {"app": "x"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "skaha.broker.dev/abandon": "true",
                "kopf.zalando.org/last-handled-configuration": "{}",
            },
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "finalizers": ["skaha.broker.dev/finalizer"],
        },
        "spec": {"image": "images.canfar.net/skaha/base:1", "cores": 2, "args": ["a", "b"]},
        "status": {"phase": "Running", "launch": {"id": "s1"}},
    }


def test_the_essence_is_kopfs_for_spec_handlers() -> None:
    body = _body()
    ours = MemoryDiffBaseStorage(prefix="skaha.broker.dev")
    theirs = kopf.AnnotationsDiffBaseStorage(
        prefix="skaha.broker.dev", key="last-handled-configuration"
    )
    built = ours.build(body=kopf.Body(copy.deepcopy(body)), extra_fields=set())
    assert built == theirs.build(body=kopf.Body(copy.deepcopy(body)), extra_fields=set())
    assert built["spec"] == body["spec"]
    assert "status" not in built
    assert "managedFields" not in built["metadata"]
    # A copy: a later change of the body does not change the essence kept.
    body["spec"]["args"].append("c")
    assert built["spec"]["args"] == ["a", "b"]


def test_a_handler_on_a_status_field_keeps_it_in_the_essence() -> None:
    body = _body()
    ours = MemoryDiffBaseStorage(prefix="skaha.broker.dev")
    theirs = kopf.AnnotationsDiffBaseStorage(
        prefix="skaha.broker.dev", key="last-handled-configuration"
    )
    fields = {("status", "phase")}
    built = ours.build(body=kopf.Body(body), extra_fields=fields)
    assert built == theirs.build(body=kopf.Body(body), extra_fields=fields)
    assert built["status"] == {"phase": "Running"}


def _obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv}}


async def _no_read(plural: str, ns: str, name: str) -> dict[str, Any] | None:
    raise AssertionError(f"a primed object was read with a GET: {plural}/{name}")


async def test_primed_objects_are_served_and_the_ones_no_watch_confirms_are_dropped() -> None:
    from skaha_operator.k8s.objects import ObjectCache

    cache = ObjectCache(_no_read)
    cache.prime("sessions", _obj("kept", "5"))
    cache.prime("sessions", _obj("deleted-meanwhile", "6"))
    cache.prime("computes", _obj("c", "7"))
    assert await cache.get("sessions", "ns", "kept") is not None
    cache.put("sessions", _obj("kept", "5"))  # the watch delivers it: confirmed
    cache.put("computes", _obj("c", "9"))  # a newer version: confirmed
    assert cache.drop_unconfirmed("sessions") == 1
    assert cache.peek("sessions", "ns", "deleted-meanwhile") is None
    assert cache.peek("sessions", "ns", "kept") is not None
    assert cache.drop_unconfirmed("computes") == 0
    assert cache.peek("computes", "ns", "c") is not None
    assert cache.drop_unconfirmed("sessions") == 0  # dropped once, then forgotten


class _ListingKube:
    def __init__(self, items: dict[str, list[dict[str, Any]]]) -> None:
        self.items = items
        self.listed: list[tuple[str, str | None]] = []

    async def list_all(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        self.listed.append((plural, namespace))
        return self.items.get(plural, [])


async def test_priming_lists_every_kind_and_leaves_deleting_objects_to_their_event() -> None:
    from skaha_operator.controllers.context import Context, OperatorConfig
    from skaha_operator.k8s.objects import ObjectCache
    from skaha_operator.runtime.state import OperatorState
    from skaha_operator.runtime.watch import PLURALS, observe_event, prime

    deleting = {**_obj("going", "8")}
    deleting["metadata"] = {**deleting["metadata"], "deletionTimestamp": "2026-12-02T00:00:00Z",
                            "finalizers": ["skaha.broker.dev/finalizer"]}  # fmt: skip
    kube = _ListingKube({"sessions": [_obj("s1", "5"), deleting]})
    cache = ObjectCache(_no_read)
    ctx = Context(config=OperatorConfig(), kube=kube, platforms=None, cache=cache)  # type: ignore[arg-type]
    st = OperatorState(ctx=ctx)
    assert not st.listed
    assert await prime(st, ["ns"]) == 1
    assert st.listed
    assert sorted(kube.listed) == sorted((p, "ns") for p in PLURALS)
    assert cache.peek("sessions", "ns", "s1") is not None
    assert cache.peek("sessions", "ns", "going") is None
    # The deleting Session's first event finds it new: its release step is scheduled now.
    stepped: list[tuple[str, str, str]] = []

    async def runner(key: tuple[str, str, str]) -> float | None:
        stepped.append(key)
        return None

    st.requeuer.register("sessions", runner)
    observe_event("sessions", None, deleting, st)
    for _ in range(20):
        if stepped:
            break
        await asyncio.sleep(0.05)
    await st.requeuer.aclose()
    assert stepped == [("sessions", "ns", "going")]
