"""`kubectl delete namespace` with kube-controller-manager running (namespace finalization and
garbage collection), while Sessions are in every phase and one launch is still in flight.

What must hold: the namespace is gone within 60 s, and nothing the operator created at Skaha is
left live — not the running notebook, not the running headless job, not the session stuck in
Pending, and not the launch whose POST dropped its connection and commits only after the
namespace deletion began. Deleting the namespace deletes the token Secret and the SkahaPlatform
at the same moment as the Sessions; both are held until the last Compute has released.

This module starts its own control plane (the suite's shared one has no controller manager).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.kit import install_crds
from skaha_operator.simulator import Simulator
from tests.integration.conftest import ROOT
from tests.integration.operator_harness import (
    create,
    operator_process,
    platform_objects,
    wait_for,
)
from tests.integration.test_session_lifecycle import HEADLESS_IMAGE, NOTEBOOK_IMAGE, session

pytestmark = pytest.mark.integration

LIVE = frozenset({"Pending", "Running", "Terminating"})
LAUNCH = "/skaha/v1/session"
COMMIT_LATE = {"commit_delay_s": 4.0, "p_reset": 1.0}  # within the operator's 6 s adopt grace
NAMESPACE_GONE_S = 60.0


@pytest.fixture(scope="module")
def kcm_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager (namespace and garbage collector)."""
    with ControlPlane(controller_manager=True) as cp:
        yield cp


@pytest.fixture(scope="module")
def kcm_api(kcm_plane: ControlPlane) -> Iterator[client.ApiClient]:
    config = client.Configuration()
    config.host = kcm_plane.server
    config.ssl_ca_cert = str(kcm_plane.ca_file)
    config.api_key = {"authorization": f"Bearer {kcm_plane.token}"}
    with client.ApiClient(config) as api:
        install_crds(api, sorted((ROOT / "crds").glob("*.yaml")))
        yield api


def phase_of(api: client.ApiClient, ns: str, plural: str, name: str) -> str | None:
    try:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, plural, name
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return ((obj.get("status") or {}).get("phase")) if isinstance(obj, dict) else None


def compute_tags(api: client.ApiClient, ns: str) -> dict[str, str]:
    """Compute name -> the UID part every Skaha name it launches carries."""
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, ns, "computes"
    )["items"]
    return {
        o["metadata"]["name"]: o["metadata"]["uid"].replace("-", "").lower()[:32] for o in items
    }


def ours(sim: Simulator, tags: set[str]) -> list[dict[str, Any]]:
    return [d for d in sim.launches() if any(t in d["name"] for t in tags)]


def live(sim: Simulator, tags: set[str]) -> list[str]:
    return [
        f"{s['name']} {s['id']} {s['status']}"
        for s in sim.sessions()
        if s["status"] in LIVE and any(t in s["name"] for t in tags)
    ]


def namespace_gone(api: client.ApiClient, ns: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(ns)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def leftovers(api: client.ApiClient, ns: str) -> list[str]:
    out = []
    for plural in ("sessions", "computes", "dockercontainers", "skahaplatforms"):
        try:
            items = client.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, ns, plural
            )["items"]
        except client.ApiException:
            continue
        for o in items:
            st = o.get("status") or {}
            out.append(
                f"{plural}/{o['metadata']['name']} {st.get('phase')} {st.get('reason')}: "
                f"{st.get('message')} finalizers={o['metadata'].get('finalizers')}"
            )
    try:
        for s in client.CoreV1Api(api).list_namespaced_secret(ns).items:
            out.append(f"secret/{s.metadata.name} finalizers={s.metadata.finalizers}")
    except client.ApiException:
        pass
    return out


def test_namespace_deletion_with_sessions_in_every_phase_leaves_nothing_at_skaha(
    kcm_plane: ControlPlane, kcm_api: client.ApiClient, sim: Simulator, tmp_path: Path
) -> None:
    api = kcm_api
    ns = f"t-nsdel-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    later = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    with operator_process(kcm_plane, tmp_path / "operator.log") as proc:
        for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
            create(api, ns, obj)
        create(api, ns, session("available", NOTEBOOK_IMAGE, {"type": "notebook"}))
        create(
            api,
            ns,
            session(
                "headless",
                HEADLESS_IMAGE,
                {"type": "headless", "command": "run.sh", "env": {"SIM_RUN_SECONDS": "3600"}},
            ),
        )
        create(
            api,
            ns,
            session(
                "waiting",
                NOTEBOOK_IMAGE,
                {"type": "notebook"},
                schedule={"start": later.isoformat().replace("+00:00", "Z")},
            ),
        )
        wait_for(
            "Sessions Available, Running and Waiting",
            lambda: (
                phase_of(api, ns, "sessions", "available") == "Available"
                and phase_of(api, ns, "sessions", "headless") == "Running"
                and phase_of(api, ns, "sessions", "waiting") == "Waiting"
            ),
            90,
        )
        # A session stuck in Pending (image pull back-off): the Session is Preparing.
        sim.set_faults([{"route": LAUNCH, "method": "POST", "stuck_pending": 1.0, "count": 1}])
        create(api, ns, session("preparing", NOTEBOOK_IMAGE, {"type": "notebook"}))
        wait_for(
            "the stuck session launched",
            lambda: any(
                s["status"] == "Pending"
                for s in sim.sessions()
                if compute_tags(api, ns).get("preparing-compute", "-") in s["name"]
            ),
            60,
        )
        assert phase_of(api, ns, "sessions", "preparing") == "Preparing"
        # And a launch whose connection drops at once and that commits 4 s later.
        sim.set_faults([{"route": LAUNCH, "method": "POST", "count": 1, **COMMIT_LATE}])
        try:
            create(api, ns, session("launching", NOTEBOOK_IMAGE, {"type": "notebook"}))

            def launching_open() -> bool:
                tag = compute_tags(api, ns).get("launching-compute")
                return bool(tag) and any(
                    not d["committed"]
                    for d in ours(sim, {tag})  # type: ignore[arg-type]
                )

            wait_for("the late launch sent", launching_open, 60, every=0.02)
            tags = set(compute_tags(api, ns).values())
            client.CoreV1Api(api).delete_namespace(ns)
            open_at_delete = [d["id"] for d in ours(sim, tags) if not d["committed"]]
            deleted = time.monotonic()
            try:
                wait_for(
                    f"namespace {ns} gone",
                    lambda: namespace_gone(api, ns),
                    NAMESPACE_GONE_S,
                    every=0.5,
                )
            except AssertionError:
                raise AssertionError(f"left in {ns}: {leftovers(api, ns)}") from None
            took = time.monotonic() - deleted
        finally:
            sim.clear_faults()
        assert proc.poll() is None, "the operator died"
    assert len(tags) == 5
    assert open_at_delete, "the late launch committed before the namespace deletion"
    launched = ours(sim, tags)
    # available, headless, preparing and the late one (the waiting Session never launched).
    assert len(launched) == 4, launched
    assert all(d["committed"] for d in launched), launched
    assert live(sim, tags) == [], f"live at Skaha {took:.0f}s after the delete"
    time.sleep(COMMIT_LATE["commit_delay_s"] + 1.0)
    assert live(sim, tags) == []
    assert len(ours(sim, tags)) == 4
