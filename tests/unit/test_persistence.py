"""kopf's bookkeeping in memory, and the cache primed at start-up."""

from __future__ import annotations

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
