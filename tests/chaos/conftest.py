"""Fixtures of the reliability campaigns: their own control plane, the campaign size, reports.

The control plane is package-scoped (not the integration suite's session-scoped one): the
campaigns restart kube-apiserver and flood it, and it comes down as soon as they are done.
`CHAOS_SCALE=full` selects the full campaigns (`make chaos`); the default is the CI size.
`CHAOS_REPORT_DIR` is where each campaign writes its report fragment (default: its tmp dir).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from tests.chaos.report import Report
from tests.chaos.scale import Scale, scale_from_env
from tests.integration.conftest import ROOT, install_crds
from tests.integration.operator_harness import drain_namespace


@pytest.fixture(scope="package")
def controlplane() -> Iterator[ControlPlane]:
    """A running etcd + kube-apiserver for the campaigns only (auditing ServiceAccount calls)."""
    with ControlPlane(audit=True) as cp:
        yield cp


@pytest.fixture(scope="package")
def api_client(controlplane: ControlPlane) -> Iterator[client.ApiClient]:
    """A kubernetes client for the campaigns' control plane."""
    config = client.Configuration()
    config.host = controlplane.server
    config.ssl_ca_cert = str(controlplane.ca_file)
    config.api_key = {"authorization": f"Bearer {controlplane.token}"}
    with client.ApiClient(config) as api:
        yield api


@pytest.fixture(scope="package")
def crds(api_client: client.ApiClient) -> list[str]:
    """Every CRD in crds/, installed and Established."""
    return install_crds(api_client, sorted((ROOT / "crds").glob("*.yaml")))


@pytest.fixture
def namespace(
    api_client: client.ApiClient, crds: list[str], request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace for one campaign, deleted afterwards."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"c-{slug}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    drain_namespace(api_client, name)


@pytest.fixture(scope="session")
def scale() -> Scale:
    """The campaign size: CI (default) or full (`CHAOS_SCALE=full`)."""
    return scale_from_env()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's outcome on the item, so the report fixture knows the verdict."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)  # type: ignore[attr-defined]
    return rep


@pytest.fixture
def report(request: pytest.FixtureRequest, scale: Scale, tmp_path: Path) -> Iterator[Report]:
    """A campaign's report fragment, written after the test with its pass/fail verdict."""
    out_dir = Path(os.environ.get("CHAOS_REPORT_DIR") or tmp_path)
    rep = Report(test=request.node.nodeid, scale=scale.name)
    yield rep
    call = getattr(request.node, "rep_call", None)
    rep.result = "pass" if call is not None and call.passed else "FAIL"
    rep.write(out_dir)
