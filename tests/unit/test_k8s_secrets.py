"""Secrets are opt-in (k8s/api.py): the labels are read alone first, and the data of a Secret
without `skaha.broker.dev/credentials: "true"` is never asked for, decoded or held; finalizers
are added to marked Secrets only, and removed with a merge patch that really removes them."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.k8s.api import (
    CREDENTIALS_LABEL,
    CredentialsNotMarked,
    Kube,
    SecretError,
)

VALUE = "tok-never-read-5c1e"
MARK = {CREDENTIALS_LABEL: "true"}
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class FakeCore:
    """The two CoreV1Api calls Kube makes for Secrets, answering like the API server."""

    def __init__(self, labels: dict[str, str] | None, finalizers: list[str] | None = None):
        self.labels, self.finalizers = labels, finalizers or []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _meta(self) -> dict[str, Any]:
        return {"name": "tok", "labels": self.labels, "finalizers": self.finalizers,
                "resourceVersion": "7"}  # fmt: skip

    def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        self.calls.append(("read", kw))
        if (kw.get("_headers") or {}).get("Accept") == METADATA_ONLY:
            doc = {"kind": "PartialObjectMetadata", "metadata": self._meta()}
            return SimpleNamespace(data=json.dumps(doc).encode())
        data = {"token": base64.b64encode(VALUE.encode()).decode()}
        return SimpleNamespace(metadata=SimpleNamespace(labels=self.labels), data=data)

    def patch_namespaced_secret(self, name: str, namespace: str, body: Any, **kw: Any) -> Any:
        self.calls.append(("patch", {**kw, "body": body}))
        return SimpleNamespace(data=b"{}")


def kube_with(core: FakeCore) -> Kube:
    kube = Kube(client.ApiClient())
    kube.core = core  # type: ignore[assignment]
    return kube


def full_reads(core: FakeCore) -> list[dict[str, Any]]:
    return [kw for what, kw in core.calls if what == "read" and "_headers" not in kw]


async def test_an_unmarked_secret_is_refused_from_its_metadata_alone() -> None:
    for labels in (None, {CREDENTIALS_LABEL: "false"}, {"other": "true"}):
        core = FakeCore(labels)
        with pytest.raises(CredentialsNotMarked) as refused:
            await kube_with(core).read_secret("ns", "tok", "token")
        assert "kubectl -n ns label secret tok skaha.broker.dev/credentials=true" in str(
            refused.value
        )
        assert VALUE not in str(refused.value)
        assert full_reads(core) == []  # the data was never asked for
        assert [what for what, _ in core.calls] == ["read"]


async def test_a_marked_secret_is_read() -> None:
    core = FakeCore(MARK)
    assert await kube_with(core).read_secret("ns", "tok", "token") == VALUE
    assert len(full_reads(core)) == 1
    with pytest.raises(SecretError, match="has no key 'password'"):
        await kube_with(core).read_secret_keys("ns", "tok", ("token", "password"))


async def test_a_label_removed_between_the_two_reads_is_not_decoded() -> None:
    core = FakeCore(MARK)
    original = core.read_namespaced_secret

    def unlabel_after_metadata(name: str, namespace: str, **kw: Any) -> Any:
        answer = original(name, namespace, **kw)
        core.labels = None
        return answer

    core.read_namespaced_secret = unlabel_after_metadata  # type: ignore[method-assign]
    with pytest.raises(CredentialsNotMarked):
        await kube_with(core).read_secret("ns", "tok", "token")


async def test_only_marked_secrets_are_held_and_release_removes_the_finalizer() -> None:
    unmarked = FakeCore(None)
    await kube_with(unmarked).hold_secret("ns", "tok", "f/x", hold=True)
    assert [what for what, _ in unmarked.calls] == ["read"]

    marked = FakeCore(MARK)
    await kube_with(marked).hold_secret("ns", "tok", "f/x", hold=True)
    (patch,) = [kw for what, kw in marked.calls if what == "patch"]
    assert patch["body"]["metadata"]["finalizers"] == ["f/x"]

    # Release works whatever the label says now, and replaces the list (merge patch).
    held = FakeCore(None, ["other/y", "f/x"])
    await kube_with(held).hold_secret("ns", "tok", "f/x", hold=False)
    (patch,) = [kw for what, kw in held.calls if what == "patch"]
    assert patch["body"]["metadata"] == {"finalizers": ["other/y"], "resourceVersion": "7"}
    assert patch["_content_type"] == "application/merge-patch+json"
    assert patch["_headers"] == {"Accept": METADATA_ONLY}  # the reply carries no data either
    for core in (unmarked, marked, held):
        assert full_reads(core) == []
