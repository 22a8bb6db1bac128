"""Campaign 5 (bad input) and 6 (secrets and namespaces): objects that pass the schema but are
wrong at run time each end Failed/Expired or Stalled with a reason a person can act on; the
operator keeps running; a healthy Session in the same namespace completes meanwhile; no token
shows up anywhere; nothing crosses a namespace boundary."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.processes import free_port
from tests.chaos.kit import (
    WRONG_TOKEN,
    Kind,
    Operators,
    Recorder,
    create,
    event_texts,
    items,
    platform_objects,
    secret_hits,
    session_body,
    settle_to,
    simulator,
)
from tests.chaos.report import Report
from tests.chaos.scale import Scale
from tests.integration.operator_harness import drain_namespace, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SEED = 8005
DEADLINE = {"schedule": {"prepareDeadline": "25s"}}


@pytest.fixture
def other_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A second namespace, holding a Secret and a Session that must not reach the first."""
    name = f"c-other-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    drain_namespace(api_client, name)


def _with_image(body: dict[str, Any], image: str) -> dict[str, Any]:
    body["spec"]["executable"]["template"]["dockerContainer"]["image"] = image
    return body


def _status(api: client.ApiClient, ns: str, plural: str, name: str) -> dict[str, Any]:
    for obj in items(api, ns, plural):
        if obj["metadata"]["name"] == name:
            status: dict[str, Any] = obj.get("status") or {}
            return status
    return {}


def test_bad_input_fails_clearly_while_a_healthy_session_completes(
    api_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    controlplane: ControlPlane,
    scale: Scale,
    report: Report,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    report.campaign, report.seed = "Bad input and namespace isolation", SEED
    ns, other = namespace, other_namespace
    with (
        simulator(SEED) as p,
        Operators(controlplane, ns, tmp_path, "-n", other) as ops,
        Recorder(api_client, ns, ("sessions", "computes", "dockercontainers")) as rec,
    ):
        for obj in platform_objects(p.url):  # "local": healthy
            create(api_client, ns, obj)
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        for obj in platform_objects(down, name="down", token=None):
            create(api_client, ns, obj)
        for obj in platform_objects(p.url, name="wrong", secret="wrong-token", token=WRONG_TOKEN):
            create(api_client, ns, obj)
        # Its Secret exists, with a valid token, but only in the other namespace.
        for obj in platform_objects(p.url, name="elsewhere", secret="far-token", token=None):
            create(api_client, ns, obj)
        create(api_client, other, platform_objects(p.url, secret="far-token")[0])
        bad = {
            "unknown-image": _with_image(
                session_body("unknown-image", Kind.NOTEBOOK, rng),
                "images.canfar.net/skaha/no-such-image:0.0",
            ),
            "unreachable": session_body("unreachable", Kind.JOB, rng, "down", **DEADLINE),
            "wrong-token": session_body("wrong-token", Kind.JOB, rng, "wrong", **DEADLINE),
            "far-secret": session_body("far-secret", Kind.JOB, rng, "elsewhere", **DEADLINE),
            "no-platform": session_body("no-platform", Kind.JOB, rng, "nowhere", **DEADLINE),
        }
        # No deadline: this one cannot end by itself, so it must say Stalled.
        stuck = session_body("stalled-token", Kind.NOTEBOOK, rng, "wrong")
        healthy = {
            "healthy-job": session_body("healthy-job", Kind.JOB, rng),
            "healthy-nb": session_body("healthy-nb", Kind.NOTEBOOK, rng),
        }
        ops.start().wait_serving()
        for body in [*bad.values(), stuck, *healthy.values()]:
            create(api_client, ns, body)
        # A Session in the other namespace naming "local", which exists only in the first one.
        create(api_client, other, session_body("cross-ns", Kind.JOB, rng, "local", **DEADLINE))
        expected = {"healthy-job": "Completed", "healthy-nb": "Available"} | {
            "unknown-image": "Failed",
            "unreachable": "Expired",
            "wrong-token": "Expired",
            "far-secret": "Expired",
            "no-platform": "Expired",
        }
        final = settle_to(api_client, ns, expected, scale.deadline)
        settle_to(api_client, other, {"cross-ns": "Expired"}, scale.deadline)
        wait_for(
            "the Session without a deadline to say Stalled",
            lambda: (
                _condition(_status(api_client, ns, "sessions", "stalled-token"), "Stalled")
                == "True"
            ),
            60,
        )
        statuses = {n: _status(api_client, ns, "sessions", n) for n in [*expected, "stalled-token"]}
        statuses["cross-ns"] = _status(api_client, other, "sessions", "cross-ns")
        platforms = {
            n: _status(api_client, ns, "skahaplatforms", n) for n in ("down", "wrong", "elsewhere")
        }
        launched = sorted(d["name"] for d in p.sim.launches())
        assert all(op.alive() for op in ops.started)
        captured = {
            "operator logs": ops.logs(),
            "events": event_texts(api_client, ns) + event_texts(api_client, other),
            "metrics": ops.scrape(ops.started[0]),
        }
    hits = secret_hits(captured)
    causes = {
        "unknown-image": "ImageNotFound",
        "unreachable": "SkahaPlatform down (PlatformUnreachable)",
        "wrong-token": "SkahaPlatform wrong (Unauthorized)",
        "far-secret": "SkahaPlatform elsewhere (TokenSecretMissing)",
        "no-platform": "SkahaPlatform nowhere (not found)",
        "cross-ns": "SkahaPlatform local (not found)",
        "stalled-token": "SkahaPlatform wrong (Unauthorized)",
    }
    unclear = {
        n: statuses[n].get("message") for n, c in causes.items() if c not in _text(statuses[n])
    }
    stalled = _condition(statuses["stalled-token"], "Stalled")

    report.inject("unknown image (schema-valid name)", 1)
    report.inject("platform URL where nothing listens", 1)
    report.inject("wrong token", 1)
    report.inject("token Secret only in another namespace", 1)
    report.inject("SkahaPlatform name that does not exist", 1)
    report.inject("Session naming a SkahaPlatform of another namespace", 1)
    report.inject("wrong token, no deadline", 1)
    report.check(
        "Sessions whose status names the cause", f"{len(causes) - len(unclear)}/{len(causes)}"
    )
    report.check(
        "the one without a deadline: Preparing with Stalled=True",
        statuses["stalled-token"].get("phase") == "Preparing" and stalled == "True",
    )
    report.check("healthy Sessions alongside", f"{final['healthy-job']}, {final['healthy-nb']}")
    report.check("Skaha sessions launched for bad input", len(launched) - 2)
    report.check("operator restarts", 0)
    report.check(
        "secret occurrences in logs, Events, metrics, statuses", sum(hits.values()) + len(rec.leaks)
    )
    report.figures["platform reasons"] = {n: st.get("reason") for n, st in platforms.items()}

    assert unclear == {}
    # Failures are visible where people look: `kubectl get events --field-selector type=Warning`
    # names the cause of every failed Session (the one without a deadline only stalls).
    failed = {n: c for n, c in causes.items() if n != "stalled-token"}
    wait_for(
        "a Warning Event naming the cause of every failed Session",
        lambda: _unwarned(api_client, (ns, other), failed) == {},
        30,
    )
    assert statuses["stalled-token"].get("phase") == "Preparing"
    assert stalled == "True"
    # Only the two healthy Sessions ever reached Skaha.
    computes = rec.of("computes")  # the completed job's Compute is released (gone) by now
    healthy_names = [computes[f"{n}-compute"].session_name for n in ("healthy-job", "healthy-nb")]
    assert launched == sorted(healthy_names)
    assert {n: st.get("reason") for n, st in platforms.items()} == {
        "down": "PlatformUnreachable",
        "wrong": "Unauthorized",
        "elsewhere": "TokenSecretMissing",
    }
    assert hits == {}
    assert rec.leaks == []


def _unwarned(
    api: client.ApiClient, namespaces: tuple[str, ...], causes: dict[str, str]
) -> dict[str, str]:
    """Sessions with no Warning Event whose message names their cause."""
    core = client.CoreV1Api(api)
    warnings = [
        e
        for ns in namespaces
        for e in core.list_namespaced_event(ns, field_selector="type=Warning").items
    ]
    return {
        name: cause
        for name, cause in causes.items()
        if not any(e.involved_object.name == name and cause in (e.message or "") for e in warnings)
    }


def _text(status: dict[str, Any]) -> str:
    return f"{status.get('reason')}: {status.get('message')}"


def _condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions") or [] if c["type"] == kind), None)
