"""Campaign, deletions in flight: Sessions are deleted at seeded random moments while Skaha answers
late, commits late and lists late, and a whole namespace is deleted (kube-controller-manager
running) in the middle of its launches. Checked by the simulator's launch log: nothing is left
live at Skaha after everything is deleted, no finalizer is left behind, and at steady state no
name has two live sessions.

Each launch POST falls in a window drawn (seeded) from: answered at once; answered 2 s late
(in flight, inside the operator's 3 s client timeout); answered after the timeout (committed at
once, no id); connection dropped and committed 3.5 s later; client timeout and committed 4.5 s
later. Listings lag 1 s behind commits throughout. The operator's adopt grace is 8 s, longer than
any commit delay plus the listing lag, as it must be on a real site.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.simulator import Simulator
from tests.chaos.kit import (
    Operators,
    Recorder,
    create,
    event_texts,
    items,
    phases,
    plan_sessions,
    platform_objects,
    secret_hits,
    settle_to,
    simulator,
)
from tests.chaos.report import Report
from tests.chaos.scale import Scale
from tests.integration.conftest import ROOT
from tests.integration.operator_harness import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 8008
LAUNCH = "/skaha/v1/session"
LIVE = frozenset({"Pending", "Running", "Terminating"})
ADOPT_GRACE = 8.0
LIST_LAG = 1.0
# window name -> fault rule on the launch POST (None: answered at once)
WINDOWS: dict[str, dict[str, Any] | None] = {
    "answered at once": None,
    "answer 2 s late (in flight)": {"answer_delay_s": 2.0},
    "answer after the client timeout": {"answer_delay_s": 5.0},
    "dropped, commits 3.5 s later": {"commit_delay_s": 3.5, "p_reset": 1.0},
    "client timeout, commits 4.5 s later": {"commit_delay_s": 4.5},
}
LONGEST = 5.0 + LIST_LAG
NAMESPACE_GONE_S = 90.0
TARGET_WAIT = 15.0  # a targeted delete waits this long for its launch to be open
# (Sessions in the namespace whose Sessions are deleted one by one, of which kept to the end;
#  Sessions in the namespace deleted as a whole)
SIZES = {"ci": (14, 4, 6), "full": (48, 12, 24)}


@contextmanager
def rotating_windows(sim: Simulator, rng: random.Random, every: float = 0.4) -> Iterator[Counter]:
    """Every `every` seconds draw the window the next launches fall in (the listing lag stays)."""
    drawn: Counter[str] = Counter()
    stop = threading.Event()
    lag = {"route": LAUNCH, "method": "GET", "list_lag_s": LIST_LAG}

    def run() -> None:
        while not stop.is_set():
            name = rng.choice(list(WINDOWS))
            rule = WINDOWS[name]
            drawn[name] += 1
            rules = [lag] + ([{"route": LAUNCH, "method": "POST", **rule}] if rule else [])
            sim.set_faults(rules)
            stop.wait(every)

    thread = threading.Thread(target=run, name="launch-windows", daemon=True)
    thread.start()
    try:
        yield drawn
    finally:
        stop.set()
        thread.join(timeout=5)
        sim.set_faults([lag])


def live_by_name(sim: Simulator) -> dict[str, list[str]]:
    """Skaha name -> ids of its live sessions (the campaign's simulator serves only it)."""
    out: dict[str, list[str]] = {}
    for s in sim.sessions():
        if s["status"] in LIVE:
            out.setdefault(s["name"], []).append(s["id"])
    return out


def moment(api: client.ApiClient, ns: str, sim: Simulator, session: str) -> str:
    """Where the Session's launch stands now."""
    body = next(
        (c for c in items(api, ns, "computes") if c["metadata"]["name"] == f"{session}-compute"),
        None,
    )
    return stood(body, sim.launches())


def stood(body: dict[str, Any] | None, launches: list[dict[str, Any]]) -> str:
    """Where a Compute's launch stands, from its body and the simulator's launch log."""
    if body is None:
        return "before its Compute existed"
    launch = (body.get("status") or {}).get("launch") or {}
    tag = body["metadata"]["uid"].replace("-", "").lower()[:32]
    mine = [d for d in launches if tag in d["name"]]
    if not launch.get("pendingSince"):
        return "before the launch"
    if any(not d["committed"] for d in mine):
        return "launch not yet committed"
    if not launch.get("id"):
        return "launch sent, id not recorded"
    phase = (body.get("status") or {}).get("phase")
    return "launched, usable" if phase in {"Available", "Running"} else "launched, preparing"


def is_open(body: dict[str, Any] | None, launches: list[dict[str, Any]]) -> bool:
    """A Compute whose launch is open: sent without an id yet, or not committed at Skaha."""
    if body is None:
        return False
    launch = (body.get("status") or {}).get("launch") or {}
    if launch.get("pendingSince") and not launch.get("id"):
        return True
    tag = body["metadata"]["uid"].replace("-", "").lower()[:32]
    return any(tag in d["name"] and not d["committed"] for d in launches)


def delete_one_by_one(
    api: client.ApiClient,
    ns: str,
    sim: Simulator,
    created: dict[str, float],
    when: dict[str, float],
    targeted: set[str],
) -> Counter[str]:
    """Delete each Session of `when` at its drawn moment after creation, or, when `targeted`,
    as soon as its launch is open; where each launch stood at its delete."""
    at_delete: Counter[str] = Counter()
    custom = client.CustomObjectsApi(api)
    pending = dict(when)
    deadline = time.monotonic() + 60.0 + len(when)
    while pending and time.monotonic() < deadline:
        now = time.monotonic()
        computes = {c["metadata"]["name"]: c for c in items(api, ns, "computes")}
        launches = sim.launches()
        for name in sorted(pending):
            if name in targeted:
                body = computes.get(f"{name}-compute")
                due = is_open(body, launches) or now > created[name] + TARGET_WAIT
            else:
                due = now >= created[name] + pending[name]
            if due:
                at_delete[moment(api, ns, sim, name)] += 1
                custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "sessions", name)
                del pending[name]
        time.sleep(0.05)
    assert not pending, f"not deleted in time: {sorted(pending)}"
    return at_delete


def with_finalizers(api: client.ApiClient, ns: str) -> list[str]:
    """Objects (ours and Secrets) in `ns` that still carry a finalizer."""
    found = [
        f"{plural}/{o['metadata']['name']}"
        for plural in ("sessions", "computes", "dockercontainers", "skahaplatforms")
        for o in items(api, ns, plural)
        if o["metadata"].get("finalizers")
    ]
    found += [
        f"secret/{s.metadata.name}"
        for s in client.CoreV1Api(api).list_namespaced_secret(ns).items
        if s.metadata.finalizers
    ]
    return found


def gone(api: client.ApiClient, ns: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(ns)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@pytest.fixture
def kcm() -> Iterator[tuple[ControlPlane, client.ApiClient]]:
    """A control plane of its own with kube-controller-manager (namespace finalization)."""
    from skaha_operator.controlplane.kit import install_crds

    with ControlPlane(controller_manager=True) as cp:
        config = client.Configuration()
        config.host = cp.server
        config.ssl_ca_cert = str(cp.ca_file)
        config.api_key = {"authorization": f"Bearer {cp.token}"}
        with client.ApiClient(config) as api:
            install_crds(api, sorted((ROOT / "crds").glob("*.yaml")))
            yield cp, api


def test_deletions_in_flight_leave_nothing_live_and_no_duplicates(
    kcm: tuple[ControlPlane, client.ApiClient], scale: Scale, report: Report, tmp_path: Path
) -> None:
    cp, api = kcm
    rng = random.Random(SEED)
    report.campaign, report.seed = "Deletions in flight", SEED
    count, kept_count, ns_count = SIZES.get(scale.name, SIZES["ci"])
    ns_a, ns_b = (f"c-inflight-{k}-{uuid.uuid4().hex[:6]}" for k in ("one", "all"))
    core = client.CoreV1Api(api)
    for ns in (ns_a, ns_b):
        core.create_namespace({"metadata": {"name": ns}})
    fleet = plan_sessions(rng, count, prefix="d")
    kept = {p.name for p in rng.sample(fleet, kept_count)}
    # Delete at a moment drawn from the first 12 s of each Session's life: before its launch,
    # inside the answer and commit windows, or after it became usable.
    when = {p.name: rng.uniform(0.0, 12.0) for p in fleet if p.name not in kept}
    # Half of them are deleted the moment their launch is open instead (marker without an id,
    # or committed later than it was sent).
    targeted = set(rng.sample(sorted(when), len(when) // 2))
    fleet_b = plan_sessions(rng, ns_count, prefix="n")
    custom = client.CustomObjectsApi(api)
    at_delete_b: Counter[str] = Counter()
    with (
        simulator(SEED, faults=[{"route": LAUNCH, "method": "GET", "list_lag_s": LIST_LAG}]) as p,
        Operators(cp, ns_a, tmp_path, "--adopt-grace", str(ADOPT_GRACE)) as ops,
        Recorder(api, ns_a, ("sessions", "computes", "dockercontainers")) as rec,
    ):
        for ns in (ns_a, ns_b):
            for obj in platform_objects(p.url):
                create(api, ns, obj)
        op = ops.start("-n", ns_b)
        op.wait_serving()
        with rotating_windows(p.sim, random.Random(f"{SEED}-windows")) as drawn:
            # -- one by one: every Session created, most deleted at their drawn moment ---------
            created: dict[str, float] = {}
            for planned in fleet:
                create(api, ns_a, planned.body)
                created[planned.name] = time.monotonic()
                time.sleep(rng.uniform(0.0, 0.4))
            at_delete = delete_one_by_one(api, ns_a, p.sim, created, when, targeted)

            # -- a whole namespace deleted in the middle of its launches -------------------
            for planned in fleet_b:
                create(api, ns_b, planned.body)
                time.sleep(rng.uniform(0.2, 0.8))

            def snapshot() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
                return items(api, ns_b, "computes"), p.sim.launches()

            def any_open() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
                computes, launches = snapshot()
                return (computes, launches) if any(is_open(c, launches) for c in computes) else None

            try:  # the namespace goes the moment one of its launches is open
                computes_b, launches_b = wait_for("an open launch", any_open, TARGET_WAIT, 0.05)
            except AssertionError:  # none opened in time: delete anyway
                computes_b, launches_b = snapshot()
            at_delete_b.update(stood(c, launches_b) for c in computes_b)
            core.delete_namespace(ns_b)
            ns_deleted = time.monotonic()
            wait_for(f"namespace {ns_b} gone", lambda: gone(api, ns_b), NAMESPACE_GONE_S, 0.5)
            ns_took = time.monotonic() - ns_deleted

        # -- steady state in the first namespace ------------------------------------------
        wait_for(
            "the deleted Sessions gone",
            lambda: not set(when) & set(phases(api, ns_a)),
            scale.deadline,
            every=0.5,
        )
        settle_to(api, ns_a, {p.name: p.expected for p in fleet if p.name in kept}, scale.deadline)
        time.sleep(ADOPT_GRACE + LONGEST)  # every window closed, every sweep due
        steady = live_by_name(p.sim)
        doubles = {n: ids for n, ids in steady.items() if len(ids) > 1}
        kept_live = {
            p.name for p in fleet if p.name in kept and p.expected in {"Available", "Running"}
        }
        live_computes = len(steady)
        # -- delete everything left, platform and Secret included --------------------------
        for name in phases(api, ns_a):
            custom.delete_namespaced_custom_object(GROUP, VERSION, ns_a, "sessions", name)
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns_a, "skahaplatforms", "local")
        core.delete_namespaced_secret("skaha-token", ns_a)
        with contextlib.suppress(AssertionError):  # what is left is counted just below
            wait_for(
                "everything in the first namespace gone",
                lambda: (
                    not any(
                        items(api, ns_a, pl)
                        for pl in ("sessions", "computes", "dockercontainers", "skahaplatforms")
                    )
                    and not core.list_namespaced_secret(
                        ns_a, field_selector="metadata.name=skaha-token"
                    ).items
                ),
                scale.deadline,
                every=0.5,
            )
        finalizers_left = with_finalizers(api, ns_a)
        time.sleep(LONGEST)
        leaked = live_by_name(p.sim)
        launched = p.sim.launches()
        unresolved = [d["id"] for d in launched if not d["committed"]]
        assert op.alive(), "the operator died"
        captured = {
            "operator logs": ops.logs(),
            "events": event_texts(api, ns_a),
            "metrics": ops.scrape(op),
        }
    hits = secret_hits(captured)
    regressions = rec.regressions()
    per_name = Counter(d["name"] for d in launched)

    report.inject(
        "Sessions deleted one by one: at a drawn moment 0-12 s after creation / as soon as "
        "their launch was open",
        f"{len(when) - len(targeted)} / {len(targeted)}",
    )
    report.inject("Sessions kept to the end", len(kept))
    report.inject("Sessions in a namespace deleted as a whole (controller manager)", len(fleet_b))
    report.inject("launch windows drawn every 0.4 s", dict(drawn))
    report.inject("listing lag", f"{LIST_LAG:.0f} s on every GET {LAUNCH}")
    report.check("Skaha sessions live after everything was deleted", sum(map(len, leaked.values())))
    report.check("launches still uncommitted at the end", len(unresolved))
    report.check("finalizers left after deleting everything", len(finalizers_left))
    report.check("names with two live sessions at steady state", len(doubles))
    report.check(
        f"namespace deleted as a whole gone within {NAMESPACE_GONE_S:.0f} s", f"{ns_took:.0f} s"
    )
    report.check("status moves against the transition tables", len(regressions))
    report.check(
        "secret occurrences in logs, Events, metrics, statuses", sum(hits.values()) + len(rec.leaks)
    )
    report.figures |= {
        "where each deleted Session's launch stood": dict(at_delete),
        "where the launches stood when their namespace was deleted": dict(at_delete_b),
        "Skaha launches (both namespaces)": len(launched),
        "names launched more than once (re-sent after the grace)": sum(
            1 for c in per_name.values() if c > 1
        ),
        "live sessions of the kept Sessions at steady state": live_computes,
    }

    assert leaked == {}
    assert unresolved == []
    assert finalizers_left == []
    assert doubles == {}
    assert live_computes == len(kept_live)
    assert regressions == []
    assert hits == {}
    assert rec.leaks == []
    # The campaign hit what it is about: deletes inside open launches, a namespace with some.
    opened = ("launch not yet committed", "launch sent, id not recorded")
    assert sum(at_delete[k] for k in opened) > 0, at_delete
