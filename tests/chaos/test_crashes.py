"""Campaign 1, operator crashes: SIGKILL the operator at seeded random moments and restart it
while Sessions move through their lifecycles; nothing is lost, launched twice or regressed."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from tests.chaos.kit import (
    Operators,
    Recorder,
    create,
    drawn_pending,
    event_texts,
    items,
    launch_check,
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

SEED = 8001
PLURALS = ("sessions", "computes", "dockercontainers")


def test_operator_killed_and_restarted_loses_nothing(
    api_client: client.ApiClient,
    namespace: str,
    controlplane: ControlPlane,
    scale: Scale,
    report: Report,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    report.campaign, report.seed = "Operator crashes", SEED
    planned = plan_sessions(rng, scale.crash_sessions)
    batches = [planned[i :: scale.crash_kills] for i in range(scale.crash_kills)]
    kills = in_flight = 0
    with (
        simulator(SEED, faults=[{"route": "/skaha/*", "latency_ms": 20, "jitter_ms": 200}]) as p,
        drawn_pending(p.sim, SEED),
        Operators(controlplane, namespace, tmp_path) as ops,
        Recorder(api_client, namespace, PLURALS) as rec,
    ):
        for obj in platform_objects(p.url):
            create(api_client, namespace, obj)
        op = ops.start()
        # Each round adds a batch of Sessions, then kills the operator at a random moment, so
        # the kills land on every stage: start-up, launch, adoption, polling, release.
        for batch in batches:
            for planned_session in batch:
                create(api_client, namespace, planned_session.body)
            time.sleep(rng.uniform(1.0, 8.0))
            in_flight += any(
                (c.get("status") or {}).get("launch", {}).get("pendingSince")
                and not (c.get("status") or {}).get("launch", {}).get("id")
                for c in items(api_client, namespace, "computes")
            )
            ops.kill(op)
            kills += 1
            time.sleep(rng.uniform(0.0, 1.0))
            op = ops.start()
        final = settle(api_client, namespace, planned, scale.deadline)
        launches = launch_check(p.sim, rec)
        leaked = release_all(api_client, namespace, p.sim, scale.deadline)
        assert op.alive(), "the last operator died"
        captured = {
            "operator logs": ops.logs(),
            "events": event_texts(api_client, namespace),
            "metrics": ops.scrape(op),
        }
    regressions = rec.regressions()
    hits = secret_hits(captured)

    report.inject("SIGKILLs of the operator (restarted each time)", kills)
    report.inject("Sessions (notebook, job, failing job, long job)", len(planned))
    report.inject("Skaha latency", "20-220 ms per call; Pending drawn lognormal, median 1.5 s")
    report.check("Sessions in their expected phase", f"{len(final)}/{len(planned)}")
    report.check("Skaha names launched more than once", len(launches["duplicate_names"]))
    report.check(
        "Computes that saw more than one session id", len(launches["computes_with_many_ids"])
    )
    report.check("Skaha sessions left after deleting everything", len(leaked))
    report.check("status moves against the transition tables", len(regressions))
    report.check(
        "secret occurrences in logs, Events, metrics, statuses",
        sum(hits.values()) + len(rec.leaks),
    )
    report.figures |= {
        "operator processes": len(ops.started),
        "kills that hit a launch not yet recorded": in_flight,
        "Skaha launches": launches["launches"],
        "phase transitions recorded": rec.transitions(),
        "watch reconnects": rec.reconnects,
    }

    assert all(final[s.name] == s.expected for s in planned)
    assert kills == scale.crash_kills
    assert launches["duplicate_names"] == {}
    assert launches["computes_with_many_ids"] == {}
    assert launches["unknown_launches"] == []
    # Failing and completing jobs launched too: every Compute launched exactly once.
    assert launches["launched_computes"] == len(planned)
    assert leaked == []
    assert regressions == []
    assert rec.gaps == 0
    assert hits == {}
    assert rec.leaks == []
