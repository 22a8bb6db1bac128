"""A revoked token is a state of the platform, not a failure (docs/design.md §4.9): the real
operator, API server and simulator.

What must hold, with SESSIONS notebook Sessions running when the platform's token is revoked:
- every Session and its Compute turn Ready=False / Stalled=True, saying the platform refuses the
  token (reason `PlatformUnauthorized` on the Compute) — within a generous deadline;
- meanwhile the revoked token is not hammered: over the next 60 s Skaha sees at most one request
  carrying it per object per 30 s on average (objects: the platform and, per Session, the Session,
  its Compute and its DockerContainer), and none at all on the session routes (the launched
  Computes make no Skaha calls; only the platform's probe asks);
- once the token is valid again, everything is Ready=True again;
- nothing ends (no Failed, Expired, Cancelled or Completed) and nothing is launched again: the
  Skaha sessions afterwards are the very ones from before.

And the fix a person makes — a new token in the platform's Secret — is picked up by the next
probes (the platform re-probes every few seconds while Unauthorized), not after the cached
clients expire minutes later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import (
    condition,
    create,
    platform_objects,
    status,
)

pytestmark = pytest.mark.integration

SESSIONS = 12  # 10-20 asked; 12 keeps a shared 2-core machine responsive
NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
TERMINAL = {"Failed", "Expired", "Cancelled", "Completed"}
WINDOW_S = 60.0
PER_OBJECT_EVERY_S = 30.0


@pytest.fixture
def token(sim: Simulator) -> Iterator[str]:
    """A token of alice's for this test only (its requests can be counted apart); the
    interactive cap raised above SESSIONS for the test."""
    value = f"tok-cred-{uuid.uuid4().hex[:8]}"
    sim.set_token(value, "alice")
    old = sim.config.max_sessions
    sim.configure(max_sessions=SESSIONS + 5)
    yield value
    sim.configure(max_sessions=old)
    sim.set_token(value, "alice")  # leave no revoked token behind for the namespace's release


def notebook(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": "local",
            "executable": {"template": {"dockerContainer": {"image": NOTEBOOK_IMAGE}}},
            "compute": {"template": {"type": "notebook", "cores": 1, "ramGiB": 2}},
        },
    }


class View:
    """Reads every Session and Compute; remembers every phase ever seen."""

    def __init__(self, api: client.ApiClient, ns: str, names: list[str]) -> None:
        self.api, self.ns, self.names = api, ns, names
        self.ever: set[str] = set()

    def read(self) -> list[tuple[str, dict[str, Any]]]:
        """(what, status) of every Session and Compute."""
        out = []
        for name in self.names:
            out.append((f"Session {name}", status(self.api, self.ns, "Session", name)))
            out.append(
                (f"Compute {name}-compute", status(self.api, self.ns, "Compute", f"{name}-compute"))
            )
        self.ever |= {st.get("phase") or "" for _, st in out}
        return out

    def not_yet(self, check: Any) -> list[str]:
        """The objects `check(what, status)` is not yet true of."""
        return [what for what, st in self.read() if not check(what, st)]


def wait_all(view: View, check: Any, what: str, timeout: float) -> None:
    """Wait until `check` holds for every Session and Compute; name those it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not view.not_yet(check):
            return
        time.sleep(1.0)
    left = [
        (w, st.get("phase"), st.get("reason"), condition(st, "Ready"), condition(st, "Stalled"))
        for w, st in view.read()
        if not check(w, st)
    ]
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; not yet: {left}")


def ready(_: str, st: dict[str, Any]) -> bool:
    # Stalled is written only while True: a usable object has none.
    return condition(st, "Ready").get("status") == "True" and not condition(st, "Stalled")


def refused(what: str, st: dict[str, Any]) -> bool:
    """Ready=False and Stalled=True, saying it is the platform's token."""
    ready_c, stalled_c = condition(st, "Ready"), condition(st, "Stalled")
    named = "SkahaPlatform local" in (ready_c.get("message") or "")
    if what.startswith("Compute") and st.get("reason") != "PlatformUnauthorized":
        return False
    return (
        ready_c.get("status") == "False"
        and stalled_c.get("status") == "True"
        and ready_c.get("reason") == "PlatformUnauthorized"
        and named
    )


def skaha_ids(view: View) -> dict[str, str]:
    """Compute name -> the Skaha session id it recorded."""
    return {
        name: status(view.api, view.ns, "Compute", f"{name}-compute")["launch"]["id"]
        for name in view.names
    }


def test_revoked_token_stalls_every_session_quietly_and_restoring_it_recovers(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Any, token: str
) -> None:
    for obj in platform_objects(namespace, sim.base_url, token=token):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    names = [f"nb-{i:02d}" for i in range(1, SESSIONS + 1)]
    for name in names:
        create(api_client, namespace, notebook(name))
    view = View(api_client, namespace, names)
    wait_all(view, ready, "every Session Ready", 400)
    before = skaha_ids(view)
    assert len(set(before.values())) == SESSIONS
    live = {s["id"] for s in sim.sessions("alice") if s["status"] == "Running"}
    assert set(before.values()) <= live
    launches = sim.stats(method="POST", route="/skaha/v1/session", token=token)["count"]
    assert launches == SESSIONS

    sim.revoke_token(token)
    wait_all(view, refused, "Ready=False/Stalled=True naming the platform", 180)
    platform = status(api_client, namespace, "SkahaPlatform", "local")
    assert platform["reason"] == "Unauthorized"

    # The next 60 s: what reaches Skaha with the revoked token.
    start = sim.stats(token=token, route="/skaha/*")
    ends = time.monotonic() + WINDOW_S
    while time.monotonic() < ends:
        assert not view.not_yet(refused)  # they stay so, and nothing ends
        time.sleep(5.0)
    end = sim.stats(token=token, route="/skaha/*")
    sent = {
        route: n - start["by_route"].get(route, 0)
        for route, n in end["by_route"].items()
        if n - start["by_route"].get(route, 0)
    }
    objects = 1 + 3 * SESSIONS  # the platform; per Session: it, its Compute, its DockerContainer
    budget = objects * WINDOW_S / PER_OBJECT_EVERY_S
    assert sum(sent.values()) <= budget, sent
    on_sessions = {r: n for r, n in sent.items() if "/session" in r}
    assert on_sessions == {}, on_sessions  # the Computes keep quiet: only the probe asks

    sim.set_token(token, "alice")
    wait_all(view, ready, "every Session Ready again", 180)

    assert not view.ever & TERMINAL, view.ever
    assert skaha_ids(view) == before  # the same Skaha sessions: nothing relaunched or leaked
    live = {s["id"] for s in sim.sessions("alice") if s["status"] == "Running"}
    assert set(before.values()) <= live
    assert sim.stats(method="POST", route="/skaha/v1/session", token=token)["count"] == SESSIONS
    for name in names:
        launch = status(api_client, namespace, "Compute", f"{name}-compute")["launch"]
        assert launch["attempts"] == 1


def test_a_new_token_in_the_secret_is_used_by_the_next_probes(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Any, token: str
) -> None:
    for obj in platform_objects(namespace, sim.base_url, token=token):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    names = ["rot-1", "rot-2"]
    for name in names:
        create(api_client, namespace, notebook(name))
    view = View(api_client, namespace, names)
    wait_all(view, ready, "every Session Ready", 300)
    before = skaha_ids(view)
    sim.revoke_token(token)
    wait_all(view, refused, "Ready=False/Stalled=True naming the platform", 180)

    # The person's fix: a new token, put into the Secret the platform names.
    fresh = f"{token}-new"
    sim.set_token(fresh, "alice")
    client.CoreV1Api(api_client).patch_namespaced_secret(
        "skaha-token", namespace, {"stringData": {"token": fresh}}
    )
    # Well within the cached clients' lifetime (300 s): only a re-read of the Secret recovers.
    wait_all(view, ready, "every Session Ready with the new token", 90)
    assert not view.ever & TERMINAL, view.ever
    assert skaha_ids(view) == before
    assert sim.stats(token=fresh, route="/skaha/*")["count"] > 0
    assert sim.stats(method="POST", route="/skaha/v1/session", token=fresh)["count"] == 0
