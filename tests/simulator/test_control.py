"""The /_sim control API, config loading, the CLI parser and the thread runner."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from skaha_operator.simulator import Simulator, SimulatorConfig, load_config
from skaha_operator.simulator.cli import build_parser, config_from_args
from tests.simulator.helpers import Api


async def test_clock_advance_over_http(sim: Simulator, alice: Api) -> None:
    """POST /_sim/clock/advance moves the frozen clock; sessions follow lazily."""
    control = Api(alice.http, alice.base, None)
    sid = await alice.launch_id(name="job")
    before = (await control.call("GET", "/_sim/clock")).json()["epoch"]
    moved = await control.call("POST", "/_sim/clock/advance", params={"seconds": "5"})
    assert moved.json()["epoch"] == before + 5
    assert await alice.status(sid) == "Running"
    bad = await control.call("POST", "/_sim/clock/advance", params={"seconds": "-1"})
    assert bad.status == 400


async def test_force_status_over_http(sim: Simulator, alice: Api) -> None:
    """POST /_sim/sessions/{id}/force pins a status (either era's names accepted)."""
    control = Api(alice.http, alice.base, None)
    sid = await alice.launch_id(name="nb", type="notebook")
    forced = await control.call("POST", f"/_sim/sessions/{sid}/force", params={"status": "Running"})
    assert forced.json()["status"] == "Running"
    assert "startTime" in forced.json()
    await control.call("POST", f"/_sim/sessions/{sid}/force", params={"status": "Succeeded"})
    assert await alice.status(sid) == "Completed"
    await control.call("POST", f"/_sim/sessions/{sid}/force", params={"status": "Terminating"})
    assert await alice.status(sid) == "Terminating"
    bad = await control.call("POST", f"/_sim/sessions/{sid}/force", params={"status": "Dancing"})
    assert bad.status == 400
    missing = await control.call(
        "POST", "/_sim/sessions/zzzzzzzz/force", params={"status": "Failed"}
    )
    assert missing.status == 404


async def test_all_sessions_and_in_process_view(sim: Simulator, alice: Api, bob: Api) -> None:
    """GET /_sim/sessions and sim.sessions(): every user's visible sessions."""
    control = Api(alice.http, alice.base, None)
    await alice.launch_id(name="a")
    await bob.launch_id(name="b")
    listed = (await control.call("GET", "/_sim/sessions")).json()
    assert sorted(s["userid"] for s in listed) == ["alice", "bob"]
    assert [s["name"] for s in sim.sessions(user="bob")] == ["b"]
    assert len(sim.sessions()) == 2


async def test_launch_log_keeps_gone_sessions(sim: Simulator, alice: Api) -> None:
    """GET /_sim/launches and sim.launches(): every session ever created, deleted ones too."""
    control = Api(alice.http, alice.base, None)
    sid = await alice.launch_id(name="once")
    await alice.call("DELETE", f"/skaha/v1/session/{sid}")
    sim.force(sid, "Gone")
    assert sim.sessions() == []
    listed = (await control.call("GET", "/_sim/launches")).json()
    assert [(d["id"], d["name"], d["user"]) for d in listed] == [(sid, "once", "alice")]
    assert sim.launches() == listed


async def test_rules_listing_and_force(sim: Simulator, alice: Api) -> None:
    """GET /_sim/rules lists Rucio rules; force pins a state."""
    control = Api(alice.http, alice.base, None)
    login = await alice.call(
        "GET",
        "/rucio/auth/userpass",
        headers={"X-Rucio-Account": "a", "X-Rucio-Username": "a", "X-Rucio-Password": "p"},
    )
    headers = {"X-Rucio-Auth-Token": login.headers["X-Rucio-Auth-Token"]}
    body = {"dids": [{"scope": "s", "name": "n"}], "copies": 1, "rse_expression": "R"}
    rid = (await alice.call("POST", "/rucio/rules/", json_body=body, headers=headers)).json()[0]
    assert [r["id"] for r in (await control.call("GET", "/_sim/rules")).json()] == [rid]
    forced = await control.call("POST", f"/_sim/rules/{rid}/force", params={"state": "stuck"})
    assert forced.json()["state"] == "STUCK"


async def test_config_patch_over_http(alice: Api) -> None:
    """PATCH /_sim/config changes runtime knobs; construction-time fields are refused."""
    control = Api(alice.http, alice.base, None)
    patched = await control.call("PATCH", "/_sim/config", json_body={"max_sessions": 1})
    assert patched.json()["max_sessions"] == 1
    assert "tokens" not in patched.json()
    await alice.launch_id(name="one", type="notebook")
    assert (
        await alice.launch(
            image="images.canfar.net/skaha/astroml:latest", name="two", type="notebook"
        )
    ).status == 400
    refused = await control.call("PATCH", "/_sim/config", json_body={"seed": 3})
    assert refused.status == 400


def test_load_config_from_file_and_env(tmp_path: Path) -> None:
    """Config file (YAML/JSON) first, then SKAHA_SIM_<FIELD> environment overrides."""
    path = tmp_path / "sim.yaml"
    path.write_text("seed: 4\npending_s: 2\nfaults:\n  - route: /skaha/*\n    p_503: 0.5\n")
    config = load_config(
        path, environ={"SKAHA_SIM_PENDING_S": "9", "SKAHA_SIM_LEGACY_MODE": "true"}
    )
    assert (config.seed, config.pending_s, config.legacy_mode) == (4, 9.0, True)
    assert config.faults[0].p_503 == 0.5
    as_json = tmp_path / "sim.json"
    as_json.write_text(json.dumps({"tokens": {"t": "u"}}))
    assert load_config(as_json, environ={}).tokens == {"t": "u"}


def test_cli_flags_override() -> None:
    """--seed, --frozen-clock and repeatable --token TOKEN=USER."""
    args = build_parser().parse_args(
        ["--seed", "7", "--frozen-clock", "--token", "x=carol", "--token", "y=dave"]
    )
    assert args.port == 8765
    config = config_from_args(args)
    assert (config.seed, config.frozen_clock) == (7, True)
    assert config.tokens["x"] == "carol"
    assert config.tokens["y"] == "dave"


def test_start_in_thread_serves_sync_callers() -> None:
    """The thread runner serves plain blocking HTTP and stops cleanly."""
    sim = Simulator(SimulatorConfig(tokens={"t": "u"}))
    handle = sim.start_in_thread()
    try:
        request = urllib.request.Request(
            f"{handle.base_url}/skaha/v1/context", headers={"Authorization": "Bearer t"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["X-VO-Authenticated"] == "u"
            assert json.loads(resp.read())["maxInteractiveSessions"] == 5
    finally:
        handle.stop()
        sim.close()
