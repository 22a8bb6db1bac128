"""Auth, images, context, repository, stats, view=all, VOSI.

Facts: docs/platform-api.md §1, §4, §5 and §9.7.
"""

from __future__ import annotations

import aiohttp

from skaha_operator.simulator import Simulator
from tests.simulator.helpers import IMAGE, Api


async def test_missing_or_unknown_token_is_401_with_challenge(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    """Item 7: 401 text/plain with `WWW-Authenticate: Bearer`, no X-VO-Authenticated."""
    for token in (None, "nope"):
        reply = await Api(http, base_url, token).call("GET", "/skaha/v1/session")
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert reply.content_type == "text/plain"
        assert "X-VO-Authenticated" not in reply.headers


async def test_user_outside_group_is_403(sim: Simulator, alice: Api, bob: Api) -> None:
    """Item 7: a user outside the allowed group → 403 `Not authorized to use the skaha system`."""
    sim.configure(group_members=["alice"])
    assert (await alice.call("GET", "/skaha/v1/session")).status == 200
    reply = await bob.call("GET", "/skaha/v1/session")
    assert (reply.status, reply.text) == (403, "Not authorized to use the skaha system\n")


async def test_x_vo_authenticated_on_every_authenticated_reply(alice: Api) -> None:
    """Item 3: X-VO-Authenticated on success and on errors after authentication."""
    for path in ("/skaha/v1/session", "/skaha/v1/image", "/skaha/v1/session/abcdefgh"):
        reply = await alice.call("GET", path)
        assert reply.headers["X-VO-Authenticated"] == "alice"


async def test_images_and_type_filter(alice: Api) -> None:
    """§4: images with id, types and digest; `?type=` filters; an unknown type is 400."""
    images = (await alice.call("GET", "/skaha/v1/image")).json()
    assert {"id", "types", "digest"} <= set(images[0])
    assert any(img["id"] == IMAGE for img in images)
    headless = (await alice.call("GET", "/skaha/v1/image", params={"type": "headless"})).json()
    assert headless
    assert all("headless" in img["types"] for img in headless)
    bad = await alice.call("GET", "/skaha/v1/image", params={"type": "bogus"})
    assert (bad.status, bad.text) == (400, "unknown type: bogus\n")


async def test_context_and_repository(alice: Api) -> None:
    """§4: the k8s-resources.json layout and the registry host list."""
    context = (await alice.call("GET", "/skaha/v1/context")).json()
    assert context["cores"]["options"] == list(range(1, 17))
    assert context["cores"]["default"] == 2
    assert context["memoryGB"]["defaultLimit"] == 32
    assert context["gpus"]["options"] == list(range(1, 29))
    assert context["maxInteractiveSessions"] == 5
    repos = (await alice.call("GET", "/skaha/v1/repository")).json()
    assert repos == ["images.canfar.net"]


async def test_stats_payload(sim: Simulator, alice: Api) -> None:
    """§4: view=stats counts requested cores of active sessions."""
    await alice.launch_id(name="a", cores="2", ram="8")
    await alice.launch_id(name="b", cores="4", ram="8")
    stats = (await alice.call("GET", "/skaha/v1/session", params={"view": "stats"})).json()
    assert stats["cores"]["requestedCPUCores"] == 6
    assert set(stats["ram"]) == {"requestedRAM", "ramAvailable", "maxRAM"}
    assert stats["ram"]["requestedRAM"] == "16G"


async def test_view_all_lists_every_user_with_four_fields(alice: Api, bob: Api) -> None:
    """§4: view=all shows userid, type, status (startTime once started) for all users."""
    await alice.launch_id(name="a")
    await bob.launch_id(name="b", type="notebook")
    rows = (await alice.call("GET", "/skaha/v1/session", params={"view": "all"})).json()
    assert sorted(r["userid"] for r in rows) == ["alice", "bob"]
    assert all(set(r) == {"userid", "type", "status"} for r in rows)


async def test_vosi_capabilities_and_availability(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    """§1: anonymous VOSI XML; capabilities carry the v1 session standardID."""
    anonymous = Api(http, base_url, None)
    caps = await anonymous.call("GET", "/skaha/capabilities")
    assert caps.status == 200
    assert caps.content_type == "text/xml"
    assert "http://www.opencadc.org/std/platform#session-1" in caps.text
    assert f"{base_url}/skaha/v1</accessURL>" in caps.text
    avail = await anonymous.call("GET", "/skaha/availability")
    assert "<vosi:available>true</vosi:available>" in avail.text


async def test_v0_paths_absent_in_v1_mode(alice: Api) -> None:
    """§1: v1 removed /v0; the era not simulated is 404."""
    assert (await alice.call("GET", "/skaha/v0/session")).status == 404


async def test_many_sessions_list_and_count(sim: Simulator, alice: Api) -> None:
    """Hundreds of sessions: every launch succeeds and the list holds them all."""
    for i in range(300):
        await alice.launch_id(name=f"job{i}")
    listed = await alice.sessions()
    assert len(listed) == 300
    assert len({s["id"] for s in listed}) == 300
    sim.clock.advance(5 + 60 + 3600)
    assert await alice.sessions() == []
    assert sim.state.sessions.count() == 0
