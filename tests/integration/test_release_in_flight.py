"""Deleting an object while its launch is still open: the launch is resolved before the object goes.

The simulator opens the windows a real Skaha has (docs/simulator.md, "Timing windows"):
- `answer_delay_s`: the session exists at once, the answer comes late (within the operator's
  3 s client timeout, or after it, so the operator gives up without an id);
- `commit_delay_s`: the request is answered (or its connection dropped, or the client times out)
  before the session exists; it appears later, within the operator's 6 s adopt grace.
Each test deletes the object (a Compute, the Session that owns it, or a Data with a download job)
while its launch is in that window, and checks, at the moment the object is gone, that every
launch carrying its name has committed and none is live (Pending, Running or Terminating); and
again once every window has passed. Without release resolving the open launch (an object with a
marker but no id released at once) the session commits after the object is gone and runs on.

A launch that commits only after the grace (so a second attempt was sent under the same name) is
found later: the extra session is removed while the Compute lives, and at release nothing under
the name is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import (
    Watcher,
    create,
    platform_objects,
    wait_for,
)
from tests.integration.test_session_lifecycle import NOTEBOOK_IMAGE, session

pytestmark = pytest.mark.integration

LAUNCH = "/skaha/v1/session"
LIVE = frozenset({"Pending", "Running", "Terminating"})
CLIENT_TIMEOUT = 3.0  # the harness's --http-timeout
GRACE = 6.0  # the harness's --adopt-grace

# name -> (fault rule on the launch POST, what the window looks like from outside)
WINDOWS: dict[str, dict[str, Any]] = {
    # committed at once; the 200 leaves 2 s later, inside the client timeout: in flight
    "answer-late": {"answer_delay_s": 2.0},
    # committed at once; the answer would leave after the client timeout: no id recorded
    "answer-after-timeout": {"answer_delay_s": CLIENT_TIMEOUT + 3.0},
    # the connection drops at once; the session appears 4 s later (within the grace)
    "commit-late-reset": {"commit_delay_s": 4.0, "p_reset": 1.0},
    # the client times out at 3 s; the session appears at 5 s
    "commit-late-timeout": {"commit_delay_s": CLIENT_TIMEOUT + 2.0},
}
LONGEST = max(r.get("commit_delay_s", 0.0) + r.get("answer_delay_s", 0.0) for r in WINDOWS.values())


# -- what the simulator shows under one object's name ---------------------------------------


def tag_of(api: client.ApiClient, ns: str, kind: str, name: str) -> str:
    """The part of every external name derived from the object's UID."""
    found = get_any(api, ns, kind, name)
    assert found is not None, f"{kind} {name} does not exist"
    return str(found["metadata"]["uid"]).replace("-", "").lower()[:32]


def launches(sim: Simulator, tag: str) -> list[dict[str, Any]]:
    """Every session ever created under a name carrying `tag` (gone and uncommitted included)."""
    return [d for d in sim.launches() if tag in d["name"]]


def live(sim: Simulator, tag: str) -> list[str]:
    """`id status` of the sessions under `tag` that still hold something."""
    return [
        f"{s['id']} {s['status']}"
        for s in sim.sessions()
        if tag in s["name"] and s["status"] in LIVE
    ]


def open_launches(sim: Simulator, tag: str) -> list[str]:
    """Launches under `tag` that have not committed yet (they will appear later)."""
    return [d["id"] for d in launches(sim, tag) if not d["committed"]]


def posts_in_flight(sim: Simulator) -> int:
    return int(sim.stats(method="POST", route=LAUNCH, outcome="in-flight")["count"])


def in_window(sim: Simulator, tag: str, rule: dict[str, Any]) -> bool:
    """True while the launch under `tag` is in the window the rule opens."""
    if "commit_delay_s" in rule:
        return bool(open_launches(sim, tag))
    return bool(launches(sim, tag)) and posts_in_flight(sim) > 0


# -- objects -------------------------------------------------------------------------------

PLURALS = {
    "Compute": "computes",
    "Session": "sessions",
    "Data": "data",
    "Storage": "storages",
    "DockerContainer": "dockercontainers",
}


def get_any(api: client.ApiClient, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, ns, PLURALS[kind], name
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def phase(api: client.ApiClient, ns: str, kind: str, name: str) -> str | None:
    return ((get_any(api, ns, kind, name) or {}).get("status") or {}).get("phase")


def delete(api: client.ApiClient, ns: str, kind: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, ns, PLURALS[kind], name
    )


def new_object(api: client.ApiClient, ns: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        PLURALS[kind],
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def with_platform(api: client.ApiClient, ns: str, sim: Simulator) -> None:
    for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
        create(api, ns, obj)


def compute_spec(kind: str = "notebook") -> dict[str, Any]:
    return {
        "platformRef": "local",
        "executableRef": {"kind": "DockerContainer", "name": "img"},
        "type": kind,
    }


def with_image(api: client.ApiClient, ns: str) -> None:
    new_object(api, ns, "DockerContainer", "img", {"image": NOTEBOOK_IMAGE, "platformRef": "local"})
    wait_for(
        "DockerContainer Available",
        lambda: phase(api, ns, "DockerContainer", "img") == "Available",
        60,
    )


# -- the check -----------------------------------------------------------------------------


def delete_in_window(
    api: client.ApiClient,
    ns: str,
    sim: Simulator,
    rule: dict[str, Any],
    target: tuple[str, str],
    tag: Callable[[], str | None],
    gone: Callable[[], bool],
) -> dict[str, Any]:
    """Wait until the launch under `tag()` is in its window, delete `target` at once, wait until
    `gone()`; return what was seen at the moment of the delete and of the disappearance."""

    def window() -> str | None:
        t = tag()
        return t if t and in_window(sim, t, rule) else None

    found = wait_for("the launch in its window", window, 60, every=0.02)
    delete(api, ns, *target)
    deleted_at = datetime.now(UTC)
    at_delete = {"open": open_launches(sim, found), "in_flight": posts_in_flight(sim)}
    wait_for(f"{target[0]} {target[1]} gone", gone, 90, every=0.05)
    gone_at = datetime.now(UTC)
    return {
        "tag": found,
        "deleted_at": deleted_at,
        "gone_at": gone_at,
        "at_delete": at_delete,
        "open_at_gone": open_launches(sim, found),
        "live_at_gone": live(sim, found),
        "launches_at_gone": launches(sim, found),
    }


def assert_resolved_before_gone(sim: Simulator, seen: dict[str, Any], rule: dict[str, Any]) -> None:
    """The delete landed inside the window; the object went only after every launch under its
    name had committed and been removed; nothing under the name appears afterwards."""
    tag = seen["tag"]
    if "commit_delay_s" in rule:
        assert seen["at_delete"]["open"], f"the delete was not inside the commit window: {seen}"
    else:
        assert seen["at_delete"]["in_flight"] > 0, f"the delete did not overlap the POST: {seen}"
    assert seen["launches_at_gone"], "nothing was launched"
    assert seen["open_at_gone"] == [], f"gone while a launch could still commit: {seen}"
    assert seen["live_at_gone"] == [], f"gone while its session still holds something: {seen}"
    for d in seen["launches_at_gone"]:
        committed = datetime.fromisoformat(d["created"].replace("Z", "+00:00"))
        assert committed <= seen["gone_at"], f"gone before {d['id']} committed: {seen}"
    # Every window has closed: still nothing live, and no launch after the delete.
    time.sleep(LONGEST + 1.0)
    assert live(sim, tag) == []
    assert len(launches(sim, tag)) == len(seen["launches_at_gone"])


@pytest.fixture
def faults(sim: Simulator):  # type: ignore[no-untyped-def]
    """Install fault rules for one test; cleared afterwards (the simulator is per module)."""

    def install(rule: dict[str, Any]) -> None:
        sim.set_faults([{"route": LAUNCH, "method": "POST", "count": 1, **rule}])

    yield install
    sim.clear_faults()


# -- 1. delete while the launch is open ------------------------------------------------------


@pytest.mark.parametrize("window", list(WINDOWS))
def test_compute_deleted_during_its_launch_leaves_no_session(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    faults: Callable[[dict[str, Any]], None],
    window: str,
) -> None:
    rule = WINDOWS[window]
    with_platform(api_client, namespace, sim)
    with_image(api_client, namespace)
    faults(rule)
    new_object(api_client, namespace, "Compute", "c", compute_spec())
    tag = tag_of(api_client, namespace, "Compute", "c")
    seen = delete_in_window(
        api_client,
        namespace,
        sim,
        rule,
        ("Compute", "c"),
        lambda: tag,
        lambda: get_any(api_client, namespace, "Compute", "c") is None,
    )
    assert_resolved_before_gone(sim, seen, rule)


@pytest.mark.parametrize("window", ["answer-late", "commit-late-reset"])
def test_session_deleted_during_its_launch_leaves_no_session(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    faults: Callable[[dict[str, Any]], None],
    window: str,
) -> None:
    rule = WINDOWS[window]
    with_platform(api_client, namespace, sim)
    faults(rule)
    create(api_client, namespace, session("s", NOTEBOOK_IMAGE, {"type": "notebook"}))

    def compute_tag() -> str | None:
        found = get_any(api_client, namespace, "Compute", "s-compute")
        return str(found["metadata"]["uid"]).replace("-", "")[:32] if found else None

    seen = delete_in_window(
        api_client,
        namespace,
        sim,
        rule,
        ("Session", "s"),
        compute_tag,
        lambda: (
            get_any(api_client, namespace, "Session", "s") is None
            and get_any(api_client, namespace, "Compute", "s-compute") is None
        ),
    )
    assert_resolved_before_gone(sim, seen, rule)


@pytest.mark.parametrize("window", ["answer-late", "commit-late-reset"])
def test_data_deleted_during_its_download_launch_leaves_no_job(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    faults: Callable[[dict[str, Any]], None],
    window: str,
) -> None:
    rule = WINDOWS[window]
    with_platform(api_client, namespace, sim)
    payload = b"in-flight payload\n"
    sim.state.jobs.files[f"{namespace}/f.bin"] = payload
    url = f"{sim.base_url}/_sim/files/{namespace}/f.bin"  # type: ignore[attr-defined]
    new_object(
        api_client,
        namespace,
        "Storage",
        "st",
        {"platformRef": "local", "area": "home", "path": f"inflight/{namespace}"},
    )
    wait_for(
        "Storage Available",
        lambda: phase(api_client, namespace, "Storage", "st") == "Available",
        60,
    )
    faults(rule)
    new_object(
        api_client,
        namespace,
        "Data",
        "dl",
        {
            "platformRef": "local",
            "storageRef": "st",
            "path": "f.bin",
            "http": {"url": url, "allowInsecure": True},
        },
    )
    tag = tag_of(api_client, namespace, "Data", "dl")
    seen = delete_in_window(
        api_client,
        namespace,
        sim,
        rule,
        ("Data", "dl"),
        lambda: tag,
        lambda: get_any(api_client, namespace, "Data", "dl") is None,
    )
    assert all(d["name"].startswith("skop-dl-") for d in seen["launches_at_gone"]), seen
    assert_resolved_before_gone(sim, seen, rule)


# -- 3. a launch that commits after the grace is found later --------------------------------

# The first POST's connection drops at once and its session appears 10 s later: after the 6 s
# grace, so a second attempt is sent (same name) and recorded before the first one commits.
LATE_FIRST = {"commit_delay_s": 10.0, "p_reset": 1.0}


def _second_attempt_recorded(api: client.ApiClient, ns: str) -> dict[str, Any] | None:
    st = ((get_any(api, ns, "Compute", "c") or {}).get("status") or {}).get("launch") or {}
    return st if st.get("id") and st.get("attempts") == 2 else None


def test_late_first_launch_is_removed_and_one_session_remains(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    faults: Callable[[dict[str, Any]], None],
) -> None:
    with_platform(api_client, namespace, sim)
    with_image(api_client, namespace)
    faults(LATE_FIRST)
    with Watcher(sim) as watcher:
        new_object(api_client, namespace, "Compute", "c", compute_spec())
        tag = tag_of(api_client, namespace, "Compute", "c")
        launch = wait_for(
            "a second attempt recorded", lambda: _second_attempt_recorded(api_client, namespace), 60
        )
        # The first attempt has not committed yet: the second is the only session so far.
        assert len(open_launches(sim, tag)) == 1, launches(sim, tag)
        wait_for("the late first launch committed", lambda: not open_launches(sim, tag), 30)
        assert len(launches(sim, tag)) == 2
        assert len({d["name"] for d in launches(sim, tag)}) == 1  # one name for every attempt

        def only_the_recorded_one() -> bool:
            return live(sim, tag) == [f"{launch['id']} Running"]

        wait_for("the late launch removed", only_the_recorded_one, 60)
        # It stays that way (the sweep does not take the recorded one, nothing comes back).
        for _ in range(10):
            time.sleep(0.5)
            assert [x.split()[0] for x in live(sim, tag)] == [launch["id"]]
        assert phase(api_client, namespace, "Compute", "c") == "Available"
        st = get_any(api_client, namespace, "Compute", "c")["status"]  # type: ignore[index]
        assert st["launch"]["id"] == launch["id"]
        delete(api_client, namespace, "Compute", "c")
        wait_for("Compute gone", lambda: get_any(api_client, namespace, "Compute", "c") is None, 60)
        assert live(sim, tag) == []
    name = launches(sim, tag)[0]["name"]
    assert len(watcher.seen[name]) == 2  # both were seen live: the late one really ran


def test_delete_before_the_late_first_launch_commits_still_removes_it(
    api_client: client.ApiClient,
    namespace: str,
    sim: Simulator,
    operator: Path,
    faults: Callable[[dict[str, Any]], None],
) -> None:
    with_platform(api_client, namespace, sim)
    with_image(api_client, namespace)
    faults(LATE_FIRST)
    new_object(api_client, namespace, "Compute", "c", compute_spec())
    tag = tag_of(api_client, namespace, "Compute", "c")
    wait_for(
        "a second attempt recorded", lambda: _second_attempt_recorded(api_client, namespace), 60
    )
    open_at_delete = open_launches(sim, tag)
    delete(api_client, namespace, "Compute", "c")
    assert open_at_delete, "the first launch committed before the delete: no window"
    wait_for("Compute gone", lambda: get_any(api_client, namespace, "Compute", "c") is None, 90)
    gone_at = datetime.now(UTC)
    assert open_launches(sim, tag) == [], "gone while the first launch could still commit"
    assert live(sim, tag) == []
    assert len(launches(sim, tag)) == 2
    for d in launches(sim, tag):
        assert datetime.fromisoformat(d["created"].replace("Z", "+00:00")) <= gone_at
    time.sleep(2.0)
    assert live(sim, tag) == []
