"""Campaign 2, platform faults: Skaha answers 5xx, hangs past the client timeout, sends 503 with
Retry-After, drops connections and commits launches it then reports as failed. Every Session
still reaches its phase, none is launched twice, and the extra Skaha calls stay bounded."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from tests.chaos.kit import (
    OperatorProc,
    Operators,
    Planned,
    Recorder,
    create,
    drawn_pending,
    event_texts,
    launch_check,
    metric,
    plan_sessions,
    platform_objects,
    release_all,
    secret_hits,
    settle,
    simulator,
)
from tests.chaos.report import Report
from tests.chaos.scale import Scale

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 8002
HTTP_TIMEOUT = 3.0  # the operator harness's --http-timeout
FAULTS: list[dict[str, Any]] = [
    {"route": "/skaha/*", "p_500": 0.2},
    {"route": "/skaha/*", "p_503": 0.05, "retry_after_s": 2},
    {"route": "/skaha/*", "hang_s": HTTP_TIMEOUT + 2, "p_hang": 0.05},
    {"route": "/skaha/*", "p_reset": 0.05},
    {"route": "/skaha/v1/session", "method": "POST", "fail_after_commit": 0.3},
]
# Under these faults a quarter to 3 in 10 of launches leave nothing (a 500 or 503 before the
# commit; docs/reliability.md measured 10 re-sent of 50), so the default budget of 6 attempts
# stalls a Compute LaunchLost once in 1,400-4,000 (p^6, reconcile/timing.py): with 8 Computes
# per fleet, about one run in 200-500. That stall is the product asking a person, as designed,
# and not what this campaign checks (nothing launched twice, every Session lands), so it gets 16
# attempts: 0.3^16 x 40 Computes = 2e-7 per run at full size. CI failed once without this: f007
# stalled after 6 launches that all left nothing.
LAUNCH_ATTEMPTS = 16


def _skaha_calls(op: OperatorProc, ops: Operators) -> float:
    return metric(ops.scrape(op), "skaha_requests_total", service="skaha")


def _run_fleet(
    api: client.ApiClient,
    ns: str,
    planned: list[Planned],
    op: OperatorProc,
    ops: Operators,
    timeout: float,
) -> float:
    """Create the fleet, let it settle, release it; the Skaha calls it cost, per Session."""
    before = _skaha_calls(op, ops)
    for p in planned:
        create(api, ns, p.body)
    settle(api, ns, planned, timeout)
    return (_skaha_calls(op, ops) - before) / len(planned)


def test_platform_faults_never_duplicate_and_cost_bounded_retries(
    api_client: client.ApiClient,
    namespace: str,
    controlplane: ControlPlane,
    scale: Scale,
    report: Report,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    report.campaign, report.seed = "Platform faults", SEED
    baseline_fleet = plan_sessions(rng, scale.fault_sessions, prefix="b")
    faulty_fleet = plan_sessions(rng, scale.fault_sessions, prefix="f")
    with (
        simulator(SEED) as p,
        drawn_pending(p.sim, SEED),
        Operators(
            controlplane, namespace, tmp_path, "--max-launch-attempts", str(LAUNCH_ATTEMPTS)
        ) as ops,
        Recorder(api_client, namespace, ("sessions", "computes", "dockercontainers")) as rec,
    ):
        for obj in platform_objects(p.url):
            create(api_client, namespace, obj)
        op = ops.start()
        op.wait_serving()
        baseline = _run_fleet(api_client, namespace, baseline_fleet, op, ops, scale.deadline)
        assert release_all(api_client, namespace, p.sim, scale.deadline) == []
        p.sim.set_faults(FAULTS)
        faulty = _run_fleet(api_client, namespace, faulty_fleet, op, ops, scale.deadline)
        launches = launch_check(p.sim, rec)
        # Release under the same faults: DELETEs fail and hang too.
        leaked = release_all(api_client, namespace, p.sim, scale.deadline)
        applied = p.sim.state.faults.rules
        assert op.alive(), "the operator died"
        text = ops.scrape(op)
        captured = {"operator logs": ops.logs(), "events": event_texts(api_client, namespace)}
        captured["metrics"] = text
    hits = secret_hits(captured)
    regressions = rec.regressions()
    by_code = {
        code: metric(text, "skaha_requests_total", service="skaha", code=code)
        for code in ("500", "503", "ReadTimeout", "RemoteProtocolError")
    }

    report.inject("Sessions per fleet (baseline fleet, then faulty fleet)", len(faulty_fleet))
    report.inject("Skaha 500", "20% of calls")
    report.inject("Skaha 503 + Retry-After: 2", "5% of calls")
    report.inject(f"hang {HTTP_TIMEOUT + 2:.0f} s (client timeout {HTTP_TIMEOUT:.0f} s)", "5%")
    report.inject("dropped connection after the reply started", "5% of calls")
    report.inject("launch committed, answered 500 (fail_after_commit)", "30% of launches")
    report.inject("launch attempts before a Compute stalls LaunchLost", LAUNCH_ATTEMPTS)
    report.check("Sessions in their expected phase", f"{len(faulty_fleet)}/{len(faulty_fleet)}")
    report.check("Skaha names launched more than once", len(launches["duplicate_names"]))
    report.check("Skaha sessions left after deleting everything", len(leaked))
    report.check("status moves against the transition tables", len(regressions))
    report.check(
        "secret occurrences in logs, Events, metrics, statuses", sum(hits.values()) + len(rec.leaks)
    )
    report.figures |= {
        "Skaha calls per Session, fault-free": round(baseline, 1),
        "Skaha calls per Session, with faults": round(faulty, 1),
        "faulty answers the operator saw (by code)": {k: int(v) for k, v in by_code.items()},
        "Skaha launches (both fleets)": launches["launches"],
        "launch POSTs by answer": {
            code: int(v)
            for code in ("200", "500", "503", "ReadTimeout", "RemoteProtocolError")
            if (
                v := metric(
                    text, "skaha_requests_total", method="POST", route="/v1/session", code=code
                )
            )
        },
        "launches adopted by name after an unknown outcome": launches["adopted"],
        "launches sent again after the grace period (same name)": launches["relaunched"],
        "fault rules": len(applied),
    }

    assert launches["duplicate_names"] == {}
    assert launches["computes_with_many_ids"] == {}
    assert launches["launched_computes"] == 2 * scale.fault_sessions
    assert leaked == []
    assert regressions == []
    assert hits == {}
    assert rec.leaks == []
    # Every fault kind actually happened.
    assert all(v > 0 for v in by_code.values()), by_code
    # Retries are bounded: faults cost extra calls, but not without limit.
    assert faulty < 4 * baseline, (baseline, faulty)
