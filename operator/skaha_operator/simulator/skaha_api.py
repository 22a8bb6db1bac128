"""Skaha session API routes under `/skaha` (`docs/platform-api.md` §1–§5).

v1 paths (`/skaha/v1/...`) are served normally; in `legacy_mode` the same routes answer under
`/skaha/v0/...` instead, with the pod-phase status vocabulary (§3) and pre-2025 DELETE errors (§5).
Timing faults (`faults.py`): a launch under `commit_delay_s` records when it commits so the fault
middleware can time the answer; listings under `list_lag_s` leave out recent commits.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from skaha_operator.simulator import podview, replies, vosi
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.params import first, read_params
from skaha_operator.simulator.sessions import SessionType, SimSession
from skaha_operator.simulator.state import COMMIT_AT_KEY, SimState, plan_of, state_of, user_of
from skaha_operator.simulator.store import LaunchFaults

VIEW_ALL_FIELDS = ("userid", "type", "status", "startTime")


def _check_era(request: web.Request) -> bool:
    """Return the legacy flag; a path of the other API era is 404 (v0 and v1 never coexist, §1)."""
    state = state_of(request)
    version = request.match_info["version"]
    legacy = state.config.legacy_mode
    if (version == "v0") != legacy:
        raise SimError(404, f"not found: {request.path}")
    return legacy


async def list_sessions(request: web.Request) -> web.Response:
    """GET /session: the caller's sessions, `?type=`, `?status=`, `?view=all|stats|interactive`."""
    legacy = _check_era(request)
    state = state_of(request)
    user = user_of(request)
    view = request.query.get("view")
    now = state.clock.now()
    plan = plan_of(request)
    if view == "stats":
        if plan.stats_unavailable:
            raise SimError(503, "Platform statistics unavailable", headers={"Retry-After": "30"})
        return replies.pretty_json(_stats(state, now))
    # list_lag_s: a listing does not show yet what was committed less than that long ago.
    listed_before = now - plan.list_lag_s
    if view == "all":
        rows = []
        for session in state.sessions.all_sessions():
            if session.created > listed_before:
                continue
            doc = session.to_json(now, state.base_url, legacy=legacy)
            rows.append({key: doc[key] for key in VIEW_ALL_FIELDS if key in doc})
        return replies.pretty_json(rows)
    wanted_type = request.query.get("type")
    wanted_status = request.query.get("status")
    out = []
    for session in state.sessions.user_sessions(user):
        if session.created > listed_before:
            continue
        if view == "interactive" and not session.interactive:
            continue
        if wanted_type and session.type.value != wanted_type.lower():
            continue
        doc = session.to_json(now, state.base_url, legacy=legacy)
        if wanted_status and doc["status"].lower() != wanted_status.lower():
            continue
        out.append(doc)
    return replies.pretty_json(out)


def _stats(state: SimState, now: float) -> dict[str, Any]:
    """`view=stats` payload (§4 ResourceStats)."""
    cfg = state.config
    cores = 0.0
    ram = 0.0
    for session in state.sessions.all_sessions():
        if session.is_active(now):
            cores += session.cores
            ram += session.ram
    return {
        "cores": {
            "requestedCPUCores": round(cores, 3),
            "cpuCoresAvailable": cfg.cluster_cores,
            "maxCPUCores": {"cpuCores": cfg.node_max_cores, "withRam": cfg.node_max_ram},
        },
        "ram": {
            "requestedRAM": f"{ram:.0f}G",
            "ramAvailable": f"{cfg.cluster_ram_gb}G",
            "maxRAM": {"ram": cfg.node_max_ram, "withCPUCores": cfg.node_max_cores},
        },
    }


async def launch(request: web.Request) -> web.Response:
    """POST /session: 200 `text/plain` `<id>\\n` (§1, §9.11 a); commit_delay_s defers it."""
    legacy = _check_era(request)
    state = state_of(request)
    params = await read_params(request, strict_content_type=state.config.strict_content_type)
    plan = plan_of(request)
    session = state.sessions.launch(
        user_of(request),
        params,
        registry_auth=request.headers.get("x-skaha-registry-auth"),
        faults=LaunchFaults(plan.stuck_pending, plan.home_alloc_fail, plan.max_sessions),
        legacy=legacy,
        commit_delay_s=plan.commit_delay_s,
    )
    request[COMMIT_AT_KEY] = session.created
    # Headless sessions run as containers where an engine exists; otherwise the operator's
    # download and notebook-setup jobs end as their command would (jobs.py).
    state.jobs.on_launch(state, session)
    return replies.text(session.id + "\n")


async def get_session(request: web.Request) -> web.Response:
    """GET /session/{id}: JSON, or `?view=logs|events` as text/plain (§1, §9.6)."""
    legacy = _check_era(request)
    state = state_of(request)
    session = state.sessions.get(user_of(request), request.match_info["id"])
    now = state.clock.now()
    view = request.query.get("view")
    if view == "logs":
        if session.real and state.jobs.containers is not None:
            return replies.text(await state.jobs.containers.logs(session))
        return replies.text(podview.render_logs(session, now))
    if view == "events":
        return replies.text(podview.render_events(session, now))
    return replies.pretty_json(session.to_json(now, state.base_url, legacy=legacy))


async def modify_session(request: web.Request) -> web.Response:
    """POST /session/{id}: only `action=renew` (§3 renew errors)."""
    _check_era(request)
    state = state_of(request)
    params = await read_params(request, strict_content_type=state.config.strict_content_type)
    user = user_of(request)
    session_id = request.match_info["id"]
    state.sessions.get(user, session_id)
    action = first(params, "action")
    if action is None:
        raise SimError(400, "Cannot modify an existing session")
    if action != "renew":
        raise SimError(400, "unrecognized action")
    state.sessions.renew(user, session_id)
    return web.Response(status=200)


async def delete_session(request: web.Request) -> web.Response:
    """DELETE /session/{id}: 200 empty; unknown ids are 200 at HEAD (§5, §9.11 h)."""
    legacy = _check_era(request)
    state = state_of(request)
    session = state.sessions.delete(user_of(request), request.match_info["id"], legacy=legacy)
    if session is not None:
        state.jobs.on_delete(session)
    return web.Response(status=200)


async def list_images(request: web.Request) -> web.Response:
    """GET /image[?type=]: images the caller may launch (§4)."""
    _check_era(request)
    state = state_of(request)
    wanted = request.query.get("type")
    if wanted is not None and wanted.lower() not in {t.value for t in SessionType}:
        raise SimError(400, f"unknown type: {wanted}")
    out = []
    for entry in state.config.images:
        types = [str(t) for t in entry.get("types", [])]
        if wanted is not None and wanted.lower() not in types:
            continue
        image_id = str(entry["id"])
        digest = entry.get("digest") or _digest(image_id)
        out.append({"id": image_id, "types": types, "digest": digest})
    return replies.pretty_json(out)


def _digest(image_id: str) -> str:
    return "sha256:" + hashlib.sha256(image_id.encode()).hexdigest()


async def get_context(request: web.Request) -> web.Response:
    """GET /context: the site's k8s-resources.json (§4)."""
    _check_era(request)
    cfg = state_of(request).config
    return replies.pretty_json(
        {
            "cores": {
                "default": cfg.cores_default,
                "defaultRequest": cfg.cores_default_request,
                "defaultLimit": cfg.cores_default_limit,
                "options": cfg.cores_options,
            },
            "memoryGB": {
                "default": cfg.memory_default,
                "defaultRequest": cfg.memory_default_request,
                "defaultLimit": cfg.memory_default_limit,
                "options": cfg.memory_options,
            },
            "gpus": {"options": cfg.gpu_options},
            "maxInteractiveSessions": cfg.max_sessions,
        }
    )


async def list_repositories(request: web.Request) -> web.Response:
    """GET /repository: allowed registry hosts (§4)."""
    _check_era(request)
    return replies.pretty_json(state_of(request).config.registry_hosts)


async def capabilities(request: web.Request) -> web.Response:
    """GET /skaha/capabilities (VOSI, anonymous)."""
    state = state_of(request)
    return replies.xml(
        vosi.skaha_capabilities(f"{state.base_url}/skaha", legacy=state.config.legacy_mode)
    )


async def availability(request: web.Request) -> web.Response:
    """GET /skaha/availability (VOSI, anonymous)."""
    return replies.xml(vosi.availability("skaha simulator is accepting requests"))


def add_routes(app: web.Application) -> None:
    """Register the Skaha routes."""
    version = "{version:v[01]}"
    app.router.add_get("/skaha/capabilities", capabilities)
    app.router.add_get("/skaha/availability", availability)
    app.router.add_get(f"/skaha/{version}/session", list_sessions)
    app.router.add_post(f"/skaha/{version}/session", launch)
    app.router.add_get(f"/skaha/{version}/session/{{id}}", get_session)
    app.router.add_post(f"/skaha/{version}/session/{{id}}", modify_session)
    app.router.add_delete(f"/skaha/{version}/session/{{id}}", delete_session)
    app.router.add_get(f"/skaha/{version}/image", list_images)
    app.router.add_get(f"/skaha/{version}/context", get_context)
    app.router.add_get(f"/skaha/{version}/repository", list_repositories)


def session_docs(state: SimState, user: str | None) -> list[dict[str, Any]]:
    """Current JSON of visible sessions (Terminating included, gone excluded)."""
    now = state.clock.now()
    legacy = state.config.legacy_mode
    sessions: list[SimSession] = list(
        state.sessions.all_sessions() if user is None else state.sessions.user_sessions(user)
    )
    return [s.to_json(now, state.base_url, legacy=legacy) for s in sessions]
