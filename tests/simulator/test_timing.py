"""Timing windows of a real platform: answer_delay_s, commit_delay_s, list_lag_s (faults.py).

The simulator clock is frozen (conftest), so commits happen when a test advances it; the wall
clock matters only for the answer delays and client timeouts, each under a deadline.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from skaha_operator.simulator import FaultRule, Simulator
from tests.simulator.helpers import FORM, IMAGE, Api, one_rule, rucio_headers, until

SESSION = "/skaha/v1/session"
LAUNCH = {"image": IMAGE, "name": "nb", "type": "notebook"}


async def launch_abandoned(api: Api, deadline_s: float = 0.3) -> None:
    """A launch whose client gives up after `deadline_s`."""
    with pytest.raises(asyncio.TimeoutError):
        await api.call("POST", SESSION, params=LAUNCH, headers=FORM, deadline_s=deadline_s)


async def test_answer_delay_commits_before_answering(sim: Simulator, alice: Api) -> None:
    """answer_delay_s: the session is listed while the answer is still on its way."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", answer_delay_s=0.5)])
    answer = asyncio.create_task(alice.launch(**LAUNCH))

    async def listed() -> bool:
        return len(await alice.sessions()) == 1

    await until(listed)
    assert not answer.done()
    reply = await asyncio.wait_for(answer, 5)
    assert reply.status == 200
    assert reply.text == sim.launches()[0]["id"] + "\n"


async def test_answer_delay_client_gives_up_but_launched(sim: Simulator, alice: Api) -> None:
    """A client timing out during answer_delay_s has still launched (exactly once)."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", answer_delay_s=30)])
    await launch_abandoned(alice)
    assert [s["name"] for s in await alice.sessions()] == ["nb"]
    assert len(sim.launches()) == 1


async def test_commit_delay_answer_waits_for_the_commit(sim: Simulator, alice: Api) -> None:
    """commit_delay_s alone: invisible (list, GET, DELETE) until the clock reaches the commit."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", commit_delay_s=10)])
    answer = asyncio.create_task(alice.launch(**LAUNCH))

    async def accepted() -> bool:
        return len(sim.launches()) == 1

    await until(accepted)
    sid = sim.launches()[0]["id"]
    assert sim.launches()[0]["committed"] is False
    assert await alice.sessions() == []
    assert (await alice.session(sid)).status == 404
    assert not answer.done()
    sim.clock.advance(10)
    reply = await asyncio.wait_for(answer, 5)
    assert (reply.status, reply.text) == (200, sid + "\n")
    assert await alice.status(sid) == "Pending"
    sim.clock.advance(5)  # the schedule runs from the commit
    assert await alice.status(sid) == "Running"


async def test_commit_delay_session_appears_after_client_timeout(
    sim: Simulator, alice: Api
) -> None:
    """The client gave up; the session commits afterwards anyway."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", commit_delay_s=10)])
    await launch_abandoned(alice)
    assert await alice.sessions() == []
    sim.clock.advance(10)
    assert [s["name"] for s in await alice.sessions()] == ["nb"]


async def test_commit_delay_with_500_answers_at_once(sim: Simulator, alice: Api) -> None:
    """commit_delay_s + p_500: 500 at once, the session appears commit_delay_s later."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", commit_delay_s=10, p_500=1.0)])
    reply = await alice.call("POST", SESSION, params=LAUNCH, headers=FORM, deadline_s=2)
    assert reply.status == 500
    assert await alice.sessions() == []
    sim.clock.advance(10)
    assert len(await alice.sessions()) == 1


async def test_commit_delay_with_reset_drops_at_once(sim: Simulator, alice: Api) -> None:
    """commit_delay_s + p_reset: the connection drops at once, the session appears later."""
    sim.set_faults([FaultRule(route=SESSION, method="POST", commit_delay_s=10, p_reset=1.0)])
    with pytest.raises(aiohttp.ClientError):
        await alice.call("POST", SESSION, params=LAUNCH, headers=FORM, deadline_s=2)
    assert await alice.sessions() == []
    sim.clock.advance(10)
    assert len(await alice.sessions()) == 1


async def test_uncommitted_launch_is_outside_the_cap(sim: Simulator, alice: Api) -> None:
    """The cap counts what the API server holds; an uncommitted launch is not there yet."""
    sim.configure(max_sessions=1)
    sim.set_faults([FaultRule(route=SESSION, method="POST", commit_delay_s=10, p_500=1.0)])
    assert (await alice.launch(**LAUNCH)).status == 500
    sim.clear_faults()
    assert (await alice.launch(**LAUNCH)).status == 200
    sim.clock.advance(10)
    assert len(await alice.sessions()) == 2


async def test_commit_delay_on_a_running_clock() -> None:
    """With a running clock the commit delay is wall time (what integration tests use)."""
    sim = Simulator()
    sim.set_faults([FaultRule(route=SESSION, method="POST", commit_delay_s=0.6)])
    try:
        async with (
            sim.serve() as running,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            alice = Api(http, running.base_url, "tok-alice")
            await launch_abandoned(alice, deadline_s=0.2)
            assert await alice.sessions() == []

            async def listed() -> bool:
                return len(await alice.sessions()) == 1

            await until(listed, deadline_s=5)
    finally:
        sim.close()


async def test_list_lag_hides_new_sessions_from_listings(sim: Simulator, alice: Api) -> None:
    """list_lag_s: GET by id works at once; listings show the session list_lag_s later."""
    sim.set_faults([FaultRule(route=SESSION, method="GET", list_lag_s=5)])
    sid = await alice.launch_id(**LAUNCH)
    assert await alice.status(sid) == "Pending"
    assert await alice.sessions() == []
    assert await alice.sessions(view="interactive") == []
    sim.clock.advance(5)
    assert [s["id"] for s in await alice.sessions()] == [sid]


async def test_rucio_commit_delay_and_duplicate(sim: Simulator, alice: Api) -> None:
    """Rule creation answered 500 commits later; a retry meanwhile is 409 DuplicateRule."""
    headers = await rucio_headers(alice)
    sim.set_faults([FaultRule(route="/rucio/rules/", method="POST", commit_delay_s=10, p_500=1)])
    first = await alice.call("POST", "/rucio/rules/", json_body=one_rule(), headers=headers)
    assert first.status == 500
    did_rules = "/rucio/dids/user.alice/file1/rules"
    assert (await alice.call("GET", did_rules, headers=headers)).text == ""
    sim.clear_faults()
    retry = await alice.call("POST", "/rucio/rules/", json_body=one_rule(), headers=headers)
    assert (retry.status, retry.headers["ExceptionClass"]) == (409, "DuplicateRule")
    sim.clock.advance(10)
    listed = (await alice.call("GET", did_rules, headers=headers)).text.splitlines()
    assert len(listed) == 1


async def test_rucio_commit_delay_answer_waits(sim: Simulator, alice: Api) -> None:
    """Without an error fault the 201 arrives once the rule is committed."""
    headers = await rucio_headers(alice)
    sim.set_faults([FaultRule(route="/rucio/rules/", method="POST", commit_delay_s=10)])
    answer = asyncio.create_task(
        alice.call("POST", "/rucio/rules/", json_body=one_rule(), headers=headers)
    )
    await asyncio.sleep(0.2)
    assert not answer.done()
    sim.clock.advance(10)
    reply = await asyncio.wait_for(answer, 5)
    assert reply.status == 201
    rule = await alice.call("GET", f"/rucio/rules/{reply.json()[0]}", headers=headers)
    assert rule.status == 200


async def test_rucio_answer_delay_and_list_lag(sim: Simulator, alice: Api) -> None:
    """answer_delay_s commits the rule before the client gives up; list_lag_s hides it a while."""
    headers = await rucio_headers(alice)
    sim.set_faults(
        [
            FaultRule(route="/rucio/rules/", method="POST", answer_delay_s=30),
            FaultRule(route="/rucio/dids/*/rules", method="GET", list_lag_s=5),
            FaultRule(route="/rucio/rules/", method="GET", list_lag_s=5),
        ]
    )
    with pytest.raises(asyncio.TimeoutError):
        await alice.call(
            "POST", "/rucio/rules/", json_body=one_rule(), headers=headers, deadline_s=0.3
        )
    assert len(await _sim_rules(alice)) == 1
    did_rules = "/rucio/dids/user.alice/file1/rules"
    assert (await alice.call("GET", did_rules, headers=headers)).text == ""
    assert (await alice.call("GET", "/rucio/rules/", headers=headers)).text == ""
    rid = (await _sim_rules(alice))[0]["id"]
    assert (await alice.call("GET", f"/rucio/rules/{rid}", headers=headers)).status == 200
    sim.clock.advance(5)
    assert len((await alice.call("GET", did_rules, headers=headers)).text.splitlines()) == 1


async def _sim_rules(api: Api) -> list[dict[str, object]]:
    reply = await Api(api.http, api.base, None).call("GET", "/_sim/rules")
    rules: list[dict[str, object]] = reply.json()
    return rules
