"""Every edit of a Session is applied or refused (docs/lifecycle.md, "Editing a Session").

Each field of `spec` is patched on a live Session: a field that can follow shows in the Compute
and in the Session's status (observedGeneration catches up); one that cannot is refused by the
API server with a message naming the field, and nothing changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from skaha_operator import GROUP, VERSION
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import create, get, phase, wait_for
from tests.integration.test_session_lifecycle import (
    NOTEBOOK_IMAGE,
    compute_of,
    session,
    with_platform,
)

pytestmark = pytest.mark.integration

# Each refused edit: (a JSON merge patch of spec, the field the refusal must name).
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"platformRef": "elsewhere"}, "platformRef"),
    (
        {"executable": {"template": {"dockerContainer": {"image": NOTEBOOK_IMAGE + "x"}}}},
        "executable",
    ),
    ({"compute": {"template": {"type": "notebook", "cores": 4}}}, "compute"),
    ({"storages": [{"name": "s", "template": {"area": "home", "path": "x"}}]}, "storages"),
    ({"data": [{"name": "d", "ref": "somewhere"}]}, "data"),
    ({"schedule": {"start": "2030-01-01T00:00:00Z"}}, "spec.schedule.start"),
]


def _patch(api: client.ApiClient, ns: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "sessions", name, {"spec": spec}
    )


def _caught_up(api: client.ApiClient, ns: str, name: str) -> bool:
    found = get(api, ns, "Session", name) or {}
    return (found.get("status") or {}).get("observedGeneration") == found.get("metadata", {}).get(
        "generation"
    )


def test_each_session_field_is_applied_or_refused(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    create(
        api_client,
        namespace,
        session("ed", NOTEBOOK_IMAGE, {"type": "notebook"}, schedule={"duration": "2h"}),
    )
    wait_for("Available", lambda: phase(api_client, namespace, "Session", "ed") == "Available", 90)
    before = get(api_client, namespace, "Session", "ed")
    assert before is not None
    accepted, unnamed = [], []
    for spec, field in REFUSED:
        try:
            _patch(api_client, namespace, "ed", spec)
        except client.ApiException as refused:
            if refused.status != 422 or field not in str(refused.body):
                unnamed.append((spec, refused.status, refused.body))
        else:
            accepted.append(spec)
    assert accepted == [], "edits that should have been refused were accepted"
    assert unnamed == [], "refusals must be 422 and name the field"
    after = get(api_client, namespace, "Session", "ed")
    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"]

    # Applied: the booked duration and the deadline/poll settings follow into the Compute.
    applied = {"duration": "5h", "prepareDeadline": "30m", "maxPolls": 500}
    _patch(api_client, namespace, "ed", {"schedule": applied})

    def followed() -> bool:
        schedule = (compute_of(api_client, namespace, "ed").get("spec") or {}).get("schedule")
        return all((schedule or {}).get(k) == v for k, v in applied.items())

    wait_for("the Compute follows the edited schedule", followed, 30)
    wait_for("observedGeneration catches up", lambda: _caught_up(api_client, namespace, "ed"), 30)
    compute = compute_of(api_client, namespace, "ed")
    wait_for(
        "the Compute acts on its new spec",
        lambda: (
            (compute_of(api_client, namespace, "ed").get("status") or {}).get("observedGeneration")
            == compute_of(api_client, namespace, "ed")["metadata"]["generation"]
        ),
        30,
    )
    assert compute["spec"]["schedule"]["duration"] == "5h"
    assert phase(api_client, namespace, "Session", "ed") == "Available"

    # cancel: applied (the one-way switch).
    _patch(api_client, namespace, "ed", {"cancel": True})
    wait_for("Cancelled", lambda: phase(api_client, namespace, "Session", "ed") == "Cancelled", 60)


def test_start_moves_while_waiting_and_the_compute_follows(
    api_client: client.ApiClient, namespace: str, sim: Simulator, operator: Path
) -> None:
    with_platform(api_client, namespace, sim)
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    create(
        api_client,
        namespace,
        session(
            "later", NOTEBOOK_IMAGE, {"type": "notebook"}, schedule={"start": start.isoformat()}
        ),
    )
    wait_for("Waiting", lambda: phase(api_client, namespace, "Session", "later") == "Waiting", 60)
    sooner = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    _patch(api_client, namespace, "later", {"schedule": {"start": sooner.isoformat()}})
    wait_for(
        "launched at the new start",
        lambda: phase(api_client, namespace, "Session", "later") == "Available",
        90,
    )
    compute = compute_of(api_client, namespace, "later")
    moved = datetime.fromisoformat(compute["spec"]["schedule"]["start"].replace("Z", "+00:00"))
    assert moved == sooner
    launched = datetime.fromisoformat(
        compute["status"]["launch"]["pendingSince"].replace("Z", "+00:00")
    )
    assert launched >= sooner - timedelta(seconds=1)
