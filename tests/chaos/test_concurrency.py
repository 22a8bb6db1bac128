"""Campaign 4, concurrency: two operator processes on the same objects while spec edits,
cancellations and deletions race their reconciles. The guarded writes refuse the losers (409/422,
counted by `cas_conflicts_total`), and still no transition is lost or regressed and no Skaha
session is launched twice or left behind."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from tests.chaos.kit import (
    Kind,
    Operators,
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
    settle_to,
    simulator,
)
from tests.chaos.report import Report
from tests.chaos.scale import Scale

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 8004
MIX = (Kind.NOTEBOOK, Kind.SERVICE, Kind.JOB, Kind.NOTEBOOK, Kind.SERVICE)


def _patch(custom: client.CustomObjectsApi, ns: str, plural: str, name: str, body: dict) -> bool:
    """Merge-patch an object; False when it is already gone."""
    try:
        custom.patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name, body)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_two_operators_racing_edits_cancels_and_deletes(
    api_client: client.ApiClient,
    namespace: str,
    controlplane: ControlPlane,
    scale: Scale,
    report: Report,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    report.campaign, report.seed = "Concurrency", SEED
    planned = plan_sessions(rng, scale.concurrency_sessions, mix=MIX)
    long_lived = [p.name for p in planned if p.kind in {Kind.NOTEBOOK, Kind.SERVICE}]
    cut = max(1, len(long_lived) // 4)
    cancelled, deleted = set(long_lived[:cut]), set(long_lived[cut : 2 * cut])
    expected: dict[str, str | None] = {p.name: p.expected for p in planned}
    expected |= dict.fromkeys(cancelled, "Cancelled") | dict.fromkeys(deleted, None)
    custom = client.CustomObjectsApi(api_client)
    # Which race step cancels or deletes which Session: spread over the edits.
    targets = [("cancel", n) for n in sorted(cancelled)] + [("delete", n) for n in sorted(deleted)]
    actions = dict(zip(rng.sample(range(scale.edits), len(targets)), targets, strict=True))
    done = {"spec edits": 0, "annotation edits": 0, "cancel": 0, "delete": 0}
    with (
        simulator(SEED) as p,
        drawn_pending(p.sim, SEED),
        # Election off: both replicas step every object, so the guarded writes are what keeps
        # them apart (with election on they would split the objects by shard instead).
        Operators(controlplane, namespace, tmp_path, "--no-election") as ops,
        Recorder(api_client, namespace, ("sessions", "computes", "dockercontainers")) as rec,
    ):
        for obj in platform_objects(p.url):
            create(api_client, namespace, obj)
        first, second = ops.start(), ops.start()
        first.wait_serving()
        second.wait_serving()
        for planned_session in planned:
            create(api_client, namespace, planned_session.body)
        for step in range(scale.edits):
            name = rng.choice(planned).name
            if step in actions:
                what, name = actions[step]
                if what == "cancel":
                    _patch(custom, namespace, "sessions", name, {"spec": {"cancel": True}})
                else:
                    custom.delete_namespaced_custom_object(
                        GROUP, VERSION, namespace, "sessions", name
                    )
                done[what] += 1
            elif rng.random() < 0.5:
                # A spec edit bumps the generation and the resourceVersion under the reconcile.
                edit = {"spec": {"schedule": {"maxPolls": rng.randint(500, 1000)}}}
                done["spec edits"] += _patch(custom, namespace, "computes", f"{name}-compute", edit)
            else:
                edit = {"metadata": {"annotations": {"chaos/step": str(step)}}}
                done["annotation edits"] += _patch(custom, namespace, "sessions", name, edit)
            time.sleep(rng.uniform(0.0, 0.4))
        final = settle_to(api_client, namespace, expected, scale.deadline)
        launches = launch_check(p.sim, rec)
        conflicts = {
            f"operator {i}": metric(ops.scrape(op), "cas_conflicts_total")
            for i, op in enumerate((first, second))
        }
        leaked = release_all(api_client, namespace, p.sim, scale.deadline)
        assert first.alive()
        assert second.alive()
        captured = {"operator logs": ops.logs(), "events": event_texts(api_client, namespace)}
        captured["metrics"] = "\n".join(ops.scraped)
    hits = secret_hits(captured)
    regressions = rec.regressions()

    report.inject("operator processes at once", 2)
    report.inject("Sessions", len(planned))
    report.inject("Compute spec edits (generation bumps) racing the reconcile", done["spec edits"])
    report.inject("Session annotation edits (resourceVersion bumps)", done["annotation edits"])
    report.inject("cancels mid-flight", done["cancel"])
    report.inject("deletions mid-flight", done["delete"])
    report.check(
        "Sessions in their expected phase (cancelled: Cancelled, deleted: gone)",
        f"{sum(final.get(n) == w for n, w in expected.items())}/{len(expected)}",
    )
    report.check("Skaha names launched more than once", len(launches["duplicate_names"]))
    report.check("Skaha sessions left after deleting everything", len(leaked))
    report.check("status moves against the transition tables", len(regressions))
    report.check(
        "secret occurrences in logs, Events, metrics, statuses", sum(hits.values()) + len(rec.leaks)
    )
    report.figures |= {
        "guarded writes refused (cas_conflicts_total)": {k: int(v) for k, v in conflicts.items()},
        "phase transitions recorded": rec.transitions(),
        "Skaha launches": launches["launches"],
    }

    assert done["cancel"] == len(cancelled)
    assert done["delete"] == len(deleted)
    assert launches["duplicate_names"] == {}
    assert launches["computes_with_many_ids"] == {}
    assert launches["unknown_launches"] == []
    assert leaked == []
    assert regressions == []
    assert hits == {}
    assert rec.leaks == []
    # The race was real: the guarded writes refused someone.
    assert sum(conflicts.values()) > 0
