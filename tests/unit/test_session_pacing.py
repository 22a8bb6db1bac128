"""Writes held back on the happy path, on the in-memory fakes of tests/unit/test_controllers.py:
a Session's first status at once (with the parts it creates, and no GET for parts it has not
created), progress that only mirrors its parts held back, a change of phase written at once; a new
Compute's "waiting for its parts" held back; a stale body replaced by a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from skaha_operator.controllers.compute import FIRST_WAIT, ComputeController
from skaha_operator.controllers.session import PROGRESS_INTERVAL, SessionController
from tests.unit.test_controllers import API, IMAGE, NS, READS, World, compute, stamp, world

SESSION_UID = "5e55-0000-0000-0000-000000000001"


def session(w: World) -> dict[str, Any]:
    """A Session created just now with an image and a headless Compute, stored in the fake."""
    return w.kube.put(
        "sessions",
        {
            "apiVersion": API,
            "kind": "Session",
            "metadata": {
                "name": "s",
                "namespace": NS,
                "uid": SESSION_UID,
                "generation": 1,
                "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "spec": {
                "platformRef": "local",
                "executable": {"template": {"dockerContainer": {"image": IMAGE}}},
                "compute": {"template": {"type": "headless", "command": "run.sh"}},
            },
        },
    )


def set_phase(w: World, plural: str, name: str, phase: str, reason: str) -> None:
    body = w.kube.stored(plural, name)
    w.kube.put(plural, {**body, "status": {"phase": phase, "reason": reason}})


async def test_first_status_at_once_progress_held_back_running_at_once() -> None:
    w = world()
    controller = SessionController()
    body = session(w)
    out = await controller.step(body, w.ctx)
    # The parts it is about to create are not looked up with a GET.
    assert [c for c in w.log if c.startswith(READS)] == []
    assert w.acts() == [
        "create dockercontainers/s-executable",
        "create computes/s-compute",
        "write_status sessions/s",
        "event Normal CreatingParts",
    ]
    assert out.requeue_after is not None

    # The parts exist now and are being checked: only progress changed, held back.
    w.clear()
    set_phase(w, "dockercontainers", "s-executable", "Preparing", "CheckingImage")
    out = await controller.step(w.kube.stored("sessions", "s"), w.ctx)
    assert w.acts() == []
    assert out.requeue_after is not None
    assert 0 < out.requeue_after <= PROGRESS_INTERVAL

    # The Compute runs: a change of phase is written at once, progress folded into it.
    w.clear()
    set_phase(w, "dockercontainers", "s-executable", "Available", "ImageListed")
    set_phase(w, "computes", "s-compute", "Running", "SessionRunning")
    await controller.step(w.kube.stored("sessions", "s"), w.ctx)
    assert w.acts() == [
        "write_status sessions/s",
        "event Normal SessionRunning",
    ]
    assert w.kube.stored("sessions", "s")["status"]["phase"] == "Running"
    assert len([s for s in w.kube.writes if s.get("phase")]) == 2  # two status writes in all


async def test_a_new_compute_holds_back_waiting_for_its_parts() -> None:
    """Created just now, its DockerContainer still being checked: no write, no Event, and a look
    again before 5 s are up (the part's phase change wakes it earlier)."""
    w = world()
    set_phase(w, "dockercontainers", "img", "Preparing", "CheckingImage")
    body = compute(w)
    body["metadata"]["creationTimestamp"] = stamp(datetime.now(UTC))
    out = await ComputeController().step(w.kube.put("computes", body), w.ctx)
    assert w.acts() == []
    assert out.requeue_after is not None
    assert 0 < out.requeue_after <= FIRST_WAIT
    # Older than FIRST_WAIT, it says so.
    body["metadata"]["creationTimestamp"] = stamp(datetime.now(UTC) - timedelta(minutes=1))
    await ComputeController().step(w.kube.put("computes", body), w.ctx)
    assert w.acts()[:1] == ["write_status computes/c"]
