"""Campaign 5, bad data: a download URL that answers 404 and a download far too large for its
deadline each end with their cause, the large one's Skaha job is stopped (not left running), and a
healthy Session with data in the same namespace becomes usable meanwhile."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from tests.chaos.kit import (
    Kind,
    Operators,
    Recorder,
    create,
    event_texts,
    items,
    lingering,
    platform_objects,
    release_all,
    secret_hits,
    session_body,
    settle_to,
    simulator,
)
from tests.chaos.report import Report
from tests.chaos.scale import Scale
from tests.integration.operator_harness import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 8006
PAYLOAD = "SIMPLE  = T / chaos campaign input\nEND\n"
# The large download: its job runs an hour on the "slow" platform (a 5 GB file at ~1.4 MB/s).
SLOW_JOB_S = 3600.0


def _with_data(body: dict[str, Any], url: str, checksum: str | None = None) -> dict[str, Any]:
    name = body["metadata"]["name"]
    http: dict[str, Any] = {"url": url, "allowInsecure": True}
    if checksum:
        http["checksum"] = checksum
    body["spec"]["storages"] = [
        {
            "name": "work",
            "template": {"area": "home", "path": f"chaos/{name}", "releasePolicy": "Delete"},
        }
    ]
    body["spec"]["data"] = [
        {
            "name": "input",
            "template": {"storageRef": "work", "path": "in/input.fits", "http": http},
        }
    ]
    return body


def test_bad_downloads_fail_clearly_while_a_healthy_one_is_used(
    api_client: client.ApiClient,
    namespace: str,
    controlplane: ControlPlane,
    scale: Scale,
    report: Report,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    report.campaign, report.seed = "Bad data", SEED
    ns = namespace
    digest = "sha256:" + hashlib.sha256(PAYLOAD.encode()).hexdigest()
    files = {"chaos/input.fits": PAYLOAD}
    with (
        simulator(SEED, files=files, job_run_s=2.0) as p,
        simulator(SEED + 1, files=files, job_run_s=SLOW_JOB_S) as slow,
        Operators(controlplane, ns, tmp_path) as ops,
        Recorder(api_client, ns, ("sessions", "computes", "dockercontainers")) as rec,
    ):
        for obj in platform_objects(p.url):
            create(api_client, ns, obj)
        create(api_client, ns, platform_objects(slow.url, name="slow")[1])
        good = f"{p.url}/_sim/files/chaos/input.fits"
        sessions = {
            "healthy-data": _with_data(
                session_body("healthy-data", Kind.NOTEBOOK, rng), good, digest
            ),
            "not-found": _with_data(
                session_body("not-found", Kind.NOTEBOOK, rng),
                f"{p.url}/_sim/files/chaos/missing.fits",
            ),
            "too-large": _with_data(
                session_body(
                    "too-large",
                    Kind.NOTEBOOK,
                    rng,
                    "slow",
                    schedule={"prepareDeadline": "30s"},
                ),
                f"{slow.url}/_sim/files/chaos/input.fits",
            ),
        }
        ops.start().wait_serving()
        for body in sessions.values():
            create(api_client, ns, body)
        expected = {"healthy-data": "Available", "not-found": "Failed", "too-large": "Expired"}
        final = settle_to(api_client, ns, expected, scale.deadline)
        statuses = {
            o["metadata"]["name"]: o.get("status") or {} for o in items(api_client, ns, "sessions")
        }
        # The hour-long download job was launched, then stopped when the Session expired.
        slow_jobs = slow.sim.launches()
        wait_for("the large download's job stopped", lambda: not slow.sim.sessions(), 60)
        leaked = release_all(api_client, ns, p.sim, scale.deadline)
        finished_jobs = lingering(p.sim)
        assert all(op.alive() for op in ops.started)
        captured = {
            "operator logs": ops.logs(),
            "events": event_texts(api_client, ns),
            "metrics": ops.scrape(ops.started[0]),
        }
    hits = secret_hits(captured)
    causes = {"not-found": "404", "too-large": "Data too-large-data-input"}
    unclear = {
        n: statuses[n].get("message")
        for n, cause in causes.items()
        if cause not in str(statuses[n].get("message"))
    }

    report.inject("download URL answering 404", 1)
    report.inject(f"download whose job runs {SLOW_JOB_S / 60:.0f} min, prepare deadline 30 s", 1)
    report.check("bad Sessions ending with the cause in their message", f"{2 - len(unclear)}/2")
    report.check("the large download's Skaha job stopped at expiry", not slow.sim.sessions())
    report.check("healthy Session with data alongside", final["healthy-data"])
    report.check("Skaha sessions left after deleting everything", len(leaked))
    report.check(
        "secret occurrences in logs, Events, metrics, statuses", sum(hits.values()) + len(rec.leaks)
    )
    report.figures["finished download jobs Skaha still lists (until its TTL)"] = len(finished_jobs)
    report.figures["Session messages"] = {n: statuses[n].get("message") for n in causes}

    assert unclear == {}
    assert len(slow_jobs) == 1
    assert leaked == []
    assert hits == {}
    assert rec.leaks == []
