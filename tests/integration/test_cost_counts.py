"""What a Session costs on the happy path, counted: API writes from the API server's own
`apiserver_request_total`, Skaha calls from the operator's `skaha_requests_total` and the Computes'
poll counts. Counts only, never times (docs/performance.md has the figures and the floor).

The floor per Session is 14 writes (3 creates, 6 guarded status writes, 5 Events) and 2 Skaha
calls (one launch, one poll). Measured here (issue 15): 14 writes (the finalizer PATCH of the
Session, 3 creates, Session status 2, Compute status 2, DockerContainer status 1, 5 Events), no
GET, 2 Skaha calls plus a shared image list. The bounds leave one write per Session of slack for
the timing-dependent ones on a loaded machine: a Session's progress written between its first
status and Running (paced at 5 s), a new Compute's "waiting for its parts" (held back for 5 s).
Releasing them afterwards costs one DELETE each and at most one Skaha listing per Session. With
the chart's finalizer policy (Kubernetes 1.36, docs/design.md §4.6) the API server adds the
finalizer in the create: 13 writes, one under the floor's count.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.happy_path import session
from bench.measure import WRITE_VERBS, ApiCost, ApiSnapshot, operator_calls, reconciles
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.kit import install_finalizer_policy, remove_finalizer_policy
from skaha_operator.controlplane.processes import free_port
from skaha_operator.runtime.resync import offset
from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import (
    create,
    operator_process,
    phase,
    platform_objects,
    wait_for,
)

pytestmark = pytest.mark.integration

N = 5
FLOOR_WRITES = 14
# The production timings (CLI defaults), not the tests' short ones: they decide the poll count.
TIMINGS = ("--poll-base", "1", "--poll-cap", "30", "--resync", "60", "--adopt-grace", "90")


@pytest.fixture(scope="module")
def zero_latency_sim() -> Iterator[Simulator]:
    """Sessions start at once and run for an hour: the happy path with zero latency."""
    simulator = Simulator(SimulatorConfig(tokens={"tok-alice": "alice"}, pending_s=0.0, run_s=3600))
    handle = simulator.start_in_thread()
    simulator.base_url = handle.base_url  # type: ignore[attr-defined]
    try:
        yield simulator
    finally:
        handle.stop()
        simulator.close()


@pytest.fixture
def policy(
    request: pytest.FixtureRequest, api_client: client.ApiClient, crds: list[str], namespace: str
) -> Iterator[bool]:
    """With the chart's finalizer policy bound to the test's namespace (Kubernetes 1.36), or not."""
    on, name = bool(request.param), f"test-cost-{uuid.uuid4().hex[:6]}"
    if on:
        install_finalizer_policy(api_client, name, [namespace])
    try:
        yield on
    finally:
        if on:
            remove_finalizer_policy(api_client, name)


def _quiet(cp: ControlPlane, timeout: float = 60.0) -> ApiSnapshot:
    """The counters once no write has landed for two seconds (trailing Events, summaries)."""
    deadline = time.monotonic() + timeout
    last = ApiSnapshot.take(cp)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = ApiSnapshot.take(cp)
        if ApiCost.between(last, now).per(1, WRITE_VERBS) == 0:
            return now
        last = now
    raise AssertionError(f"API writes did not stop within {timeout}s")


def _items(api: client.ApiClient, ns: str, plural: str) -> list[dict[str, Any]]:
    got = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, ns, plural)
    items: list[dict[str, Any]] = got["items"]
    return items


def _wait_platform(api: client.ApiClient, ns: str) -> None:
    wait_for(
        "the platform probe",
        lambda: phase(api, ns, "SkahaPlatform", "local") == "Available",
        timeout=90,
    )


def _wait_running(api: client.ApiClient, ns: str, n: int, timeout: float) -> None:
    def all_running() -> bool:
        items = _items(api, ns, "sessions")
        return len(items) == n and all(
            (s.get("status") or {}).get("phase") == "Running" for s in items
        )

    wait_for(f"{n} Sessions Running", all_running, timeout=timeout)


@pytest.mark.parametrize("policy", [False, True], ids=["own-patch", "policy"], indirect=True)
def test_happy_path_costs_per_session(
    controlplane: ControlPlane,
    api_client: client.ApiClient,
    crds: list[str],
    namespace: str,
    zero_latency_sim: Simulator,
    tmp_path: Path,
    policy: bool,
) -> None:
    """Without the finalizer policy the operator adds its finalizer to each Session with a PATCH;
    with it (docs/design.md §4.6) the API server does in the create, and the PATCH is gone."""
    for obj in platform_objects(namespace, zero_latency_sim.base_url):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    # Plain HTTP: a secure endpoint would add TokenReviews to the API calls counted here.
    extra = ("-n", namespace, "--metrics-port", str(port), "--metrics-address", "127.0.0.1")
    extra += ("--metrics-insecure",)
    with operator_process(controlplane, tmp_path / "operator.log", *TIMINGS, *extra) as proc:
        _wait_platform(api_client, namespace)
        before = _quiet(controlplane)
        calls_before = operator_calls(url)
        for i in range(N):
            create(api_client, namespace, session(f"s{i}"))

        _wait_running(api_client, namespace, N, timeout=120)
        calls = operator_calls(url) - calls_before
        after = _quiet(controlplane)
        computes = _items(api_client, namespace, "computes")  # their poll counts, kept
        # Then release them all: what deleting costs at Skaha (counted apart from the above).
        release_before = operator_calls(url)
        for i in range(N):
            client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "sessions", f"s{i}"
            )
        wait_for(
            "Sessions and parts gone",
            lambda: (
                not any(
                    _items(api_client, namespace, p)
                    for p in ("sessions", "computes", "dockercontainers")
                )
            ),
            timeout=120,
        )
        released = operator_calls(url) - release_before
        assert proc.poll() is None, (tmp_path / "operator.log").read_text()[-3000:]
    cost = ApiCost.between(before, after)
    polls = sum((c.get("status") or {}).get("polls") or 0 for c in computes)
    launches = sum(v for (m, r, _), v in calls.items() if m == "POST" and r == "/v1/session")
    images = sum(v for (m, route, _), v in calls.items() if route == "/v1/image")
    table = cost.table(N)

    # Writes: the floor's 14 (13 with the policy), plus at most one timing-dependent write per
    # Session.
    ours = 0 if policy else 1  # the finalizer PATCH
    assert cost.per(N, WRITE_VERBS) <= FLOOR_WRITES - 1 + ours + 1, table
    for resource in ("computes", "dockercontainers"):
        assert cost.delta[("PATCH", resource)] == 0, table  # finalizer at create, no annotations
    assert cost.delta[("PATCH", "sessions")] == ours * N, table  # only our finalizer
    assert cost.delta[("POST", "events")] == 5 * N, table  # one per transition, no more
    assert cost.delta[("POST", "computes")] == N, table
    assert cost.delta[("POST", "dockercontainers")] == N, table
    assert cost.delta[("PATCH", "dockercontainers/status")] == N, table  # Available
    # The marker, then the id with Running (the first look after the POST sees it Running).
    assert cost.delta[("PATCH", "computes/status")] <= 2 * N + 1, table
    # The first status, then Running: progress in between only when slower than 5 s.
    assert cost.delta[("PATCH", "sessions/status")] <= 3 * N, table
    # Reads: observed objects come from the watch-fed cache and from what the creates returned
    # (LISTs are this test's own polling); a GET is only a conflict's re-read.
    assert cost.per(N, frozenset({"GET"})) <= 0.5, table
    # Skaha: one launch each, one shared image list, one look each (Running at once).
    assert launches == N, calls
    assert images <= 2, calls
    assert polls <= N + 1, (calls, polls)
    assert (launches + images + polls) / N <= 2.5, (calls, polls)
    # Release: one DELETE each, and at most one Skaha listing per Session (a launch sent once
    # with its id recorded needs none: nothing else can carry its name).
    listings = sum(v for (m, r, _), v in released.items() if (m, r) == ("GET", "/v1/session"))
    assert sum(v for (m, r, _), v in released.items() if m == "DELETE") == N, released
    assert listings <= N, released


RESTART_N = 20


def _looks(url: str) -> int:
    """The operator's looks at one Skaha session by id so far."""
    return sum(v for (m, r, _), v in operator_calls(url).items() if (m, r) == LOOK)


LOOK = ("GET", "/v1/session/{id}")


def test_a_restart_reads_nothing_and_writes_nothing(
    controlplane: ControlPlane,
    api_client: client.ApiClient,
    crds: list[str],
    namespace: str,
    zero_latency_sim: Simulator,
    tmp_path: Path,
) -> None:
    """A fresh operator with Sessions present steps every object once from the watch-fed cache.

    Every kind is listed at start-up before the first step (runtime/watch.py), so no Session
    reads its parts, and no Compute its platform, with a GET. Before, a Session
    stepped before its parts' list had arrived read each with a GET (about 2 per Session).

    Nor does it look at every running Compute's Skaha session at once: each first look waits for
    its own moment within the poll cap (controllers/first_look.py). Before, the resume sent one
    GET per running Compute in its first steps (1,000 together at N = 1000).
    """
    for obj in platform_objects(namespace, zero_latency_sim.base_url):  # type: ignore[attr-defined]
        create(api_client, namespace, obj)
    base = ("-n", namespace, "--metrics-address", "127.0.0.1", "--metrics-insecure", *TIMINGS)
    first = ("--metrics-port", str(free_port()))
    with operator_process(controlplane, tmp_path / "first.log", *base, *first):
        _wait_platform(api_client, namespace)
        for i in range(RESTART_N):
            create(api_client, namespace, session(f"r{i}"))

        _wait_running(api_client, namespace, RESTART_N, timeout=180)
        _quiet(controlplane)
    before = ApiSnapshot.take(controlplane)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    # Each running Compute's first look waits for its moment within the poll cap (30 s), counted
    # from when the operator listed it, which is after `started`.
    moments = sorted(offset(("computes", namespace, c["metadata"]["name"]), 30.0)
                     for c in _items(api_client, namespace, "computes"))  # fmt: skip
    started = time.monotonic()
    with operator_process(
        controlplane, tmp_path / "second.log", *base, "--metrics-port", str(port)
    ) as proc:

        def stepped() -> bool:
            try:
                seen = reconciles(url)
            except OSError:
                return False
            return all(seen[k] >= RESTART_N for k in ("Session", "Compute", "DockerContainer"))

        wait_for("every object stepped after the restart", stepped, timeout=120)
        looked, elapsed = _looks(url), time.monotonic() - started
        due = sum(1 for m in moments if m <= elapsed)
        # Not all at once (before: one look per Compute in the resume's first steps).
        assert due < RESTART_N, f"every moment passed before the check ({elapsed:.1f}s)"
        assert looked <= due, f"{looked} looks, {due} due {elapsed:.1f}s after the start"
        after = _quiet(controlplane)
        # And each does look, once its moment comes.
        wait_for("every running Compute looked", lambda: _looks(url) >= RESTART_N, timeout=90)
        assert proc.poll() is None, (tmp_path / "second.log").read_text()[-3000:]
    cost = ApiCost.between(before, after)
    table = cost.table(RESTART_N)
    assert cost.per(RESTART_N, WRITE_VERBS) <= 0.1, table  # Leases and the platform's probe
    assert cost.delta[("GET", "sessions")] == 0, table
    assert cost.delta[("GET", "computes")] == 0, table
    assert cost.delta[("GET", "dockercontainers")] == 0, table
    # The platform's own step reads it fresh once per process before holding its Secrets.
    assert cost.delta[("GET", "skahaplatforms")] <= 1, table
    # The token Secret is read once for the platform's clients (every Compute step after the
    # restart waits for that one read), once by its probe and once to hold it: not per Session.
    assert cost.delta[("GET", "secrets")] <= 4, table
