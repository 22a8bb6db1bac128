"""Tokens revoked and rotated at run time, and request counts (`/_sim/tokens`, `/_sim/stats`)."""

from __future__ import annotations

import asyncio

import pytest

from skaha_operator.simulator import FaultRule, Simulator
from tests.simulator.helpers import FORM, IMAGE, Api, rucio_headers, until

SESSION = "/skaha/v1/session"


async def test_revoked_token_is_401_everywhere_until_restored(alice: Api) -> None:
    """DELETE /_sim/tokens/{t}: Skaha and Cavern answer 401 + Bearer challenge; PUT restores."""
    control = Api(alice.http, alice.base, None)
    revoked = await control.call("DELETE", "/_sim/tokens/tok-alice")
    assert revoked.json() == {"bob": 1, "eve": 1}
    for path in (SESSION, "/skaha/v1/context", "/arc/nodes/home/alice"):
        reply = await alice.call("GET", path)
        assert reply.status == 401, path
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    restored = await control.call("PUT", "/_sim/tokens/tok-alice", json_body={"user": "alice"})
    assert restored.json() == {"alice": 1, "bob": 1, "eve": 1}
    assert (await alice.call("GET", SESSION)).status == 200


async def test_rotation_keeps_the_user(sim: Simulator, alice: Api) -> None:
    """PUT a new token for the same user, DELETE the old one: the old is 401, the new sees all."""
    control = Api(alice.http, alice.base, None)
    sid = await alice.launch_id(name="job")
    new = "tok/alice+2="  # tokens may hold '/', '+' and '='
    put = await control.call("PUT", f"/_sim/tokens/{new}", json_body={"user": "alice"})
    assert put.status == 200
    assert (await control.call("DELETE", "/_sim/tokens/tok-alice")).status == 200
    assert (await alice.call("GET", SESSION)).status == 401
    rotated = Api(alice.http, alice.base, new)
    assert [s["id"] for s in await rotated.sessions()] == [sid]


async def test_token_control_errors_and_in_process_calls(sim: Simulator, alice: Api) -> None:
    """Unknown token → 404, a body without a user → 400; sim.revoke_token/set_token do the same."""
    control = Api(alice.http, alice.base, None)
    assert (await control.call("DELETE", "/_sim/tokens/nope")).status == 404
    assert (await control.call("PUT", "/_sim/tokens/x", json_body={"name": "a"})).status == 400
    sim.revoke_token("tok-alice")
    assert (await alice.call("GET", SESSION)).status == 401
    sim.set_token("tok-alice", "alice")
    assert (await alice.call("GET", SESSION)).status == 200


async def test_rucio_tokens_revoked(alice: Api) -> None:
    """DELETE /_sim/rucio/tokens: issued Rucio tokens stop working; a new login works."""
    control = Api(alice.http, alice.base, None)
    headers = await rucio_headers(alice)
    assert (await alice.call("GET", "/rucio/rules/", headers=headers)).status == 200
    revoked = await control.call("DELETE", "/_sim/rucio/tokens", params={"account": "alice"})
    assert revoked.json() == {"revoked": 1}
    reply = await alice.call("GET", "/rucio/rules/", headers=headers)
    assert (reply.status, reply.headers["ExceptionClass"]) == (401, "CannotAuthenticate")
    headers = await rucio_headers(alice)
    assert (await alice.call("GET", "/rucio/rules/", headers=headers)).status == 200


async def test_stats_count_by_route_token_and_outcome(sim: Simulator, alice: Api) -> None:
    """GET /_sim/stats counts every call (not /_sim ones) with filters; DELETE resets."""
    control = Api(alice.http, alice.base, None)
    await alice.launch_id(name="a")
    await alice.launch_id(name="b")
    for _ in range(3):
        await alice.sessions()
    stranger = Api(alice.http, alice.base, "tok-unknown")
    assert (await stranger.call("GET", SESSION)).status == 401
    await control.call("GET", "/_sim/sessions")

    everything = (await control.call("GET", "/_sim/stats")).json()
    assert everything["count"] == 6
    assert everything["by_token"] == {"tok-alice": 5, "tok-unknown": 1}
    assert everything["by_user"] == {"": 1, "alice": 5}
    assert everything["by_outcome"] == {"200": 5, "401": 1}
    assert everything["by_route"] == {f"GET {SESSION}": 4, f"POST {SESSION}": 2}
    posts = await control.call("GET", "/_sim/stats", params={"method": "post", "route": "/skaha/*"})
    assert posts.json()["count"] == 2
    assert sim.stats(token="tok-alice", outcome="200")["count"] == 5
    assert (await control.call("DELETE", "/_sim/stats")).json()["count"] == 0
    assert sim.stats()["count"] == 0


async def test_stats_see_requests_in_flight_and_abandoned(sim: Simulator, alice: Api) -> None:
    """A hung call is counted on arrival (`in-flight`), then `cancelled` once the client leaves."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", hang_s=30)])
    call = asyncio.create_task(
        alice.call(
            "POST", SESSION, params={"image": IMAGE, "name": "x"}, headers=FORM, deadline_s=0.5
        )
    )

    async def arrived() -> bool:
        return bool(sim.stats(outcome="in-flight")["count"] == 1)

    await until(arrived)
    with pytest.raises(asyncio.TimeoutError):
        await call

    async def cancelled() -> bool:
        return bool(sim.stats(outcome="cancelled")["count"] == 1)

    await until(cancelled)
    assert sim.stats()["count"] == 1
