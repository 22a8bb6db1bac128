"""Session JSON and lifecycle: docs/platform-api.md §3, §9.4–§9.6, §9.11 d, e, h–k."""

from __future__ import annotations

from typing import Any

import aiohttp

from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import IMAGE, Api

DAY = 86400


def _has_no_nulls(doc: Any) -> bool:
    if isinstance(doc, dict):
        return all(v is not None and _has_no_nulls(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_has_no_nulls(v) for v in doc)
    return True


async def test_pending_json_omits_nulls_and_start_time(sim: Simulator, alice: Api) -> None:
    """(d) and item 4: no null fields; no startTime/expiryTime while Pending."""
    sid = await alice.launch_id(name="nb", type="notebook")
    reply = await alice.session(sid)
    assert reply.content_type == "application/json"
    assert "null" not in reply.text
    doc = reply.json()
    assert _has_no_nulls(doc)
    assert doc["status"] == "Pending"
    assert "startTime" not in doc
    assert "expiryTime" not in doc
    assert reply.text.startswith('{\n  "id": ')


async def test_pending_to_running_with_start_and_expiry(sim: Simulator, alice: Api) -> None:
    """Item 5: Pending for pending_s, then Running with startTime and expiry = start + 4 d."""
    sid = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(4)
    assert await alice.status(sid) == "Pending"
    sim.clock.advance(1)
    doc = (await alice.session(sid)).json()
    assert doc["status"] == "Running"
    assert doc["startTime"].endswith("Z")
    assert doc["expiryTime"] > doc["startTime"]


async def test_connect_urls_by_type(sim: Simulator, alice: Api, base_url: str) -> None:
    """Item 4: connectURL shapes per type, host replaced by the simulator's base URL."""
    expected = {
        "notebook": "{b}/session/notebook/{i}/lab/tree/arc/home/alice?token={i}",
        "desktop": "{b}/session/desktop/{i}/?password={i}&path=session/desktop/{i}/",
        "carta": "{b}/session/carta/{i}/",
        "contributed": "{b}/session/contrib/{i}/",
        "firefly": "{b}/session/firefly/{i}/firefly/",
        "headless": "",
    }
    for kind, shape in expected.items():
        sid = await alice.launch_id(name=kind, type=kind)
        doc = (await alice.session(sid)).json()
        assert doc["connectURL"] == shape.format(b=base_url, i=sid)


async def test_connect_url_opens_a_page(sim: Simulator, alice: Api, http: Any) -> None:
    """The connectURL is served by the simulator itself as a small HTML page."""
    sid = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(5)
    url = (await alice.session(sid)).json()["connectURL"]
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        body = await resp.text()
    assert sid in body
    assert "Running" in body


async def test_requested_fields_only_in_fixed_mode(alice: Api) -> None:
    """Item 4: requestedRAM/CPUCores only when cores or ram was given; RAM in decimal GB."""
    flexible = (await alice.session(await alice.launch_id(name="flex"))).json()
    assert "requestedRAM" not in flexible
    assert "requestedCPUCores" not in flexible
    assert flexible["isFixedResources"] is False
    assert flexible["requestedGPUCores"] == "0"
    fixed = (await alice.session(await alice.launch_id(name="fix", cores="2", ram="8"))).json()
    assert fixed["requestedRAM"] == "8.59"
    assert fixed["requestedCPUCores"] == "2"
    assert fixed["isFixedResources"] is True
    gpu = (await alice.session(await alice.launch_id(name="gpu", gpus="2"))).json()
    assert gpu["requestedGPUCores"] == "2"


async def test_headless_completes_then_vanishes_after_ttl(sim: Simulator, alice: Api) -> None:
    """(e), (k): headless ends Completed after run_s, and is gone after the 1 h TTL."""
    sid = await alice.launch_id(name="job")
    sim.clock.advance(5)
    assert await alice.status(sid) == "Running"
    sim.clock.advance(60)
    assert await alice.status(sid) == "Completed"
    sim.clock.advance(3599)
    assert await alice.status(sid) == "Completed"
    sim.clock.advance(1)
    assert (await alice.session(sid)).status == 404
    assert await alice.sessions() == []


async def test_sim_exit_code_fails_and_sim_log_shows(sim: Simulator, alice: Api) -> None:
    """Headless env knobs: SIM_EXIT_CODE≠0 → Failed; SIM_LOG in logs; SIM_RUN_SECONDS sets run."""
    sid = await alice.launch_id(
        name="job", env=["SIM_EXIT_CODE=3", "SIM_LOG=pip failed", "SIM_RUN_SECONDS=7"]
    )
    sim.clock.advance(5)
    logs = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "logs"})
    assert "pip failed" in logs.text
    sim.clock.advance(7)
    assert await alice.status(sid) == "Failed"
    logs = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "logs"})
    assert logs.content_type == "text/plain"
    assert "exit code 3" in logs.text


async def test_logs_empty_until_running(sim: Simulator, alice: Api) -> None:
    """Item 6: logs are empty text/plain while Pending."""
    sid = await alice.launch_id(name="job", env=["SIM_LOG=hello"])
    logs = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "logs"})
    assert (logs.status, logs.text, logs.content_type) == (200, "", "text/plain")
    sim.clock.advance(5)
    logs = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "logs"})
    assert "hello" in logs.text


async def test_events_none_then_table(sim: Simulator, alice: Api) -> None:
    """Item 6: `<none>` before any event, then a header line and rows up to Started."""
    sid = await alice.launch_id(name="job")
    events = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "events"})
    assert (events.text, events.content_type) == ("<none>\n", "text/plain")
    sim.clock.advance(5)
    events = await alice.call("GET", f"/skaha/v1/session/{sid}", params={"view": "events"})
    lines = events.text.splitlines()
    assert lines[0].split() == ["TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME"]
    reasons = [line.split()[1] for line in lines[1:]]
    assert reasons == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]


async def test_delete_terminating_then_gone(sim: Simulator, alice: Api) -> None:
    """Item 5: DELETE → 200 empty; Terminating for terminate_s, then 404."""
    sid = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(5)
    reply = await alice.call("DELETE", f"/skaha/v1/session/{sid}")
    assert (reply.status, reply.text) == (200, "")
    assert await alice.status(sid) == "Terminating"
    assert [s["status"] for s in await alice.sessions()] == ["Terminating"]
    sim.clock.advance(10)
    assert (await alice.session(sid)).status == 404


async def test_delete_unknown_is_200_at_head_and_a_knob(sim: Simulator, alice: Api) -> None:
    """(h) HEAD answers 200 for an unknown id; `delete_unknown_404` switches to 404."""
    assert (await alice.call("DELETE", "/skaha/v1/session/zzzzzzzz")).status == 200
    sim.configure(delete_unknown_404=True)
    reply = await alice.call("DELETE", "/skaha/v1/session/zzzzzzzz")
    assert (reply.status, reply.text) == (404, "session zzzzzzzz not found\n")


async def test_other_users_session_is_404(alice: Api, bob: Api) -> None:
    """(i) another user's id is 404 (not 403) for GET, renew, logs; DELETE leaves it alone."""
    sid = await alice.launch_id(name="nb", type="notebook")
    assert (await bob.session(sid)).status == 404
    assert (await bob.session(sid)).text == f"session {sid} not found\n"
    renew = await bob.call(
        "POST",
        f"/skaha/v1/session/{sid}",
        params={"action": "renew"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert renew.status == 404
    assert (await bob.call("DELETE", f"/skaha/v1/session/{sid}")).status == 200
    assert await alice.status(sid) == "Pending"
    assert await bob.sessions() == []


async def _renew(api: Api, sid: str) -> Any:
    return await api.call(
        "POST",
        f"/skaha/v1/session/{sid}",
        params={"action": "renew"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def test_renew_interactive_pushes_expiry(sim: Simulator, alice: Api) -> None:
    """§3 renew: remaining < sessionexpiry → new expiry = now + 4 d."""
    sid = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(5)
    before = (await alice.session(sid)).json()["expiryTime"]
    sim.clock.advance(DAY)
    reply = await _renew(alice, sid)
    assert (reply.status, reply.text) == (200, "")
    after = (await alice.session(sid)).json()["expiryTime"]
    assert after > before
    sim.clock.advance(4 * DAY - 1)
    assert await alice.status(sid) == "Running"


async def test_renew_headless_is_noop(sim: Simulator, alice: Api) -> None:
    """(j) a headless renew does not extend expiry (14 d deadline > 4 d sessionexpiry)."""
    sid = await alice.launch_id(name="job", env=["SIM_RUN_SECONDS=999999"])
    sim.clock.advance(5)
    before = (await alice.session(sid)).json()["expiryTime"]
    sim.clock.advance(DAY)
    assert (await _renew(alice, sid)).status == 200
    assert (await alice.session(sid)).json()["expiryTime"] == before


async def test_renew_errors(sim: Simulator, alice: Api) -> None:
    """§3: no action → `Cannot modify`; bad action → `unrecognized action`; finished → no job."""
    sid = await alice.launch_id(name="job")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = await alice.call("POST", f"/skaha/v1/session/{sid}", headers=form)
    assert (reply.status, reply.text) == (400, "Cannot modify an existing session\n")
    reply = await alice.call(
        "POST", f"/skaha/v1/session/{sid}", params={"action": "extend"}, headers=form
    )
    assert (reply.status, reply.text) == (400, "unrecognized action\n")
    sim.clock.advance(65)
    reply = await _renew(alice, sid)
    assert reply.status == 400
    assert reply.text.startswith("No active job for user ")
    assert reply.text.endswith(f" with session {sid}\n")


async def test_interactive_deadline_fails(sim: Simulator, alice: Api) -> None:
    """Deadline exceeded → Failed (k8s DeadlineExceeded), then gone after the notebook TTL."""
    sid = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(345600)
    assert await alice.status(sid) == "Failed"
    sim.clock.advance(86400)
    assert (await alice.session(sid)).status == 404


async def test_filters_type_and_status(sim: Simulator, alice: Api) -> None:
    """`?type=` and `?status=` filter the caller's list."""
    job = await alice.launch_id(name="job")
    nb = await alice.launch_id(name="nb", type="notebook")
    sim.clock.advance(5)
    await alice.call("DELETE", f"/skaha/v1/session/{job}")
    assert [s["id"] for s in await alice.sessions(type="notebook")] == [nb]
    assert [s["id"] for s in await alice.sessions(status="Terminating")] == [job]
    assert [s["id"] for s in await alice.sessions(status="Running")] == [nb]


async def test_legacy_mode_vocabulary() -> None:
    """(e) legacy_mode: /v0 paths, `Succeeded`, appid `<none>`, `8G` RAM, DELETE 404/403."""
    config = SimulatorConfig(
        tokens={"a": "alice", "b": "bob"},
        frozen_clock=True,
        pending_s=1,
        run_s=1,
        legacy_mode=True,
    )
    sim = Simulator(config)
    try:
        async with sim.serve() as running, aiohttp.ClientSession() as http:
            alice = Api(http, running.base_url, "a")
            bob = Api(http, running.base_url, "b")
            v1 = await alice.launch(image=IMAGE, name="x")
            assert v1.status == 404
            reply = await alice.call(
                "POST",
                "/skaha/v0/session",
                params={"image": IMAGE, "name": "Legacy", "ram": "8", "cores": "2"},
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            sid = reply.text.strip()
            sim.clock.advance(2)
            doc = (await alice.call("GET", f"/skaha/v0/session/{sid}")).json()
            assert doc["status"] == "Succeeded"
            assert doc["appid"] == "<none>"
            assert (doc["requestedRAM"], doc["requestedCPUCores"]) == ("8G", "2")
            assert "isFixedResources" not in doc
            other = await bob.call("DELETE", f"/skaha/v0/session/{sid}")
            assert (other.status, other.text) == (403, "forbidden\n")
            unknown = await alice.call("DELETE", "/skaha/v0/session/zzzzzzzz")
            assert unknown.status == 404
            caps = await alice.call("GET", "/skaha/capabilities")
            assert "vos://cadc.nrc.ca~vospace/CADC/std/Proc#sessions-1.0" in caps.text
    finally:
        sim.close()
