"""A Compute driven by the real operator against the simulator: launch once, use, release."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.platform.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import (
    create,
    get,
    operator_process,
    phase,
    platform_objects,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    simulator = Simulator(
        SimulatorConfig(
            tokens={"tok-alice": "alice"}, seed=7, pending_s=1.0, run_s=2.0, terminate_s=0.5
        )
    )
    handle = simulator.start_in_thread()
    simulator.base_url = handle.base_url  # type: ignore[attr-defined]
    try:
        yield simulator
    finally:
        handle.stop()
        simulator.close()


@pytest.fixture(scope="module")
def operator(
    controlplane: ControlPlane, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with operator_process(controlplane, log) as proc:
        yield log
        assert proc.poll() is None, f"the operator died:\n{log.read_text()[-3000:]}"


class Watcher:
    """Records every session the simulator ever shows, to count launches per name."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.seen: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for s in self.sim.sessions():
                self.seen.setdefault(s["name"], set()).add(s["id"])

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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
        name = status["sessionName"]
        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "computes", "c"
        )
        wait_for("Compute gone", lambda: get(api_client, namespace, "Compute", "c") is None, 60)
        assert not [s for s in sim.sessions() if s["name"] == name]
    assert watcher.seen[name] == {status["sessionId"]}


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
    assert "launchPendingSince" not in status
