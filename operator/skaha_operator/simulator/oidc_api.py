"""A small OIDC issuer: refresh tokens exchanged for access tokens that expire (docs/simulator.md).

`POST /oidc/token` answers the OAuth2 `refresh_token` grant (RFC 6749 §6): a form with
`grant_type=refresh_token` and `refresh_token`, the client authenticated by HTTP Basic or by
`client_id` (and `client_secret`) in the form. A refresh token of the `oidc_refresh_tokens` table
yields an access token for its user that Skaha and Cavern accept until `access_token_ttl_s` has
passed on the simulator clock (then 401, like an unknown token). With
`oidc_rotate_refresh_tokens` the reply carries a new refresh token and the one used is retired.
Errors are RFC 6749 §5.2 JSON: 400 `invalid_request`, `unsupported_grant_type`, `invalid_grant`
(unknown, revoked or retired refresh token), 401 `invalid_client`.
`GET /oidc/.well-known/openid-configuration` is the discovery document (issuer `<base>/oidc`).

Control routes (unauthenticated, like the rest of `/_sim`): `GET /_sim/oidc` (refresh tokens and
live access tokens per user, grants by outcome and per user; no token is shown),
`PUT /_sim/oidc/refresh-tokens/{token}` `{"user": "<u>"}`, `DELETE /_sim/oidc/refresh-tokens/
{token}` (revoke: its next use is `invalid_grant`), `DELETE /_sim/oidc/access-tokens[?user=]`
(every live access token, or one user's, is refused from now on).
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from skaha_operator.simulator.control_api import read_json
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.state import SimState, state_of

ISSUER_PATH = "/oidc"
TOKEN_PATH = "/oidc/token"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": error, "error_description": description}
    return web.json_response(body, status=status, headers={**NO_STORE, **(headers or {})})


def _client(request: web.Request, form: dict[str, str]) -> tuple[str | None, str | None, bool]:
    """(client_id, client_secret, by Basic) from the Authorization header or the form."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None, None, True
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret), True
    return form.get("client_id"), form.get("client_secret"), False


def _refresh_error(state: SimState, token: str) -> str | None:
    """Why `token` cannot be used, or None when it maps to a user."""
    if token in state.config.oidc_refresh_tokens:
        return None
    return state.oidc.revoked.get(token, "unknown refresh token")


async def token_endpoint(request: web.Request) -> web.Response:
    """POST /oidc/token: the refresh_token grant."""
    state = state_of(request)
    store = state.oidc
    if request.content_type != "application/x-www-form-urlencoded":
        store.grants["invalid_request"] += 1
        return _oauth_error(400, "invalid_request", "expected a form-urlencoded body")
    form = {k: str(v) for k, v in (await request.post()).items()}
    client_id, secret, basic = _client(request, form)
    clients = state.config.oidc_clients
    if not client_id or (clients is not None and clients.get(client_id) != (secret or "")):
        store.grants["invalid_client"] += 1
        challenge = {"WWW-Authenticate": 'Basic realm="skaha-simulator"'} if basic else {}
        return _oauth_error(401, "invalid_client", "client authentication failed", challenge)
    if form.get("grant_type") != "refresh_token":
        store.grants["unsupported_grant_type"] += 1
        return _oauth_error(400, "unsupported_grant_type", "only refresh_token is supported")
    refresh = form.get("refresh_token", "")
    if not refresh:
        store.grants["invalid_request"] += 1
        return _oauth_error(400, "invalid_request", "refresh_token is missing")
    why = _refresh_error(state, refresh)
    if why is not None:
        store.grants["invalid_grant"] += 1
        return _oauth_error(400, "invalid_grant", why)
    user = state.config.oidc_refresh_tokens[refresh]
    ttl = state.config.access_token_ttl_s
    body: dict[str, Any] = {
        "access_token": store.issue(user, state.clock.now(), ttl),
        "token_type": "Bearer",
        "expires_in": int(ttl) if float(ttl).is_integer() else ttl,
        "scope": form.get("scope") or "openid offline_access",
    }
    if state.config.oidc_rotate_refresh_tokens:
        new = store.new_token("rt", user)
        table = {t: u for t, u in state.config.oidc_refresh_tokens.items() if t != refresh}
        state.config.oidc_refresh_tokens = {**table, new: user}
        store.revoked[refresh] = "refresh token was rotated and may not be used again"
        body["refresh_token"] = new
    store.grants["ok"] += 1
    store.grants_by_user[user] += 1
    return web.json_response(body, headers=NO_STORE)


async def discovery(request: web.Request) -> web.Response:
    """GET /oidc/.well-known/openid-configuration."""
    base = state_of(request).base_url
    return web.json_response(
        {
            "issuer": base + ISSUER_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "grant_types_supported": ["refresh_token"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
    )


# -- control -------------------------------------------------------------------------------------


def summary(state: SimState) -> dict[str, Any]:
    """Refresh tokens and live access tokens per user, grants by outcome; no token shown."""
    store = state.oidc
    return {
        "refresh_tokens": dict(sorted(Counter(state.config.oidc_refresh_tokens.values()).items())),
        "access_tokens": store.live_by_user(state.clock.now()),
        "grants": dict(sorted(store.grants.items())),
        "grants_by_user": dict(sorted(store.grants_by_user.items())),
    }


def set_refresh_token(state: SimState, token: str, user: str) -> None:
    """Map a refresh token to a user (add, or re-point)."""
    if not token or not user:
        raise SimError(400, "a refresh token and a user are both needed")
    state.config.oidc_refresh_tokens = {**state.config.oidc_refresh_tokens, token: user}
    state.oidc.revoked.pop(token, None)


def revoke_refresh_token(state: SimState, token: str) -> None:
    """Revoke a refresh token: its next use is `invalid_grant`; 404 if it is not there."""
    if token not in state.config.oidc_refresh_tokens:
        raise SimError(404, "no such refresh token")
    table = state.config.oidc_refresh_tokens
    state.config.oidc_refresh_tokens = {t: u for t, u in table.items() if t != token}
    state.oidc.revoked[token] = "refresh token has been revoked"


async def get_oidc(request: web.Request) -> web.Response:
    """GET /_sim/oidc."""
    return web.json_response(summary(state_of(request)))


async def put_refresh_token(request: web.Request) -> web.Response:
    """PUT /_sim/oidc/refresh-tokens/{token} {"user": "<u>"}."""
    body = await read_json(request)
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, str):
        raise SimError(400, 'expected {"user": "<name>"}')
    state = state_of(request)
    set_refresh_token(state, request.match_info["token"], user)
    return web.json_response(summary(state))


async def delete_refresh_token(request: web.Request) -> web.Response:
    """DELETE /_sim/oidc/refresh-tokens/{token}."""
    state = state_of(request)
    revoke_refresh_token(state, request.match_info["token"])
    return web.json_response(summary(state))


async def delete_access_tokens(request: web.Request) -> web.Response:
    """DELETE /_sim/oidc/access-tokens[?user=]."""
    revoked = state_of(request).oidc.revoke_access(request.query.get("user"))
    return web.json_response({"revoked": revoked})


def add_routes(app: web.Application) -> None:
    """Register the issuer and its control routes."""
    app.router.add_post(TOKEN_PATH, token_endpoint)
    app.router.add_get(ISSUER_PATH + "/.well-known/openid-configuration", discovery)
    app.router.add_get("/_sim/oidc", get_oidc)
    app.router.add_put("/_sim/oidc/refresh-tokens/{token:.+}", put_refresh_token)
    app.router.add_delete("/_sim/oidc/refresh-tokens/{token:.+}", delete_refresh_token)
    app.router.add_delete("/_sim/oidc/access-tokens", delete_access_tokens)
