"""A Session found in a namespace that is already being deleted (docs/kubernetes-notes.md §5).

The API server refuses every create in a Terminating namespace (403, cause
NamespaceTerminating). An operator that starts, or catches up, after `kubectl delete namespace`
finds a Session there whose parts it cannot create. What must hold: that refusal is a wait, not
an error — no reconcile error, no traceback, one INFO line naming why — and once the Session is
deleted it is released (nothing was launched for it).

The suite's API server has no namespace controller, so the namespace stays Terminating and the
Session in it stays until the test deletes it: exactly the window a real cluster opens between
the namespace's deletion and the namespace controller reaching the Session.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from skaha_operator.controlplane import ControlPlane
from skaha_operator.simulator import Simulator
from tests.integration.operator_harness import (
    create,
    delete,
    get,
    operator_process,
    platform_objects,
    wait_for,
)
from tests.integration.test_session_lifecycle import NOTEBOOK_IMAGE, owned_parts, session

pytestmark = pytest.mark.integration


def test_session_in_a_terminating_namespace_waits_without_error(
    controlplane: ControlPlane,
    api_client: client.ApiClient,
    crds: list[str],
    sim: Simulator,
    tmp_path: Path,
) -> None:
    ns = f"t-terminating-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": ns}})
    for obj in platform_objects(ns, sim.base_url):  # type: ignore[attr-defined]
        create(api_client, ns, obj)
    create(
        api_client, ns, session("nb", NOTEBOOK_IMAGE, {"type": "notebook", "cores": 1, "ramGiB": 2})
    )
    core.delete_namespace(ns)
    wait_for(
        "the namespace Terminating",
        lambda: core.read_namespace(ns).status.phase == "Terminating",
        30,
    )
    log = tmp_path / "operator.log"
    with operator_process(controlplane, log):

        def refused_once() -> bool:
            """The Session was stepped and its first create refused, whatever came of it."""
            lines = log.read_text().splitlines()
            return any(
                "its namespace is being deleted" in line
                or ("NamespaceTerminating" in line and "/events " not in line)
                for line in lines
            )

        wait_for("the Session's first create refused", refused_once, 90)
        assert owned_parts(api_client, ns) == []
        delete(api_client, ns, "Session", "nb")
        wait_for("Session released", lambda: get(api_client, ns, "Session", "nb") is None, 90)
        delete(api_client, ns, "SkahaPlatform", "local")
        wait_for(
            "the platform released",
            lambda: get(api_client, ns, "SkahaPlatform", "local") is None,
            90,
        )
    text = log.read_text()
    # Only Events may still be refused there (logged at INFO, not retried); no create of
    # a part is attempted as an error, nothing is logged as an error.
    refused = [
        line
        for line in text.splitlines()
        if "NamespaceTerminating" in line and "/events " not in line
    ]
    assert not refused, "\n".join(refused[:5])
    assert "Traceback" not in text, text[-3000:]
    assert "[ERROR" not in text, text[-3000:]
    assert f"Session {ns}/nb: its namespace is being deleted; nothing is created" in text
