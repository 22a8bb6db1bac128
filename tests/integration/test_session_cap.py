"""The interactive-session cap is an admission queue, not a failure (docs/design.md §4.9): the real
operator, API server and simulator.

What must hold:
- 7 notebook Sessions at once against Skaha's cap of 5: 5 become Available, 2 wait with reason
  `SessionLimitReached` and their place in the queue (1 and 2, in creation order); Skaha is never
  sent a launch it refuses; deleting 2 Available Sessions lets both waiting ones launch;
- a cap refusal from Skaha itself (a session started outside the operator took the slot) makes
  the Compute wait and launch later, never fail;
- a Session still queued when its prepare deadline passes is Expired, and says it was the limit.

Each test uses its own Skaha user (its own token), so the cap counts only its sessions and the
simulator's request counts can be filtered to it.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client, watch

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import (
    create,
    delete,
    get,
    platform_objects,
    status,
    wait_for,
)

pytestmark = pytest.mark.integration

NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
LAUNCH = "/skaha/v1/session"
QUEUED = "SessionLimitReached"
TERMINAL = {"Failed", "Expired", "Cancelled", "Completed"}
PLACE = re.compile(r"place (\d+) in the queue")


@dataclass(frozen=True)
class User:
    name: str
    token: str


@pytest.fixture
def user(sim: Simulator) -> User:
    """A Skaha user of its own for one test (the cap is per user)."""
    name = f"cap{uuid.uuid4().hex[:8]}"
    found = User(name, f"tok-{name}")
    sim.set_token(found.token, found.name)
    return found


@pytest.fixture
def cap(sim: Simulator) -> Iterator[Any]:
    """Set Skaha's interactive cap for one test; restored afterwards."""
    old = sim.config.max_sessions

    def set_cap(value: int) -> None:
        sim.configure(max_sessions=value)

    yield set_cap
    sim.configure(max_sessions=old)


def with_platform(api: client.ApiClient, ns: str, sim: Simulator, user: User, cap: int) -> None:
    """The platform, once its probe has read the cap from Skaha's /context."""
    base = sim.base_url  # type: ignore[attr-defined]
    for obj in platform_objects(ns, base, token=user.token, user=user.name):
        create(api, ns, obj)
    wait_for(
        f"SkahaPlatform probed with the cap {cap}",
        lambda: (
            status(api, ns, "SkahaPlatform", "local").get("maxInteractiveSessions") == cap
            and status(api, ns, "SkahaPlatform", "local").get("phase") == "Available"
        ),
        90,
    )


def notebook(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "executable": {"template": {"dockerContainer": {"image": NOTEBOOK_IMAGE}}},
            "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}},
            **spec,
        },
    }


def launches(sim: Simulator, user: User, outcome: str) -> int:
    """Launch POSTs this user's token sent that Skaha answered with `outcome`."""
    count: int = sim.stats(method="POST", route=LAUNCH, token=user.token, outcome=outcome)["count"]
    return count


def live(sim: Simulator, user: User) -> list[str]:
    return [s["id"] for s in sim.sessions(user.name) if s["status"] in {"Pending", "Running"}]


def place(message: str | None) -> int | None:
    found = PLACE.search(message or "")
    return int(found.group(1)) if found else None


class Phases:
    """Reads every Session and Compute of a namespace and remembers every phase ever seen."""

    def __init__(self, api: client.ApiClient, ns: str, names: list[str]) -> None:
        self.api, self.ns, self.names = api, ns, names
        self.ever: set[str] = set()

    def sessions(self) -> dict[str, dict[str, Any]]:
        out = {n: status(self.api, self.ns, "Session", n) for n in self.names}
        self.ever |= {st.get("phase") or "" for st in out.values()}
        return out

    def computes(self) -> dict[str, dict[str, Any]]:
        out = {n: status(self.api, self.ns, "Compute", f"{n}-compute") for n in self.names}
        self.ever |= {st.get("phase") or "" for st in out.values()}
        return out


def test_seven_notebooks_against_a_cap_of_five_queue_then_launch(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Any,
    user: User,
    cap: Any,
) -> None:
    cap(5)
    with_platform(api_client, namespace, sim, user, 5)
    names = [f"nb-{i}" for i in range(1, 8)]  # creation order is name order (the tie-break)
    for name in names:
        create(api_client, namespace, notebook(name))
    seen = Phases(api_client, namespace, names)

    def settled() -> tuple[list[str], list[tuple[str, int | None]]] | None:
        sessions, computes = seen.sessions(), seen.computes()
        available = [n for n in names if sessions[n].get("phase") == "Available"]
        waiting = [
            (n, place(computes[n].get("message")))
            for n in names
            if computes[n].get("reason") == QUEUED
        ]
        if len(available) == 5 and len(waiting) == 2 and [p for _, p in waiting] == [1, 2]:
            return available, waiting
        return None

    available_names, waiting = wait_for(
        "5 Available and 2 queued in order", settled, 300, every=0.5
    )
    for name, _ in waiting:
        compute = status(api_client, namespace, "Compute", f"{name}-compute")
        assert compute["phase"] == "Preparing"
        assert not (compute.get("launch") or {}).get("pendingSince")  # nothing was sent
        assert "5 of 5 in use" in compute["message"]
        # The Session mirrors its parts' progress at most every few seconds (paced writes).
        session = wait_for(
            f"Session {name} shows the queue",
            lambda n=name: _showing_queue(status(api_client, namespace, "Session", n)),
            30,
        )
        assert session["phase"] == "Preparing"
        assert re.search(r"place [12] in the queue", session["message"])
    assert len(live(sim, user)) == 5
    assert (launches(sim, user, "200"), launches(sim, user, "400")) == (5, 0)

    # Two slots free, one after the other: the first in the queue launches first while the
    # second moves up to place 1, then the second launches too.
    first, second = (name for name, _ in waiting)

    def free_a_slot(name: str) -> None:
        delete(api_client, namespace, "Session", name)
        wait_for(f"{name} gone", lambda: get(api_client, namespace, "Session", name) is None, 120)

    def available(name: str) -> bool:
        return seen.sessions()[name].get("phase") == "Available"

    def moved_up() -> bool:
        compute = seen.computes()[second]
        return available(first) and place(compute.get("message")) == 1

    free_a_slot(available_names[0])
    wait_for(f"{first} Available and {second} at place 1", moved_up, 120, every=0.5)
    assert status(api_client, namespace, "Compute", f"{second}-compute")["reason"] == QUEUED
    free_a_slot(available_names[1])
    wait_for(f"{second} Available", lambda: available(second), 120, every=0.5)

    rest = [n for n in names if n not in available_names[:2]]
    assert all(seen.sessions()[n].get("phase") == "Available" for n in rest)
    seen.computes()
    assert not seen.ever & TERMINAL
    # Seven launches, each sent once, none refused by Skaha.
    assert (launches(sim, user, "200"), launches(sim, user, "400")) == (7, 0)
    assert len(live(sim, user)) == 5
    for name in (first, second):
        launch = status(api_client, namespace, "Compute", f"{name}-compute")["launch"]
        assert launch["attempts"] == 1


def _showing_queue(session: dict[str, Any]) -> dict[str, Any] | None:
    """The Session's status once its message shows the queue, else None."""
    return session if QUEUED in (session.get("message") or "") else None


def _watch_reasons(
    api: client.ApiClient, ns: str, name: str, into: set[str], stop: threading.Event
) -> None:
    """Collect every status.reason of one Compute from a watch until `stop` (short timeouts)."""
    custom = client.CustomObjectsApi(api)
    version: str | None = None  # resume where the last stream ended: no change is skipped
    while not stop.is_set():
        extra = {"resource_version": version} if version else {}
        for event in watch.Watch().stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, ns, "computes",
            field_selector=f"metadata.name={name}", timeout_seconds=2, **extra,
        ):  # fmt: skip
            obj = event["object"]
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            into.add(((obj.get("status") or {}).get("reason")) or "")


def test_a_cap_refusal_from_skaha_waits_then_launches(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Any,
    user: User,
    cap: Any,
) -> None:
    cap(5)
    with_platform(api_client, namespace, sim, user, 5)
    # The operator counts a free slot, but Skaha refuses the next launch at its cap (a session
    # started outside the operator took the slot between the count and the launch).
    sim.set_faults([{"route": LAUNCH, "method": "POST", "max_sessions": 0, "count": 1}])
    # Every reason the Compute's status ever held, from a watch (a poll can miss a short state
    # on a loaded machine).
    reasons: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch_reasons, args=(api_client, namespace, "nb-compute", reasons, stop)
    )
    watcher.start()
    try:
        create(api_client, namespace, notebook("nb"))
        seen = Phases(api_client, namespace, ["nb"])

        def available() -> bool:
            compute = seen.computes()["nb"]
            assert not seen.ever & TERMINAL, compute  # a refusal at the cap never ends it
            return seen.sessions()["nb"].get("phase") == "Available"

        wait_for("the refused Session Available", available, 150, every=0.1)
    finally:
        sim.clear_faults()
        stop.set()
        watcher.join(timeout=30)
    assert launches(sim, user, "400") == 1  # Skaha did refuse it once
    assert launches(sim, user, "200") == 1
    assert QUEUED in reasons
    assert not seen.ever & TERMINAL
    assert len(live(sim, user)) == 1


def test_a_queued_session_past_its_prepare_deadline_expires_naming_the_limit(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Any,
    user: User,
    cap: Any,
) -> None:
    cap(1)
    with_platform(api_client, namespace, sim, user, 1)
    create(api_client, namespace, notebook("first"))
    wait_for(
        "first Available",
        lambda: status(api_client, namespace, "Session", "first").get("phase") == "Available",
        150,
    )
    create(api_client, namespace, notebook("late", schedule={"prepareDeadline": "20s"}))
    wait_for(
        "late queued",
        lambda: status(api_client, namespace, "Compute", "late-compute").get("reason") == QUEUED,
        90,
    )

    def expired() -> dict[str, Any] | None:
        st = status(api_client, namespace, "Session", "late")
        return st if st.get("phase") == "Expired" else None

    st = wait_for("late Expired", expired, 150, every=0.5)
    assert st["reason"] == "PrepareDeadlineExceeded"
    assert "interactive session slot" in st["message"]
    assert "1 of 1 in use" in st["message"]
    # It never launched: nothing was refused, the first one still runs.
    assert (launches(sim, user, "200"), launches(sim, user, "400")) == (1, 0)
    assert status(api_client, namespace, "Session", "first")["phase"] == "Available"
    assert len(live(sim, user)) == 1
