"""A Compute driven by the real operator against the simulator: launch once, use, release."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import (
    Watcher,
    create,
    get,
    phase,
    platform_objects,
    wait_for,
)

pytestmark = pytest.mark.integration


def _setup(api: client.ApiClient, ns: str, sim: Simulator, image: str, **compute: Any) -> None:
    for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
        create(api, ns, obj)
    create(
        api,
        ns,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DockerContainer",
            "metadata": {"name": "img"},
            "spec": {"image": image, "platformRef": "local"},
        },
    )
    create(
        api,
        ns,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Compute",
            "metadata": {"name": "c"},
            "spec": {
                "platformRef": "local",
                "executableRef": {"kind": "DockerContainer", "name": "img"},
                **compute,
            },
        },
    )


def test_notebook_compute_becomes_available_and_is_released(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with Watcher(sim) as watcher:
        _setup(
            api_client,
            namespace,
            sim,
            "images.canfar.net/skaha/astroml:latest",
            type="notebook",
            cores=3,
            ramGiB=5,
        )
        wait_for(
            "Compute Available",
            lambda: phase(api_client, namespace, "Compute", "c") == "Available",
            60,
        )
        status = get(api_client, namespace, "Compute", "c")["status"]  # type: ignore[index]
        # Fitted to the simulator's /context options: smallest option >= request.
        assert (status["launchedCores"], status["launchedRamGiB"]) == (3, 6)
        url = status["connectors"][0]["url"]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
        name = status["launch"]["name"]
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "computes", "c"
        )
        wait_for("Compute gone", lambda: get(api_client, namespace, "Compute", "c") is None, 60)
        assert not [s for s in sim.sessions() if s["name"] == name]
    assert watcher.seen[name] == {status["launch"]["id"]}


def test_headless_compute_runs_then_completes(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    _setup(
        api_client,
        namespace,
        sim,
        "images.canfar.net/skaha/terminal:1.1.2",
        type="headless",
        command="echo",
        args=["hi"],
        env={"SIM_RUN_SECONDS": "3"},
    )
    seen = set()

    def done() -> bool:
        p = phase(api_client, namespace, "Compute", "c")
        seen.add(p)
        return p == "Completed"

    wait_for("Compute Completed", done, 60, every=0.1)
    assert "Running" in seen


def test_unknown_image_fails_with_a_reason_naming_it(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    _setup(api_client, namespace, sim, "images.canfar.net/skaha/nope:1.0", type="notebook")
    wait_for(
        "DockerContainer Failed",
        lambda: phase(api_client, namespace, "DockerContainer", "img") == "Failed",
        60,
    )
    dc = get(api_client, namespace, "DockerContainer", "img")["status"]  # type: ignore[index]
    assert "images.canfar.net/skaha/nope:1.0" in dc["message"]
    wait_for("Compute Failed", lambda: phase(api_client, namespace, "Compute", "c") == "Failed", 60)
    status = get(api_client, namespace, "Compute", "c")["status"]  # type: ignore[index]
    assert status["reason"] == "DependencyFailed"
    assert "pendingSince" not in (status.get("launch") or {})
