"""A running Compute's first look after a start or take-over: when it may wait, and for how long
(controllers/first_look.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from skaha_operator.controllers.first_look import first_look_wait, may_wait
from skaha_operator.domain.compute import Compute
from skaha_operator.reconcile.compute import PlatformView
from skaha_operator.reconcile.timing import Timing

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T = Timing()
READY = PlatformView(ready=True)
UID = "u-1"


def compute(
    *,
    phase: str = "Running",
    generation: int = 2,
    observed: int = 2,
    launch_id: str | None = "abc12345",
    expiry: datetime | None = NOW + timedelta(days=4),
    schedule: dict[str, Any] | None = None,
    deleting: bool = False,
) -> Compute:
    meta: dict[str, Any] = {
        "name": "c", "namespace": "ns", "uid": UID, "generation": generation,
        "creationTimestamp": "2030-01-01T11:00:00Z",
    }  # fmt: skip
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T11:59:00Z"
    spec: dict[str, Any] = {
        "type": "headless", "platformRef": "local",
        "executableRef": {"kind": "DockerContainer", "name": "img"},
    }  # fmt: skip
    if schedule is not None:
        spec["schedule"] = schedule
    status: dict[str, Any] = {"phase": phase, "observedGeneration": observed}
    if launch_id is not None:
        status["launch"] = {"id": launch_id, "name": "skop-x", "attempts": 1,
                            "pendingSince": "2030-01-01T11:00:01Z"}  # fmt: skip
    if expiry is not None:
        status["expiryTime"] = expiry.isoformat()
    return Compute.model_validate({"metadata": meta, "spec": spec, "status": status})


def test_a_running_compute_with_nothing_due_may_wait() -> None:
    assert may_wait(compute(), READY, NOW, 20.0, T)
    assert may_wait(compute(phase="Available"), READY, NOW, 20.0, T)


@pytest.mark.parametrize(
    ("why", "c", "platform"),
    [
        ("not in use yet", compute(phase="Preparing"), READY),
        ("ended", compute(phase="Completed"), READY),
        ("being deleted", compute(deleting=True), READY),
        ("no session recorded", compute(launch_id=None), READY),
        ("a spec edit not applied yet", compute(generation=3, observed=2), READY),
        ("platform not Ready", compute(), PlatformView(ready=False, reason="Unauthorized")),
        ("platform unknown", compute(), None),
        # Booked for 1 h from 11:00: it ends at 12:00 + 10 s, before the look would come.
        ("booked end first", compute(schedule={"duration": "1h10s"}), READY),
        # Renewal is due renew_before (1 h) ahead of expiry.
        ("renewal first", compute(expiry=NOW + timedelta(seconds=T.renew_before + 10)), READY),
    ],
)
def test_what_must_look_at_once(why: str, c: Compute, platform: PlatformView | None) -> None:
    assert not may_wait(c, platform, NOW, 20.0, T), why


def test_the_end_after_the_moment_lets_it_wait() -> None:
    assert may_wait(compute(schedule={"duration": "1h30s"}), READY, NOW, 20.0, T)


def test_the_wait_is_what_remains_until_the_moment_given() -> None:
    looks = {UID: time.monotonic() + 25.0}
    wait = first_look_wait(looks, compute(), READY, NOW, T)
    assert wait is not None
    assert 20.0 < wait <= 25.0
    # An early wake-up waits for the rest; the moment stays recorded until it is used.
    assert first_look_wait(looks, compute(), READY, NOW, T) is not None
    assert UID in looks


def test_at_the_moment_it_looks_and_the_entry_goes() -> None:
    looks = {UID: time.monotonic() - 0.1}
    assert first_look_wait(looks, compute(), READY, NOW, T) is None
    assert looks == {}
    assert first_look_wait(looks, compute(), READY, NOW, T) is None  # never waits twice


def test_something_to_act_on_ends_the_wait_at_once() -> None:
    looks = {UID: time.monotonic() + 25.0}
    assert first_look_wait(looks, compute(generation=3, observed=2), READY, NOW, T) is None
    assert looks == {}


def test_a_compute_not_given_a_moment_looks_at_once() -> None:
    assert first_look_wait({}, compute(), READY, NOW, T) is None
