"""The chart's finalizer policy on the real API server (docs/design.md §4.6): the API server puts
our finalizer on what is created in the bound namespaces, in the create itself; nothing in other
namespaces; anyone else's finalizers stay. (The operator's side, no finalizer PATCH of its own,
is counted in test_cost_counts.py.)"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from skaha_operator import FINALIZER
from skaha_operator.controlplane.kit import (
    finalizers_at_create,
    install_finalizer_policy,
    remove_finalizer_policy,
)

pytestmark = pytest.mark.integration


def test_creates_in_bound_namespaces_get_our_finalizer_and_keep_theirs(
    api_client: client.ApiClient, crds: list[str], namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    elsewhere = f"{namespace[:50]}-other"
    core.create_namespace({"metadata": {"name": elsewhere}})
    name = f"test-finalizer-{uuid.uuid4().hex[:6]}"
    assert finalizers_at_create(api_client, namespace) == []  # nothing before the policy
    try:
        install_finalizer_policy(api_client, name, [namespace])
        assert finalizers_at_create(api_client, namespace) == [FINALIZER]
        # Not bound there: no finalizer that no operator would ever remove.
        assert finalizers_at_create(api_client, elsewhere) == []
        # Someone else's finalizer stays, ours is added after it; ours is never doubled.
        theirs = "example.org/keep"
        assert finalizers_at_create(api_client, namespace, [theirs]) == [theirs, FINALIZER]
        assert finalizers_at_create(api_client, namespace, [FINALIZER, theirs]) == [
            FINALIZER,
            theirs,
        ]
    finally:
        remove_finalizer_policy(api_client, name)
        core.delete_namespace(elsewhere)
