"""Sessions end to end: the real operator process, the real API server, the simulator.

What must hold: a notebook Session becomes Available with a connect URL and Ready
for `kubectl wait`; a headless one runs then completes; a future start waits and launches on
time; cancel and delete release every part and every Skaha session; launch faults never
duplicate a session.
"""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controllers.compute import FIRST_WAIT
from skaha_operator.simulator import Simulator
from tests.integration.conftest import Kubectl
from tests.integration.operator_harness import (
    Watcher,
    create,
    get,
    phase,
    platform_objects,
    wait_for,
)

pytestmark = pytest.mark.integration

NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
HEADLESS_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"


def session(name: str, image: str, compute: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "executable": {"template": {"dockerContainer": {"image": image}}},
            "compute": {"template": compute},
            **spec,
        },
    }


def with_platform(api: client.ApiClient, ns: str, sim: Simulator) -> None:
    for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
        create(api, ns, obj)


def owned_parts(api: client.ApiClient, ns: str) -> list[str]:
    custom = client.CustomObjectsApi(api)
    names = []
    for plural in ("computes", "dockercontainers"):
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]
        names += [f"{plural}/{i['metadata']['name']}" for i in items]
    return names


def skaha_sessions_named(sim: Simulator, name: str | None) -> list[dict[str, Any]]:
    return [s for s in sim.sessions() if s["name"] == name]


def compute_of(api: client.ApiClient, ns: str, session_name: str) -> dict[str, Any]:
    found = get(api, ns, "Compute", f"{session_name}-compute")
    assert found is not None
    return found


def test_notebook_session_becomes_ready_then_delete_releases_everything(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path, kubectl: Kubectl
) -> None:
    with_platform(api_client, namespace, sim)
    with Watcher(sim) as watcher:
        create(
            api_client,
            namespace,
            session("nb", NOTEBOOK_IMAGE, {"type": "notebook", "cores": 2, "ramGiB": 4}),
        )
        waited = kubectl(
            "wait",
            "-n",
            namespace,
            "--for=condition=Ready",
            "session/nb",
            "--timeout=90s",
            check=False,
        )
        assert waited.returncode == 0, waited.stderr
        status = get(api_client, namespace, "Session", "nb")["status"]  # type: ignore[index]
        assert status["phase"] == "Available"
        url = status["connectors"][0]["url"]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
        name = compute_of(api_client, namespace, "nb")["status"]["launch"]["name"]
        assert len(skaha_sessions_named(sim, name)) == 1

        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "sessions", "nb"
        )
        # No garbage collector runs here: the Session's finalizer must release its parts itself.
        wait_for("Session gone", lambda: get(api_client, namespace, "Session", "nb") is None, 90)
        assert owned_parts(api_client, namespace) == []
        wait_for("Skaha session gone", lambda: not skaha_sessions_named(sim, name), 30)
    assert len(watcher.seen[name]) == 1


def test_headless_session_runs_then_completes(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    create(
        api_client,
        namespace,
        session(
            "batch",
            HEADLESS_IMAGE,
            {
                "type": "headless",
                "command": "python",
                "args": ["reduce.py"],
                "env": {"SIM_RUN_SECONDS": "3"},
            },
        ),
    )
    seen: set[str | None] = set()

    def completed() -> bool:
        seen.add(phase(api_client, namespace, "Session", "batch"))
        return "Completed" in seen

    wait_for("Session Completed", completed, 90, every=0.1)
    assert "Running" in seen
    # A finished Session releases what it owns; its status keeps the parts' last summary.
    parts = get(api_client, namespace, "Session", "batch")["status"]["parts"]  # type: ignore[index]
    # (A part released before the Session ended has no phase: reason Released.)
    assert {p["kind"]: p.get("phase") for p in parts}["Compute"] == "Completed"
    wait_for("parts released", lambda: owned_parts(api_client, namespace) == [], 30)


def test_future_start_waits_then_launches_on_time(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    # A new Compute holds back "waiting" for FIRST_WAIT seconds from its creation (one write
    # for nothing when the wait is short): the start lies well beyond it, or Waiting is never
    # shown (a start 6 s away raced that hold-back on a loaded machine).
    ahead = timedelta(seconds=FIRST_WAIT + 6)
    start = (datetime.now(UTC) + ahead).replace(microsecond=0)
    create(
        api_client,
        namespace,
        session(
            "later",
            NOTEBOOK_IMAGE,
            {"type": "notebook"},
            schedule={"start": start.isoformat().replace("+00:00", "Z")},
        ),
    )
    wait_for(
        "Compute Waiting",
        lambda: phase(api_client, namespace, "Compute", "later-compute") == "Waiting",
        30,
    )
    assert phase(api_client, namespace, "Session", "later") == "Waiting"
    assert (
        not compute_of(api_client, namespace, "later")["status"]
        .get("launch", {})
        .get("pendingSince")
    )
    wait_for(
        "Session Available",
        lambda: phase(api_client, namespace, "Session", "later") == "Available",
        60,
    )
    launched = compute_of(api_client, namespace, "later")["status"]["launch"]["pendingSince"]
    lag = datetime.fromisoformat(launched.replace("Z", "+00:00")) - start
    assert timedelta(0) <= lag < timedelta(seconds=1), lag


def test_cancel_releases_every_part_and_ends_cancelled(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    create(api_client, namespace, session("c", NOTEBOOK_IMAGE, {"type": "notebook"}))
    wait_for(
        "Session Available", lambda: phase(api_client, namespace, "Session", "c") == "Available", 90
    )
    name = compute_of(api_client, namespace, "c")["status"]["launch"]["name"]
    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", "c", {"spec": {"cancel": True}}
    )
    wait_for(
        "Session Cancelled", lambda: phase(api_client, namespace, "Session", "c") == "Cancelled", 90
    )
    assert owned_parts(api_client, namespace) == []
    wait_for("Skaha session gone", lambda: not skaha_sessions_named(sim, name), 30)


def test_stuck_pending_session_fails_at_its_deadline_and_is_deleted(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    sim.set_faults(
        [{"route": "/skaha/v1/session", "method": "POST", "stuck_pending": 1.0, "count": 1}]
    )
    try:
        create(
            api_client,
            namespace,
            session(
                "stuck", NOTEBOOK_IMAGE, {"type": "notebook"}, schedule={"prepareDeadline": "8s"}
            ),
        )
        launched = wait_for(
            "Compute launched",
            lambda: _status(api_client, namespace, "stuck").get("launch", {}).get("id"),
            60,
        )
    finally:
        sim.clear_faults()
    assert sim.sessions()
    name = next(s["name"] for s in sim.sessions() if s["id"] == launched)
    wait_for(
        "Session Expired", lambda: phase(api_client, namespace, "Session", "stuck") == "Expired", 60
    )
    status = get(api_client, namespace, "Session", "stuck")["status"]  # type: ignore[index]
    compute = next(p for p in status["parts"] if p["kind"] == "Compute")
    # Session and Compute share one deadline: whichever reconciles first at that moment ends it.
    # Either the Compute failed on it, or the Session expired on it while the Compute still waited
    # on the stuck launch; both say so.
    if compute["reason"] != "PrepareDeadlineExceeded":
        assert "prepare deadline" in status["message"], status["message"]
    wait_for("Skaha session deleted", lambda: not skaha_sessions_named(sim, name), 30)


def _status(api: client.ApiClient, ns: str, session_name: str) -> dict[str, Any]:
    found = get(api, ns, "Compute", f"{session_name}-compute")
    return (found or {}).get("status") or {}


@pytest.mark.parametrize(
    "fault",
    [
        {"fail_after_commit": 1.0},  # committed, but answered 500: a ghost to adopt
        {"hang_s": 8.0},  # past the operator's 3 s client timeout: nothing committed
    ],
    ids=["fail-after-commit", "hang"],
)
def test_launch_faults_never_duplicate_a_session(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    fault: dict[str, Any],
) -> None:
    with_platform(api_client, namespace, sim)
    sim.set_faults([{"route": "/skaha/v1/session", "method": "POST", "count": 1, **fault}])
    try:
        with Watcher(sim) as watcher:
            create(api_client, namespace, session("f", NOTEBOOK_IMAGE, {"type": "notebook"}))
            wait_for(
                "Session Available",
                lambda: phase(api_client, namespace, "Session", "f") == "Available",
                120,
            )
    finally:
        sim.clear_faults()
    status = compute_of(api_client, namespace, "f")["status"]
    assert watcher.seen[status["launch"]["name"]] == {status["launch"]["id"]}
