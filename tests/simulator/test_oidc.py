"""The simulated OIDC issuer: the refresh_token grant, expiring access tokens, revocation,
rotation, discovery and the `/_sim/oidc` control routes (simulator/oidc_api.py).

The clock is frozen (conftest), so expiry is reached only by advancing it.
"""

from __future__ import annotations

import base64

import pytest

from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.simulator.conftest import TOKENS
from tests.simulator.helpers import Api

SESSION = "/skaha/v1/session"
TOKEN = "/oidc/token"
REFRESH = "rt-alice-1"


@pytest.fixture
def config() -> SimulatorConfig:
    """A frozen clock, a refresh token for alice and one for bob, 60 s access tokens."""
    return SimulatorConfig(
        tokens=TOKENS,
        seed=1,
        frozen_clock=True,
        oidc_refresh_tokens={REFRESH: "alice", "rt-bob-1": "bob"},
        access_token_ttl_s=60,
    )


def grant(refresh: str = REFRESH, **extra: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "op", **extra}


async def exchange(api: Api, refresh: str = REFRESH) -> str:
    reply = await api.call("POST", TOKEN, data=grant(refresh))
    assert reply.status == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


async def test_a_refresh_token_buys_an_access_token_that_expires(
    sim: Simulator, base_url: str, alice: Api
) -> None:
    anonymous = Api(alice.http, base_url, None)
    reply = await anonymous.call("POST", TOKEN, data=grant())
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    assert "refresh_token" not in body  # no rotation by default
    user = Api(alice.http, base_url, body["access_token"])
    listed = await user.call("GET", SESSION)
    assert (listed.status, listed.headers["X-VO-Authenticated"]) == (200, "alice")
    node = await user.call("GET", "/arc/nodes/home/alice")  # no home yet: 404, but as alice
    assert (node.status, node.headers["X-VO-Authenticated"]) == (404, "alice")
    sim.clock.advance(59.9)
    assert (await user.call("GET", SESSION)).status == 200
    sim.clock.advance(0.1)
    expired = await user.call("GET", SESSION)
    assert expired.status == 401
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await user.call("GET", "/arc/nodes/home/alice")).status == 401
    # A new exchange works again; the static tokens never expire.
    fresh = Api(alice.http, base_url, await exchange(anonymous))
    assert (await fresh.call("GET", SESSION)).status == 200
    assert (await alice.call("GET", SESSION)).status == 200
    assert sim.oidc()["grants"] == {"ok": 2}


async def test_grant_errors_are_oauth_json(sim: Simulator, base_url: str, alice: Api) -> None:
    api = Api(alice.http, base_url, None)
    cases = [
        (grant("rt-nobody"), 400, "invalid_grant", "unknown refresh token"),
        (grant(grant_type="password"), 400, "unsupported_grant_type", None),
        ({"grant_type": "refresh_token", "client_id": "op"}, 400, "invalid_request", None),
        ({"grant_type": "refresh_token", "refresh_token": REFRESH}, 401, "invalid_client", None),
    ]
    for form, status, error, description in cases:
        reply = await api.call("POST", TOKEN, data=form)
        assert (reply.status, reply.json()["error"]) == (status, error), form
        assert reply.content_type == "application/json"
        if description is not None:
            assert reply.json()["error_description"] == description
    as_json = await api.call("POST", TOKEN, json_body=grant())
    assert (as_json.status, as_json.json()["error"]) == (400, "invalid_request")
    assert sim.oidc()["grants"] == {
        "invalid_client": 1,
        "invalid_grant": 1,
        "invalid_request": 2,
        "unsupported_grant_type": 1,
    }


async def test_a_revoked_refresh_token_is_invalid_grant(
    sim: Simulator, base_url: str, alice: Api
) -> None:
    control = Api(alice.http, base_url, None)
    access = await exchange(control)
    revoked = await control.call("DELETE", f"/_sim/oidc/refresh-tokens/{REFRESH}")
    assert revoked.status == 200
    assert revoked.json()["refresh_tokens"] == {"bob": 1}
    reply = await control.call("POST", TOKEN, data=grant())
    assert reply.status == 400
    assert reply.json() == {
        "error": "invalid_grant",
        "error_description": "refresh token has been revoked",
    }
    # The access token already issued lives on until it expires or is revoked itself.
    user = Api(alice.http, base_url, access)
    assert (await user.call("GET", SESSION)).status == 200
    gone = await control.call("DELETE", "/_sim/oidc/access-tokens", params={"user": "alice"})
    assert gone.json() == {"revoked": 1}
    assert (await user.call("GET", SESSION)).status == 401
    assert (await control.call("DELETE", f"/_sim/oidc/refresh-tokens/{REFRESH}")).status == 404
    # Restored (PUT), the same refresh token works again.
    put = await control.call(
        "PUT", f"/_sim/oidc/refresh-tokens/{REFRESH}", json_body={"user": "alice"}
    )
    assert put.json()["refresh_tokens"] == {"alice": 1, "bob": 1}
    await exchange(control)
    sim.revoke_refresh_token(REFRESH)
    assert (await control.call("POST", TOKEN, data=grant())).status == 400
    sim.set_refresh_token(REFRESH, "alice")
    await exchange(control)


async def test_rotation_retires_the_refresh_token_used(
    sim: Simulator, base_url: str, alice: Api
) -> None:
    sim.configure(oidc_rotate_refresh_tokens=True)
    api = Api(alice.http, base_url, None)
    first = (await api.call("POST", TOKEN, data=grant())).json()
    second_token = first["refresh_token"]
    assert second_token != REFRESH
    reused = await api.call("POST", TOKEN, data=grant())
    assert (reused.status, reused.json()["error"]) == (400, "invalid_grant")
    assert "rotated" in reused.json()["error_description"]
    second = (await api.call("POST", TOKEN, data=grant(second_token))).json()
    assert second["refresh_token"] not in (REFRESH, second_token)
    assert sim.oidc()["refresh_tokens"] == {"alice": 1, "bob": 1}
    assert sim.oidc()["grants_by_user"] == {"alice": 2}


async def test_registered_clients_authenticate_by_basic_or_form(
    sim: Simulator, base_url: str, alice: Api
) -> None:
    sim.configure(oidc_clients={"op": "s3cret", "public": ""})
    api = Api(alice.http, base_url, None)
    basic = base64.b64encode(b"op:s3cret").decode()
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH}
    ok = await api.call("POST", TOKEN, data=form, headers={"Authorization": f"Basic {basic}"})
    assert ok.status == 200
    assert (await api.call("POST", TOKEN, data=grant(client_secret="s3cret"))).status == 200
    assert (await api.call("POST", TOKEN, data={**form, "client_id": "public"})).status == 200
    wrong = base64.b64encode(b"op:nope").decode()
    refused = await api.call("POST", TOKEN, data=form, headers={"Authorization": f"Basic {wrong}"})
    assert (refused.status, refused.json()["error"]) == (401, "invalid_client")
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert (await api.call("POST", TOKEN, data=grant(client_secret="nope"))).status == 401
    # Client secrets and refresh tokens are not shown by the config route.
    shown = (await api.call("GET", "/_sim/config")).json()
    assert not {"tokens", "oidc_refresh_tokens", "oidc_clients"} & set(shown)
    assert shown["access_token_ttl_s"] == 60


async def test_discovery_names_the_token_endpoint(base_url: str, alice: Api) -> None:
    api = Api(alice.http, base_url, None)
    doc = (await api.call("GET", "/oidc/.well-known/openid-configuration")).json()
    assert doc["issuer"] == f"{base_url}/oidc"
    assert doc["token_endpoint"] == f"{base_url}/oidc/token"
    assert "refresh_token" in doc["grant_types_supported"]


async def test_grants_are_counted_and_faulted_like_any_route(
    sim: Simulator, base_url: str, alice: Api
) -> None:
    api = Api(alice.http, base_url, None)
    sim.set_faults([{"route": TOKEN, "method": "POST", "p_503": 1, "count": 1}])
    assert (await api.call("POST", TOKEN, data=grant())).status == 503
    await exchange(api)
    counts = sim.stats(route=TOKEN)
    assert counts["by_outcome"] == {"200": 1, "503": 1}
    summary = sim.oidc()
    assert summary["grants"] == {"ok": 1}  # the faulted request never reached the issuer
    assert summary["access_tokens"] == {"alice": 1}
    sim.clock.advance(60)
    assert sim.oidc()["access_tokens"] == {}
