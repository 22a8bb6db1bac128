"""`/_sim` routes for credentials and request counts: revoke or rotate tokens, count calls.

Routes (unauthenticated, like the rest of `/_sim`):
`GET /_sim/tokens` (users and how many tokens each has; tokens are not shown),
`PUT /_sim/tokens/{token}` with `{"user": "<u>"}` (add, or re-point: rotation is PUT new + DELETE
old), `DELETE /_sim/tokens/{token}` (revoke: every later call with it is 401 with
`WWW-Authenticate: Bearer`; 404 if unknown), `DELETE /_sim/rucio/tokens[?account=]` (expire
issued Rucio tokens, so the client must log in again), `GET /_sim/stats[?method=&route=&token=
&user=&outcome=]` (request counts, `stats.py`; `route` is an fnmatch on the path) and
`DELETE /_sim/stats` (reset the counts).
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from skaha_operator.simulator.control_api import read_json
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.state import SimState, state_of


def set_token(state: SimState, token: str, user: str) -> None:
    """Map `token` to `user` from the next request on (add or replace)."""
    if not token or not user:
        raise SimError(400, "a token and a user are both needed")
    state.config.tokens = {**state.config.tokens, token: user}


def revoke_token(state: SimState, token: str) -> None:
    """Remove `token` from the table; 404 if it is not there."""
    if token not in state.config.tokens:
        raise SimError(404, "no such token")
    state.config.tokens = {t: u for t, u in state.config.tokens.items() if t != token}


def token_users(state: SimState) -> dict[str, int]:
    """How many tokens each user has (the tokens themselves are never shown)."""
    return dict(sorted(Counter(state.config.tokens.values()).items()))


async def get_tokens(request: web.Request) -> web.Response:
    """GET /_sim/tokens."""
    return web.json_response(token_users(state_of(request)))


async def put_token(request: web.Request) -> web.Response:
    """PUT /_sim/tokens/{token} {"user": "<u>"}."""
    body = await read_json(request)
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, str):
        raise SimError(400, 'expected {"user": "<name>"}')
    state = state_of(request)
    set_token(state, request.match_info["token"], user)
    return web.json_response(token_users(state))


async def delete_token(request: web.Request) -> web.Response:
    """DELETE /_sim/tokens/{token}."""
    state = state_of(request)
    revoke_token(state, request.match_info["token"])
    return web.json_response(token_users(state))


async def revoke_rucio_tokens(request: web.Request) -> web.Response:
    """DELETE /_sim/rucio/tokens[?account=]."""
    revoked = state_of(request).rucio.revoke_tokens(request.query.get("account"))
    return web.json_response({"revoked": revoked})


async def get_stats(request: web.Request) -> web.Response:
    """GET /_sim/stats with optional filters."""
    query = request.query
    summary = state_of(request).stats.summary(
        method=query.get("method"),
        route=query.get("route"),
        token=query.get("token"),
        user=query.get("user"),
        outcome=query.get("outcome"),
    )
    return web.json_response(summary)


async def reset_stats(request: web.Request) -> web.Response:
    """DELETE /_sim/stats."""
    stats = state_of(request).stats
    stats.reset()
    return web.json_response(stats.summary())


def add_routes(app: web.Application) -> None:
    """Register the token and stats routes."""
    app.router.add_get("/_sim/tokens", get_tokens)
    app.router.add_put("/_sim/tokens/{token:.+}", put_token)
    app.router.add_delete("/_sim/tokens/{token:.+}", delete_token)
    app.router.add_delete("/_sim/rucio/tokens", revoke_rucio_tokens)
    app.router.add_get("/_sim/stats", get_stats)
    app.router.add_delete("/_sim/stats", reset_stats)
