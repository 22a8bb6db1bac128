"""The API-server behaviour our reconcilers rely on, shown on a real kube-apiserver and etcd.

A throwaway CRD (`widgets.primitives.test`) with a status subresource and a CEL transition rule
stands in for our kinds, so these facts hold independently of the product's schemas.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.binaries import K8S_VERSION
from tests.integration.conftest import install_crds

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "primitives.test", "v1", "widgets"

RULE = (
    "!has(oldSelf.phase) || oldSelf.phase != 'Completed'"
    " || (has(self.phase) && self.phase == 'Completed')"
)
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer"}},
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string", "maxLength": 32},
                                    "sessionId": {"type": "string"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": RULE,
                                        "message": "a Completed phase never changes",
                                    }
                                ],
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widgets(api_client: client.ApiClient) -> client.CustomObjectsApi:
    install_crds_from_dict(api_client)
    return client.CustomObjectsApi(api_client)


def install_crds_from_dict(api: client.ApiClient) -> None:
    import tempfile
    from pathlib import Path

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "widget.yaml"
        path.write_text(yaml.safe_dump(WIDGET_CRD))
        install_crds(api, [path])


@pytest.fixture
def widget(widgets: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 1},
    }
    created: dict[str, Any] = widgets.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    widgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "w1", {"status": {"phase": "Pending"}}
    )
    return created


def get(widgets: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = widgets.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "w1"
    )
    return obj


def status_json_patch(
    widgets: client.CustomObjectsApi, namespace: str, ops: list[dict[str, Any]]
) -> dict[str, Any]:
    obj: dict[str, Any] = widgets.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "w1",
        ops,
        _content_type="application/json-patch+json",
    )
    return obj


def test_version_matches_the_pinned_release(controlplane: ControlPlane) -> None:
    assert controlplane.version()["gitVersion"] == K8S_VERSION


def test_json_patch_test_on_phase_guards_a_transition(
    widgets: client.CustomObjectsApi, namespace: str, widget: dict[str, Any]
) -> None:
    ok = status_json_patch(
        widgets,
        namespace,
        [
            {"op": "test", "path": "/status/phase", "value": "Pending"},
            {"op": "replace", "path": "/status/phase", "value": "Running"},
            {"op": "add", "path": "/status/sessionId", "value": "abc12345"},
        ],
    )
    assert ok["status"] == {"phase": "Running", "sessionId": "abc12345"}
    before = get(widgets, namespace)

    with pytest.raises(client.ApiException) as err:
        status_json_patch(
            widgets,
            namespace,
            [
                {"op": "test", "path": "/status/phase", "value": "Pending"},
                {"op": "replace", "path": "/status/phase", "value": "Failed"},
            ],
        )
    assert err.value.status == 422
    after = get(widgets, namespace)
    assert after["status"] == {"phase": "Running", "sessionId": "abc12345"}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_stale_resource_version_is_a_409(
    widgets: client.CustomObjectsApi, namespace: str, widget: dict[str, Any]
) -> None:
    stale = get(widgets, namespace)
    widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "w1", {"spec": {"size": 2}}
    )
    stale["status"]["phase"] = "Running"
    with pytest.raises(client.ApiException) as put_err:
        widgets.replace_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "w1", stale
        )
    assert put_err.value.status == 409

    rv = stale["metadata"]["resourceVersion"]
    with pytest.raises(client.ApiException) as merge_err:
        widgets.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            "w1",
            {"metadata": {"resourceVersion": rv}, "status": {"phase": "Running"}},
        )
    assert merge_err.value.status == 409
    assert get(widgets, namespace)["status"]["phase"] == "Pending"


def test_status_and_spec_endpoints_ignore_each_other(
    widgets: client.CustomObjectsApi, namespace: str, widget: dict[str, Any]
) -> None:
    widgets.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "w1",
        {"spec": {"size": 99}, "status": {"phase": "Running"}},
    )
    widgets.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "w1",
        {"spec": {"size": 3}, "status": {"phase": "Failed"}},
    )
    obj = get(widgets, namespace)
    assert obj["spec"] == {"size": 3}
    assert obj["status"]["phase"] == "Running"


def test_generation_moves_only_on_spec_changes(
    widgets: client.CustomObjectsApi, namespace: str, widget: dict[str, Any]
) -> None:
    start = get(widgets, namespace)["metadata"]["generation"]
    status_json_patch(
        widgets,
        namespace,
        [
            {"op": "replace", "path": "/status/phase", "value": "Running"},
        ],
    )
    widgets.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "w1",
        {"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}},
    )
    assert get(widgets, namespace)["metadata"]["generation"] == start
    widgets.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "w1", {"spec": {"size": 7}}
    )
    assert get(widgets, namespace)["metadata"]["generation"] == start + 1


def test_cel_transition_rule_keeps_a_terminal_phase(
    widgets: client.CustomObjectsApi, namespace: str, widget: dict[str, Any]
) -> None:
    status_json_patch(
        widgets,
        namespace,
        [
            {"op": "replace", "path": "/status/phase", "value": "Completed"},
        ],
    )
    with pytest.raises(client.ApiException) as err:
        status_json_patch(
            widgets,
            namespace,
            [
                {"op": "replace", "path": "/status/phase", "value": "Running"},
            ],
        )
    assert err.value.status == 422
    assert "a Completed phase never changes" in err.value.body
    assert get(widgets, namespace)["status"]["phase"] == "Completed"
