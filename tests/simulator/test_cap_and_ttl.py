"""The interactive-session cap (docs/platform-api.md §2) and the headless job TTL set at run time
(§3)."""

from __future__ import annotations

import aiohttp

from skaha_operator.simulator import Simulator
from tests.simulator.helpers import IMAGE, Api, until

CAP_MESSAGE = "User alice has reached the maximum of {n} active sessions.\n"
INTERACTIVE = ("notebook", "desktop", "carta", "contributed", "firefly")


async def fill_cap(alice: Api, n: int) -> list[str]:
    """Launch n interactive sessions, one of each type in turn."""
    return [
        await alice.launch_id(name=f"s{i}", type=INTERACTIVE[i % len(INTERACTIVE)])
        for i in range(n)
    ]


async def test_cap_is_checked_after_name_and_before_gpus(sim: Simulator, alice: Api) -> None:
    """§2 order: … name regex → cap → gpus → home → private-image auth."""
    sim.configure(max_sessions=2)
    assert (await alice.launch(image=IMAGE, name="x", type="notebook", gpus="0")).text == (
        "Invalid value for 'gpus': 0\n"
    )
    await fill_cap(alice, 2)
    bad_name = await alice.launch(image=IMAGE, name="a_b", type="notebook")
    assert bad_name.text == "name can only contain alpha-numeric chars and '-'\n"
    capped = await alice.launch(image=IMAGE, name="x", type="notebook", gpus="0")
    assert (capped.status, capped.text) == (400, CAP_MESSAGE.format(n=2))
    assert capped.content_type == "text/plain"
    private = "images.canfar.net/private/thing:1"
    assert (await alice.launch(image=private, name="x", type="carta")).text == (
        CAP_MESSAGE.format(n=2)
    )


async def test_cap_counts_pending_and_running_of_every_interactive_type(
    sim: Simulator, alice: Api
) -> None:
    """Pending and Running sessions of all five interactive types count; finished ones do not."""
    ids = await fill_cap(alice, 5)
    sim.clock.advance(5)  # some Running now, all still active
    sim.force(ids[1], "Running")
    assert (await alice.launch(image=IMAGE, name="x", type="firefly")).text == (
        CAP_MESSAGE.format(n=5)
    )
    sim.force(ids[0], "Failed")
    assert (await alice.launch(image=IMAGE, name="x", type="firefly")).status == 200
    sim.force(ids[2], "Completed")
    assert (await alice.launch(image=IMAGE, name="y", type="desktop")).status == 200
    assert (await alice.launch(image=IMAGE, name="z", type="desktop")).status == 400


async def test_cap_set_at_run_time_is_published_in_context(alice: Api) -> None:
    """PATCH /_sim/config max_sessions: /context maxInteractiveSessions and the check follow."""
    control = Api(alice.http, alice.base, None)
    assert (
        await control.call("PATCH", "/_sim/config", json_body={"max_sessions": 1})
    ).status == 200
    context = (await alice.call("GET", "/skaha/v1/context")).json()
    assert context["maxInteractiveSessions"] == 1
    await fill_cap(alice, 1)
    reply = await alice.launch(image=IMAGE, name="x", type="notebook")
    assert reply.text == CAP_MESSAGE.format(n=1)
    await control.call("PATCH", "/_sim/config", json_body={"max_sessions": 3})
    assert (await alice.launch(image=IMAGE, name="x", type="notebook")).status == 200


async def test_short_ttl_set_at_run_time(sim: Simulator, alice: Api) -> None:
    """ttl_headless_s set at run time applies to jobs launched afterwards (k8s fixes it on the
    Job): the new job vanishes 0.5 s after it finishes, the older one keeps the 1 h TTL."""
    old = await alice.launch_id(name="old")
    control = Api(alice.http, alice.base, None)
    patched = await control.call("PATCH", "/_sim/config", json_body={"ttl_headless_s": 0.5})
    assert patched.json()["ttl_headless_s"] == 0.5
    new = await alice.launch_id(name="new")
    sim.clock.advance(65)  # both Completed (Pending 5 s + run 60 s)
    assert await alice.status(new) == "Completed"
    sim.clock.advance(0.5)
    assert (await alice.session(new)).status == 404
    assert [s["id"] for s in await alice.sessions()] == [old]


async def test_zero_ttl_job_is_never_seen_finished(sim: Simulator, alice: Api) -> None:
    """ttl_headless_s=0: the job leaves GET and listings the instant it finishes."""
    sim.configure(ttl_headless_s=0)
    sid = await alice.launch_id(name="job")
    sim.clock.advance(64.9)
    assert await alice.status(sid) == "Running"
    sim.clock.advance(0.1)
    assert (await alice.session(sid)).status == 404
    assert await alice.sessions() == []


async def test_short_ttl_on_a_running_clock() -> None:
    """On wall time a short-lived job with a 0.3 s TTL vanishes within the deadline."""
    sim = Simulator()
    sim.configure(pending_s=0.1, run_s=0.2, ttl_headless_s=0.3)
    try:
        async with (
            sim.serve() as running,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        ):
            alice = Api(http, running.base_url, "tok-alice")
            sid = await alice.launch_id(name="job")

            async def gone() -> bool:
                return (await alice.session(sid)).status == 404

            await until(gone, deadline_s=5)
            assert await alice.sessions() == []
            assert [d["id"] for d in sim.launches()] == [sid]
    finally:
        sim.close()
