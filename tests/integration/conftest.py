"""Fixtures for tests against a real kube-apiserver and etcd started as local processes.

One control plane per test session (start-up costs seconds); one fresh namespace per test.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane, binary
from skaha_operator.controlplane.kit import install_crds
from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import drain_namespace, operator_process

ROOT = Path(__file__).resolve().parents[2]
Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def controlplane() -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver for the whole test session."""
    with ControlPlane() as cp:
        yield cp


@pytest.fixture(scope="session")
def api_client(controlplane: ControlPlane) -> Iterator[client.ApiClient]:
    """A kubernetes client configured for the local control plane."""
    config = client.Configuration()
    config.host = controlplane.server
    config.ssl_ca_cert = str(controlplane.ca_file)
    config.api_key = {"authorization": f"Bearer {controlplane.token}"}
    with client.ApiClient(config) as api:
        yield api


@pytest.fixture(scope="session")
def kubectl(controlplane: ControlPlane) -> Kubectl:
    """Run the pinned kubectl against the local control plane."""
    exe = str(binary("kubectl"))

    def run(
        *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(controlplane.kubeconfig)}
        return subprocess.run(
            [exe, *args],
            input=input,
            text=True,
            capture_output=True,
            check=check,
            env=env,
            timeout=60,
        )

    return run


@pytest.fixture(scope="session")
def crds(api_client: client.ApiClient) -> list[str]:
    """Every CRD in crds/, installed and Established."""
    return install_crds(api_client, sorted((ROOT / "crds").glob("*.yaml")))


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    drain_namespace(api_client, name)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """The Skaha simulator in this process (deterministic, short timings); one per test module."""
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
    """The operator as a subprocess for one test module; fails the test if it died."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with operator_process(controlplane, log) as proc:
        yield log
        assert proc.poll() is None, f"the operator died:\n{log.read_text()[-3000:]}"
