"""Rucio routes under `/rucio`: userpass auth and replication rules (`docs/platform-api.md` §8).

Timing faults (`faults.py`): `commit_delay_s` on `POST /rucio/rules/` defers the new rules'
visibility; `list_lag_s` on the two listings leaves out rules committed less than that ago.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.rucio_store import RucioStore, SimRule
from skaha_operator.simulator.state import COMMIT_AT_KEY, plan_of, state_of

NDJSON = "application/x-json-stream"
RULE_FILTERS = ("scope", "name", "account", "state", "rse_expression", "activity")


def _store(request: web.Request) -> RucioStore:
    return state_of(request).rucio


def _account(request: web.Request) -> str:
    return _store(request).account_for(request.headers.get("X-Rucio-Auth-Token"))


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise SimError(400, "cannot decode json parameter", exception_class="ValueError") from None


async def userpass(request: web.Request) -> web.Response:
    """GET /rucio/auth/userpass: token in `X-Rucio-Auth-Token` (+ `-Expires`)."""
    headers = request.headers
    token, expires = _store(request).login(
        headers.get("X-Rucio-Account"),
        headers.get("X-Rucio-Username"),
        headers.get("X-Rucio-Password"),
    )
    return web.Response(
        status=200, headers={"X-Rucio-Auth-Token": token, "X-Rucio-Auth-Token-Expires": expires}
    )


async def add_rule(request: web.Request) -> web.Response:
    """POST /rucio/rules/: 201 with a JSON *list* of rule ids (§8, §9.11 m)."""
    account = _account(request)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise SimError(400, "body must be an object", exception_class="InvalidObject")
    store = _store(request)
    delay = plan_of(request).commit_delay_s
    ids = store.add_rules(account, body, commit_delay_s=delay)
    request[COMMIT_AT_KEY] = store.clock.now() + delay
    return web.Response(status=201, text=json.dumps(ids), content_type="application/json")


def _listed_before(request: web.Request) -> float:
    """list_lag_s: listings show only rules committed at least that long ago."""
    return state_of(request).clock.now() - plan_of(request).list_lag_s


def _ndjson(store: RucioStore, rules: list[SimRule]) -> web.Response:
    body = "".join(json.dumps(store.to_json(rule)) + "\n" for rule in rules)
    return web.Response(status=200, text=body, content_type=NDJSON)


async def list_rules(request: web.Request) -> web.Response:
    """GET /rucio/rules/?filters: NDJSON, one rule per line."""
    _account(request)
    store = _store(request)
    wanted = {k: v for k, v in request.query.items() if k in RULE_FILTERS}
    rules = [
        rule
        for rule in store.rules(_listed_before(request))
        if all(str(store.to_json(rule).get(k)) == v for k, v in wanted.items())
    ]
    return _ndjson(store, rules)


async def did_rules(request: web.Request) -> web.Response:
    """GET /rucio/dids/{scope}/{name}/rules: NDJSON."""
    _account(request)
    store = _store(request)
    scope, name = request.match_info["scope"], request.match_info["name"]
    listed = store.rules(_listed_before(request))
    return _ndjson(store, [r for r in listed if (r.scope, r.name) == (scope, name)])


async def get_rule(request: web.Request) -> web.Response:
    """GET /rucio/rules/{id}: the rule object."""
    _account(request)
    store = _store(request)
    return web.json_response(store.to_json(store.get(request.match_info["id"])))


async def update_rule(request: web.Request) -> web.Response:
    """PUT /rucio/rules/{id} `{"options": {...}}`."""
    _account(request)
    body = await _json_body(request)
    options = body.get("options") if isinstance(body, dict) else None
    if not isinstance(options, dict):
        raise SimError(400, "options must be an object", exception_class="InvalidObject")
    _store(request).update(request.match_info["id"], options)
    return web.Response(status=200)


async def delete_rule(request: web.Request) -> web.Response:
    """DELETE /rucio/rules/{id}."""
    _account(request)
    await _json_body(request)
    _store(request).delete(request.match_info["id"])
    return web.Response(status=200)


def add_routes(app: web.Application) -> None:
    """Register the Rucio routes."""
    app.router.add_get("/rucio/auth/userpass", userpass)
    app.router.add_post("/rucio/rules/", add_rule)
    app.router.add_get("/rucio/rules/", list_rules)
    app.router.add_get("/rucio/rules/{id}", get_rule)
    app.router.add_put("/rucio/rules/{id}", update_rule)
    app.router.add_delete("/rucio/rules/{id}", delete_rule)
    app.router.add_get("/rucio/dids/{scope}/{name}/rules", did_rules)
