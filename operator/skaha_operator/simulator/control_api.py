"""The `/_sim` control API for tests and the demo (`docs/platform-api.md` §9.5 and §9.10).

Routes: `POST /_sim/clock/advance?seconds=`, `GET /_sim/clock`, `GET /_sim/sessions` (every user),
`GET /_sim/launches` (every session ever created, gone ones included),
`POST /_sim/sessions/{id}/force?status=`, `GET|POST|DELETE /_sim/faults` (POST replaces the rules;
`?append=true` adds), `GET /_sim/rules`, `POST /_sim/rules/{id}/force?state=`,
`GET|PATCH /_sim/config` (runtime knobs such as `legacy_mode`, `max_sessions`, `pending_s`,
`ttl_headless_s`). Tokens and request counts are in `control_access.py`, the Cavern seed and
tree in `cavern_seed.py`. It is unauthenticated by design: the simulator is a local test and
demo tool.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from skaha_operator.simulator import replies
from skaha_operator.simulator.clock import iso_utc
from skaha_operator.simulator.config import FaultRule, SimulatorConfig
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.rucio_store import RuleState
from skaha_operator.simulator.sessions import Phase
from skaha_operator.simulator.skaha_api import session_docs
from skaha_operator.simulator.state import SimState, state_of

RULES = TypeAdapter(list[FaultRule])
# Fields fixed at construction: changing them at run time would not take effect.
FROZEN_FIELDS = frozenset(
    {
        "seed",
        "frozen_clock",
        "start_time",
        "cavern_root",
        "cavern_seed",
        "cavern_files",
        "faults",
        "job_mode",
        "job_engine",
    }
)
STATUS_ALIASES = {"succeeded": Phase.COMPLETED, "deleted": Phase.GONE}


def parse_phase(raw: str) -> Phase:
    """A status name (either era, case-insensitive) as a phase."""
    lowered = raw.lower()
    if lowered in STATUS_ALIASES:
        return STATUS_ALIASES[lowered]
    for phase in Phase:
        if phase.value.lower() == lowered:
            return phase
    raise SimError(400, f"unknown status: {raw}")


def patch_config(state: SimState, patch: dict[str, Any]) -> SimulatorConfig:
    """Validate and apply runtime knob changes in place (stores share the config object)."""
    blocked = sorted(set(patch) & FROZEN_FIELDS)
    if blocked:
        raise SimError(400, f"cannot change at run time: {', '.join(blocked)}")
    try:
        merged = SimulatorConfig.model_validate({**state.config.model_dump(), **patch})
    except ValidationError as exc:
        raise SimError(400, f"invalid config: {exc}") from None
    for name in patch:
        setattr(state.config, name, getattr(merged, name))
    return state.config


async def read_json(request: web.Request) -> Any:
    """The request body as JSON (None when empty); 400 when it does not parse."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError as exc:
        raise SimError(400, f"invalid JSON: {exc}") from None


async def advance(request: web.Request) -> web.Response:
    """POST /_sim/clock/advance?seconds=N."""
    state = state_of(request)
    try:
        seconds = float(request.query.get("seconds", "0"))
        now = state.clock.advance(seconds)
    except ValueError as exc:
        raise SimError(400, f"bad seconds: {exc}") from None
    return web.json_response({"now": iso_utc(now), "epoch": now, "frozen": state.clock.frozen})


async def clock(request: web.Request) -> web.Response:
    """GET /_sim/clock."""
    state = state_of(request)
    now = state.clock.now()
    return web.json_response({"now": iso_utc(now), "epoch": now, "frozen": state.clock.frozen})


async def sessions(request: web.Request) -> web.Response:
    """GET /_sim/sessions[?user=]: visible sessions of every user (Terminating included)."""
    return replies.pretty_json(session_docs(state_of(request), request.query.get("user")))


def launch_docs(state: SimState) -> list[dict[str, Any]]:
    """The launch log as JSON: every session ever created, gone ones included.

    `committed` is false while a `commit_delay_s` launch is not yet visible (its `created` is
    then in the future).
    """
    now = state.clock.now()
    return [
        {
            "id": r.id,
            "name": r.name,
            "user": r.user,
            "created": iso_utc(r.created),
            "committed": r.created <= now,
        }
        for r in state.sessions.launch_log
    ]


async def launches(request: web.Request) -> web.Response:
    """GET /_sim/launches."""
    return web.json_response(launch_docs(state_of(request)))


async def force_session(request: web.Request) -> web.Response:
    """POST /_sim/sessions/{id}/force?status=Running|Completed|Failed|Pending|Terminating|Gone."""
    state = state_of(request)
    phase = parse_phase(request.query.get("status", ""))
    session = state.sessions.find(request.match_info["id"])
    now = state.clock.now()
    session.force(phase, now, state.config.session_expiry_s)
    return replies.pretty_json(
        session.to_json(now, state.base_url, legacy=state.config.legacy_mode)
    )


async def get_faults(request: web.Request) -> web.Response:
    """GET /_sim/faults."""
    rules = state_of(request).faults.rules
    return web.json_response([rule.model_dump() for rule in rules])


async def set_faults(request: web.Request) -> web.Response:
    """POST /_sim/faults: a JSON list of rules (or {"rules": [...]}); ?append=true adds."""
    body = await read_json(request)
    if isinstance(body, dict):
        body = body.get("rules", [])
    try:
        rules = RULES.validate_python(body or [])
    except ValidationError as exc:
        raise SimError(400, f"invalid fault rules: {exc}") from None
    book = state_of(request).faults
    if request.query.get("append") == "true":
        book.extend(rules)
    else:
        book.replace(rules)
    return web.json_response([rule.model_dump() for rule in book.rules])


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /_sim/faults."""
    state_of(request).faults.clear()
    return web.json_response([])


async def rules(request: web.Request) -> web.Response:
    """GET /_sim/rules: every live Rucio rule."""
    store = state_of(request).rucio
    return web.json_response([store.to_json(rule) for rule in store.rules()])


async def force_rule(request: web.Request) -> web.Response:
    """POST /_sim/rules/{id}/force?state=OK|STUCK|..."""
    store = state_of(request).rucio
    raw = request.query.get("state", "")
    try:
        rule_state = RuleState(raw.upper())
    except ValueError:
        raise SimError(400, f"unknown state: {raw}") from None
    store.force(request.match_info["id"], rule_state)
    return web.json_response(store.to_json(store.get(request.match_info["id"])))


def config_doc(state: SimState) -> dict[str, Any]:
    """The config without tokens, plus `job_runner`: how headless sessions run, and why."""
    doc = state.config.model_dump(mode="json", exclude={"tokens"})
    doc["job_runner"] = state.jobs.status.to_json()
    return doc


async def get_config(request: web.Request) -> web.Response:
    """GET /_sim/config (tokens are not shown; `job_runner` is read-only)."""
    return web.json_response(config_doc(state_of(request)))


async def update_config(request: web.Request) -> web.Response:
    """PATCH /_sim/config: change runtime knobs."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise SimError(400, "expected a JSON object")
    state = state_of(request)
    patch_config(state, body)
    return web.json_response(config_doc(state))


def add_routes(app: web.Application) -> None:
    """Register the control routes."""
    app.router.add_post("/_sim/clock/advance", advance)
    app.router.add_get("/_sim/clock", clock)
    app.router.add_get("/_sim/sessions", sessions)
    app.router.add_get("/_sim/launches", launches)
    app.router.add_post("/_sim/sessions/{id}/force", force_session)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", set_faults)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_get("/_sim/rules", rules)
    app.router.add_post("/_sim/rules/{id}/force", force_rule)
    app.router.add_get("/_sim/config", get_config)
    app.router.add_patch("/_sim/config", update_config)
