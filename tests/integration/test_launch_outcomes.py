"""How a launch ends, against the real API server, operator and simulator.

What must hold:
- a launch input that is not ready (a registry Secret that does not exist) is a wait, not an
  attempt: no create-pending marker, no POST, until the Secret exists; then exactly one launch;
- a launch Skaha refuses (400) ends the Compute Failed with conditions that say so
  (Stalled=True, Reconciling absent: it is there only while True) and a Warning Event;
- a headless job that Skaha dropped (job TTL) before the operator saw it end is Completed with
  reason OutcomeNotObserved, never Failed;
- a site whose sessions expire sooner than the operator's renew margin is renewed at most once
  per renew window (never once per poll) and the session stays alive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane.kit import MARKED
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import create, get, phase, platform_objects, wait_for

pytestmark = pytest.mark.integration

NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
HEADLESS_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"
PRIVATE_IMAGE = "images.canfar.net/private/reduce:2.0"  # not listed: needs registry credentials
LAUNCH_ROUTE = "/skaha/v1/session"
RENEW_ROUTE = "/skaha/v1/session/*"  # POST .../session/<id> with action=renew


@contextmanager
def knobs(sim: Simulator, **values: Any) -> Iterator[None]:
    """Change simulator knobs for one test (the simulator is shared by the module)."""
    old = {k: getattr(sim.config, k) for k in values}
    sim.configure(**values)
    try:
        yield
    finally:
        sim.configure(**old)


def setup(
    api: client.ApiClient,
    ns: str,
    sim: Simulator,
    image: str,
    *,
    registry_secret: str | None = None,
    **compute: Any,
) -> None:
    """Platform, a DockerContainer and a Compute named `c` running it."""
    for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
        create(api, ns, obj)
    dc: dict[str, Any] = {"image": image, "platformRef": "local"}
    if registry_secret is not None:
        dc["registrySecretRef"] = {"name": registry_secret}
    create(
        api,
        ns,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DockerContainer",
            "metadata": {"name": "img"},
            "spec": dc,
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


def status_of(api: client.ApiClient, ns: str, name: str = "c") -> dict[str, Any]:
    return (get(api, ns, "Compute", name) or {}).get("status") or {}


def conditions(st: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """type -> (status, reason)."""
    return {c["type"]: (c["status"], c.get("reason")) for c in st.get("conditions") or []}


def launches_named(sim: Simulator, name: str) -> list[dict[str, Any]]:
    return [d for d in sim.launches() if d["name"] == name]


def session_name(api: client.ApiClient, ns: str, name: str = "c") -> str:
    uid = (get(api, ns, "Compute", name) or {})["metadata"]["uid"]
    return "skop-" + uid.replace("-", "").lower()[:32]


def warnings(api: client.ApiClient, ns: str, name: str) -> list[tuple[str, str]]:
    events = (
        client.CoreV1Api(api)
        .list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
        .items
    )
    return [(e.reason, e.message) for e in events if e.type == "Warning"]


def delete_compute(api: client.ApiClient, ns: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, ns, "computes", "c"
    )
    wait_for("Compute gone", lambda: get(api, ns, "Compute", "c") is None, 60)


# -- 4. failures before the POST do not use an attempt --------------------------------------


def test_missing_registry_secret_waits_without_a_marker_then_launches_once(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    setup(
        api_client,
        namespace,
        sim,
        PRIVATE_IMAGE,
        registry_secret="regcred",
        type="notebook",
    )
    name = session_name(api_client, namespace)
    st = wait_for(
        "Compute waiting for its registry Secret",
        lambda: (
            (s := status_of(api_client, namespace)).get("reason") == "RegistrySecretMissing" and s
        ),
        60,
    )
    assert st["phase"] == "Preparing"
    assert conditions(st)["Stalled"][0] == "True"
    # Several rechecks (every 5 s) while the Secret is missing: none writes a marker or POSTs.
    posts_before = sim.stats(method="POST", route=LAUNCH_ROUTE)["count"]
    seen_reasons = set()
    for _ in range(3):
        time.sleep(3)
        st = status_of(api_client, namespace)
        seen_reasons.add(st.get("reason"))
        assert not (st.get("launch") or {}).get("pendingSince"), st
        assert not (st.get("launch") or {}).get("attempts"), st
    assert seen_reasons == {"RegistrySecretMissing"}
    assert launches_named(sim, name) == []
    assert sim.stats(method="POST", route=LAUNCH_ROUTE)["count"] == posts_before

    create(
        api_client,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            # Opted in for the operator, as every credentials Secret must be.
            "metadata": {"name": "regcred", "labels": dict(MARKED)},
            "stringData": {"username": "alice", "password": "registry-pass"},
        },
    )
    wait_for(
        "Compute Available", lambda: phase(api_client, namespace, "Compute", "c") == "Available", 60
    )
    st = status_of(api_client, namespace)
    assert st["launch"]["attempts"] == 1
    assert [d["id"] for d in launches_named(sim, name)] == [st["launch"]["id"]]
    delete_compute(api_client, namespace)


# -- 5. terminal writes carry conditions ----------------------------------------------------


def test_refused_launch_fails_with_reconciling_false_and_a_warning(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    # The image is listed (the DockerContainer check passes) but Skaha's launch refuses any
    # image outside its registry hosts with a 400: nothing is created and retrying cannot help.
    with knobs(sim, registry_hosts=["registry.elsewhere.org"]):
        setup(api_client, namespace, sim, NOTEBOOK_IMAGE, type="notebook")
        name = session_name(api_client, namespace)
        wait_for(
            "Compute Failed", lambda: phase(api_client, namespace, "Compute", "c") == "Failed", 60
        )
    st = status_of(api_client, namespace)
    assert st["reason"] == "LaunchRejected", st
    assert "must come from one of" in st["message"]
    cond = conditions(st)
    assert "Reconciling" not in cond, cond
    assert cond["Ready"][0] == "False", cond
    assert cond["Stalled"][0] == "True", cond
    assert launches_named(sim, name) == []  # refused: nothing exists at Skaha
    wait_for(
        "a Warning Event for the refusal",
        lambda: any(r == "LaunchRejected" for r, _ in warnings(api_client, namespace, "c")),
        30,
    )
    delete_compute(api_client, namespace)


def test_headless_job_dropped_by_its_ttl_is_completed_outcome_not_observed(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    # TTL 0: the job vanishes the moment it ends, so its end can never be observed.
    with knobs(sim, ttl_headless_s=0.0):
        setup(
            api_client,
            namespace,
            sim,
            HEADLESS_IMAGE,
            type="headless",
            command="echo",
            env={"SIM_RUN_SECONDS": "1"},
        )
        name = session_name(api_client, namespace)
        wait_for(
            "the job launched", lambda: (status_of(api_client, namespace).get("launch") or {})
            .get("id"), 60,
        )  # fmt: skip
    wait_for(
        "Compute Completed",
        lambda: phase(api_client, namespace, "Compute", "c") in {"Completed", "Failed"},
        60,
    )
    st = status_of(api_client, namespace)
    assert st["phase"] == "Completed", st
    assert st["reason"] == "OutcomeNotObserved", st
    cond = conditions(st)
    assert "Reconciling" not in cond, cond  # settled
    assert "Stalled" not in cond, cond  # and not failed
    # The job really ended and was dropped (not deleted by the operator).
    assert not [s for s in sim.sessions() if s["name"] == name]
    assert sim.stats(method="DELETE", route=f"{LAUNCH_ROUTE}/{st['launch']['id']}")["count"] == 0
    delete_compute(api_client, namespace)


# -- 6. no renew storm ----------------------------------------------------------------------

EXPIRY_S = 10  # the site's session lifetime: far below the operator's renew margin (3600 s)
WINDOW_S = 40.0


def test_short_site_expiry_is_renewed_once_per_window_and_the_session_lives(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with knobs(sim, session_expiry_s=EXPIRY_S):
        setup(api_client, namespace, sim, NOTEBOOK_IMAGE, type="notebook")
        wait_for(
            "Compute Available",
            lambda: phase(api_client, namespace, "Compute", "c") == "Available",
            60,
        )
        sid = status_of(api_client, namespace)["launch"]["id"]
        route = f"{LAUNCH_ROUTE}/{sid}"
        renews_before = sim.stats(method="POST", route=route)["count"]
        polls_before = sim.stats(method="GET", route=route)["count"]
        started = time.monotonic()
        seen_phases: set[str | None] = set()
        seen_status: set[str] = set()
        while time.monotonic() - started < WINDOW_S:
            seen_phases.add(phase(api_client, namespace, "Compute", "c"))
            seen_status |= {s["status"] for s in sim.sessions() if s["id"] == sid} or {"gone"}
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        renews = sim.stats(method="POST", route=route)["count"] - renews_before
        polls = sim.stats(method="GET", route=route)["count"] - polls_before
        st = status_of(api_client, namespace)
    # The session was kept alive the whole window by its renewals.
    assert seen_phases == {"Available"}, (seen_phases, st.get("reason"), st.get("message"))
    assert seen_status == {"Running"}, seen_status
    # A renewal buys EXPIRY_S; renewing when half of it is left is one renew per EXPIRY_S / 2.
    window = EXPIRY_S / 2
    assert 1 <= renews <= elapsed / window + 2, (renews, polls, elapsed)
    assert st["renewals"] >= renews
    delete_compute(api_client, namespace)
