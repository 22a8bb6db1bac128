"""Fault knobs at the HTTP level: docs/platform-api.md §9.10."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from skaha_operator.simulator import FaultRule, Simulator
from skaha_operator.simulator.faults import FaultBook
from tests.simulator.helpers import IMAGE, Api

SESSION = "/skaha/v1/session"


async def test_p_503_with_retry_after(sim: Simulator, alice: Api) -> None:
    """p_503: 503 text/plain `temporarily unavailable: <path>` with Retry-After."""
    sim.set_faults([FaultRule(route=SESSION, method="GET", p_503=1.0, retry_after_s=7)])
    reply = await alice.call("GET", SESSION)
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "7"
    assert reply.text == f"temporarily unavailable: {SESSION}\n"


async def test_p_500_and_p_429(sim: Simulator, alice: Api) -> None:
    """p_500 body `unexpected exception: java.lang.RuntimeException: …`; p_429 with Retry-After."""
    sim.set_faults([FaultRule(route="/skaha/v1/image", p_500=1.0)])
    reply = await alice.call("GET", "/skaha/v1/image")
    assert reply.status == 500
    assert reply.text.startswith("unexpected exception: java.lang.RuntimeException: ")
    sim.set_faults([FaultRule(route="/skaha/v1/context", p_429=1.0, retry_after_s=2)])
    reply = await alice.call("GET", "/skaha/v1/context")
    assert (reply.status, reply.headers["Retry-After"]) == (429, "2")


async def test_rules_match_route_and_method(sim: Simulator, alice: Api) -> None:
    """A rule for POST does not touch GET of the same route; glob patterns match."""
    sim.set_faults([FaultRule(route="/skaha/v1/sess*", method="POST", p_503=1.0)])
    assert (await alice.call("GET", SESSION)).status == 200
    assert (await alice.launch(image=IMAGE, name="x")).status == 503


async def test_count_limits_a_rule(sim: Simulator, alice: Api) -> None:
    """`count=2`: only the next two matching requests fail."""
    sim.set_faults([FaultRule(route=SESSION, p_503=1.0, count=2)])
    statuses = [(await alice.call("GET", SESSION)).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]


async def test_probability_is_seeded() -> None:
    """Same seed, same request sequence → the same fault draws; about p of them fail."""

    def draws(seed: int) -> list[int | None]:
        book = FaultBook([FaultRule(p_503=0.3)], seed)
        return [book.plan("GET", SESSION).error_status for _ in range(400)]

    first = draws(11)
    assert first == draws(11)
    assert first != draws(12)
    assert 80 <= first.count(503) <= 160


async def test_latency_delays_but_answers(sim: Simulator, alice: Api) -> None:
    """latency_ms + jitter: the reply still arrives intact."""
    sim.set_faults([FaultRule(route=SESSION, latency_ms=20, jitter_ms=10)])
    assert (await alice.call("GET", SESSION)).status == 200


async def test_hang_outlasts_client_timeout(sim: Simulator, alice: Api) -> None:
    """hang_s: the client times out; the abandoned request does not launch anything."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", hang_s=30)])
    with pytest.raises(asyncio.TimeoutError):
        await alice.call(
            "POST",
            SESSION,
            params={"image": IMAGE, "name": "x"},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            deadline_s=0.5,
        )
    sim.clear_faults()
    assert await alice.sessions() == []


async def test_reset_drops_the_connection(sim: Simulator, alice: Api) -> None:
    """p_reset: the connection is cut mid-response; the client sees a transport error."""
    sim.set_faults([FaultRule(route=SESSION, method="GET", p_reset=1.0)])
    with pytest.raises(aiohttp.ClientError):
        await alice.call("GET", SESSION)
    sim.clear_faults()
    assert (await alice.call("GET", SESSION)).status == 200


async def test_fail_after_commit_leaves_a_ghost(sim: Simulator, alice: Api) -> None:
    """fail_after_commit: POST answers 500 but the session exists (found via GET /session)."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", fail_after_commit=1.0)])
    reply = await alice.launch(image=IMAGE, name="ghost", type="notebook")
    assert reply.status == 500
    assert reply.text.startswith("unexpected exception: ")
    ghosts = await alice.sessions()
    assert [g["name"] for g in ghosts] == ["ghost"]


async def test_fail_after_commit_does_not_hide_rejections(sim: Simulator, alice: Api) -> None:
    """A launch the server rejects (400) is reported as such: nothing was committed."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", fail_after_commit=1.0)])
    assert (await alice.launch(name="x")).status == 400


async def test_stuck_pending_until_deadline(sim: Simulator, alice: Api) -> None:
    """stuck_pending: Pending with ErrImagePull/BackOff events, then Failed at the deadline."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", stuck_pending=1.0)])
    sid = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(3600)
    assert await alice.status(sid) == "Pending"
    events = await alice.call("GET", f"{SESSION}/{sid}", params={"view": "events"})
    assert "ErrImagePull" in events.text
    assert "BackOff" in events.text
    sim.clock.advance(345600)
    assert await alice.status(sid) == "Failed"


async def test_stats_unavailable_is_503(sim: Simulator, alice: Api) -> None:
    """(n) stats failing is 503 `Platform statistics unavailable`, not 500."""
    sim.set_faults([FaultRule(route=SESSION, method="GET", stats_unavailable=True)])
    reply = await alice.call("GET", SESSION, params={"view": "stats"})
    assert (reply.status, reply.text) == (503, "Platform statistics unavailable\n")
    assert "Retry-After" in reply.headers
    assert (await alice.call("GET", SESSION)).status == 200


async def test_home_alloc_fail_is_500(sim: Simulator, alice: Api) -> None:
    """home_alloc_fail: launch answers 500 while Cavern is down; nothing is created."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", home_alloc_fail=True)])
    reply = await alice.launch(image=IMAGE, name="x")
    assert reply.status == 500
    assert await alice.sessions() == []


async def test_max_sessions_override(sim: Simulator, alice: Api) -> None:
    """max_sessions: the interactive cap follows the rule's value."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", max_sessions=1)])
    await alice.launch_id(name="one", type="notebook")
    reply = await alice.launch(image=IMAGE, name="two", type="notebook")
    assert reply.text == "User alice has reached the maximum of 1 active sessions.\n"


async def test_faults_via_http_control_api(sim: Simulator, alice: Api) -> None:
    """POST/GET/DELETE /_sim/faults drive the same rule set; /_sim is never faulted."""
    control = Api(alice.http, alice.base, None)
    rules = [{"route": "/skaha/v1/*", "method": "GET", "p_503": 1.0}]
    posted = await control.call("POST", "/_sim/faults", json_body=rules)
    assert posted.status == 200
    assert (await alice.call("GET", SESSION)).status == 503
    assert (await control.call("GET", "/_sim/faults")).json()[0]["p_503"] == 1.0
    appended = await control.call(
        "POST", "/_sim/faults", params={"append": "true"}, json_body=[{"route": "/arc/*"}]
    )
    assert len(appended.json()) == 2
    assert (await control.call("DELETE", "/_sim/faults")).json() == []
    assert (await alice.call("GET", SESSION)).status == 200
    bad = await control.call("POST", "/_sim/faults", json_body=[{"route": "/x", "p_9": 1}])
    assert bad.status == 400


async def test_rucio_faults_use_rucio_error_style(sim: Simulator, alice: Api) -> None:
    """Injected errors on Rucio routes carry ExceptionClass headers."""
    sim.set_faults([FaultRule(route="/rucio/*", p_503=1.0)])
    reply = await alice.call("GET", "/rucio/rules/")
    assert (reply.status, reply.headers["ExceptionClass"]) == (503, "ServiceUnavailable")
