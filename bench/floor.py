"""The floor: only the unavoidable work per Session, as fast as the API server allows.

Per Session: create the Session, its DockerContainer and its Compute; write the same phase
transitions the operator writes with the same guards (resourceVersion `test` on a first write and
on the create-pending marker, phase `test` afterwards); post the one Event per transition the
design requires (docs/design.md §3); launch once and poll the simulator until Running. No
finalizers, no image check, no re-reads, no bookkeeping: nothing a correct operator could skip
beyond this.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bench.kapi import KubeApi
from skaha_operator import GROUP, VERSION
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.wire import SessionParams, SessionType

API = f"{GROUP}/{VERSION}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(phase: str, reason: str, message: str, ready: bool, **extra: Any) -> dict[str, Any]:
    now = _now()
    return {
        "phase": phase,
        "reason": reason,
        "message": message,
        "observedGeneration": 1,
        "phaseTimes": {phase: now},
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
                "observedGeneration": 1,
            }
        ],
        **extra,
    }


def _first(obj: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
    rv = obj["metadata"]["resourceVersion"]
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/status", "value": status},
    ]


def _next(obj: dict[str, Any], status: dict[str, Any]) -> list[dict[str, Any]]:
    old = obj.get("status") or {}
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/status/phase", "value": old["phase"]}]
    return ops + [
        {"op": "add", "path": f"/status/{k}", "value": v}
        for k, v in status.items()
        if old.get(k) != v
    ]


def bodies(name: str, session_spec: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The Session and the two parts the operator would create for it."""
    exe = session_spec["executable"]["template"]["dockerContainer"]
    comp = session_spec["compute"]["template"]
    session = {"apiVersion": API, "kind": "Session", "metadata": {"name": name}}
    session["spec"] = session_spec
    dc = {
        "apiVersion": API,
        "kind": "DockerContainer",
        "metadata": {"name": f"{name}-executable"},
        "spec": {"platformRef": session_spec["platformRef"], **exe},
    }
    compute = {
        "apiVersion": API,
        "kind": "Compute",
        "metadata": {"name": f"{name}-compute"},
        "spec": {
            "platformRef": session_spec["platformRef"],
            "executableRef": {"kind": "DockerContainer", "name": f"{name}-executable"},
            **comp,
        },
    }
    return session, dc, compute


async def floor_one(
    api: KubeApi, skaha: PlatformClients, ns: str, name: str, spec: dict[str, Any]
) -> float:
    """Drive one Session to Running with the unavoidable writes; returns when it became usable."""
    s_body, dc_body, c_body = bodies(name, spec)
    session = await api.create("sessions", ns, s_body)
    dc = await api.create("dockercontainers", ns, dc_body)
    compute = await api.create("computes", ns, c_body)
    session = await api.patch_status(
        "sessions", ns, name, _first(session, _status("Preparing", "CreatingParts", "", False))
    )
    await api.event(ns, session, "CreatingParts", "Initializing->Preparing: CreatingParts")
    dc = await api.patch_status(
        "dockercontainers",
        ns,
        dc["metadata"]["name"],
        _first(dc, _status("Available", "ImageAvailable", "listed by Skaha", True)),
    )
    await api.event(ns, dc, "ImageAvailable", "Initializing->Available: ImageAvailable")
    cname = compute["metadata"]["name"]
    skaha_name = "flr-" + compute["metadata"]["uid"].replace("-", "")[:32]
    marker = _status(
        "Preparing", "Launching", "launching", False,
        launch={"name": skaha_name, "pendingSince": _now(), "attempts": 1},
    )  # fmt: skip
    compute = await api.patch_status("computes", ns, cname, _first(compute, marker))
    await api.event(ns, compute, "Launching", "Initializing->Preparing: Launching")
    image = dc_body["spec"]["image"]
    params = SessionParams(
        name=skaha_name, image=image, type=SessionType.HEADLESS, cmd=spec["compute"]["template"]
        .get("command"), env=dict(spec["compute"]["template"].get("env") or {}),
    )  # fmt: skip
    session_id = await skaha.skaha.create_session(params)
    launched = {**marker, "launch": {**marker["launch"], "id": session_id}, "reason": "Launched"}
    compute = await api.patch_status("computes", ns, cname, _next(compute, launched))
    # Polling Skaha until Running is part of the work measured.
    while (await skaha.skaha.get_session(session_id)).status != "Running":  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    running = _status("Running", "SessionRunning", "running", True, launch=launched["launch"])
    compute = await api.patch_status("computes", ns, cname, _next(compute, running))
    await api.event(ns, compute, "SessionRunning", "Preparing->Running: SessionRunning")
    usable = _status("Running", "SessionRunning", "the session is running", True)
    session = await api.patch_status("sessions", ns, name, _next(session, usable))
    done = time.monotonic()
    await api.event(ns, session, "SessionRunning", "Preparing->Running: SessionRunning")
    return done
