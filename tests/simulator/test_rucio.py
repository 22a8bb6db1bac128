"""Rucio over HTTP: docs/platform-api.md §8 and §9.9, §9.11 m."""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime

import pytest

from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import Api

RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} UTC$")


@pytest.fixture
def config() -> SimulatorConfig:
    """Replication takes 30 s; the second call of a DID may be stuck when p_stuck is raised."""
    return SimulatorConfig(frozen_clock=True, seed=3, replicate_s=30, stuck_recover_s=60)


async def rucio_token(api: Api) -> str:
    """Log in with userpass and return the token."""
    reply = await api.call(
        "GET",
        "/rucio/auth/userpass",
        headers={"X-Rucio-Account": "alice", "X-Rucio-Username": "alice", "X-Rucio-Password": "pw"},
    )
    assert reply.status == 200
    assert RFC1123.match(reply.headers["X-Rucio-Auth-Token-Expires"])
    return reply.headers["X-Rucio-Auth-Token"]


def rule_body(name: str = "file1", rse: str = "SRC_RSE") -> dict[str, object]:
    """A create-rule body (§8)."""
    return {
        "dids": [{"scope": "user.alice", "name": name}],
        "copies": 1,
        "rse_expression": rse,
        "lifetime": 3600,
        "grouping": "DATASET",
    }


async def test_create_rule_returns_a_list_and_progresses(sim: Simulator, alice: Api) -> None:
    """(m) 201 JSON list of 32-hex ids; REPLICATING → OK; locks follow; RFC 1123 dates."""
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    created = await alice.call("POST", "/rucio/rules/", json_body=rule_body(), headers=headers)
    assert created.status == 201
    ids = created.json()
    assert isinstance(ids, list)
    assert re.fullmatch(r"[0-9a-f]{32}", ids[0])
    rule = (await alice.call("GET", f"/rucio/rules/{ids[0]}", headers=headers)).json()
    assert (rule["state"], rule["locks_replicating_cnt"], rule["locks_ok_cnt"]) == (
        "REPLICATING",
        1,
        0,
    )
    assert RFC1123.match(rule["created_at"])
    parsedate_to_datetime(rule["expires_at"].replace("UTC", "GMT"))
    sim.clock.advance(30)
    rule = (await alice.call("GET", f"/rucio/rules/{ids[0]}", headers=headers)).json()
    assert (rule["state"], rule["locks_replicating_cnt"], rule["locks_ok_cnt"]) == ("OK", 0, 1)


async def test_stuck_then_recovers(sim: Simulator, alice: Api) -> None:
    """p_stuck: REPLICATING → STUCK (locks_stuck_cnt) → REPLICATING → OK with stuck_recover_s."""
    sim.configure(p_stuck=1.0)
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    rid = (
        await alice.call("POST", "/rucio/rules/", json_body=rule_body(), headers=headers)
    ).json()[0]
    states = []
    for step in (0, 30, 60, 30):
        sim.clock.advance(step)
        rule = (await alice.call("GET", f"/rucio/rules/{rid}", headers=headers)).json()
        states.append(rule["state"])
        if rule["state"] == "STUCK":
            assert rule["locks_stuck_cnt"] == 1
    assert states == ["REPLICATING", "STUCK", "REPLICATING", "OK"]


async def test_duplicate_rule_is_409_with_exception_headers(alice: Api) -> None:
    """§8: DuplicateRule 409; ExceptionClass/ExceptionMessage headers; octet-stream JSON body."""
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    await alice.call("POST", "/rucio/rules/", json_body=rule_body(), headers=headers)
    dup = await alice.call("POST", "/rucio/rules/", json_body=rule_body(), headers=headers)
    assert dup.status == 409
    assert dup.headers["ExceptionClass"] == "DuplicateRule"
    assert dup.content_type == "application/octet-stream"
    assert json.loads(dup.text)["ExceptionClass"] == "DuplicateRule"


async def test_lists_are_ndjson(alice: Api) -> None:
    """§8: GET /rules/ and /dids/{scope}/{name}/rules are application/x-json-stream."""
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    await alice.call("POST", "/rucio/rules/", json_body=rule_body("a"), headers=headers)
    await alice.call("POST", "/rucio/rules/", json_body=rule_body("b"), headers=headers)
    listing = await alice.call("GET", "/rucio/rules/", headers=headers)
    assert listing.content_type == "application/x-json-stream"
    lines = [json.loads(line) for line in listing.text.splitlines()]
    assert sorted(r["name"] for r in lines) == ["a", "b"]
    per_did = await alice.call("GET", "/rucio/dids/user.alice/a/rules", headers=headers)
    assert [json.loads(x)["name"] for x in per_did.text.splitlines()] == ["a"]


async def test_update_delete_and_not_found(alice: Api) -> None:
    """§8: PUT options → 200; DELETE → 200; then 404 RuleNotFound."""
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    rid = (
        await alice.call("POST", "/rucio/rules/", json_body=rule_body(), headers=headers)
    ).json()[0]
    put = await alice.call(
        "PUT", f"/rucio/rules/{rid}", json_body={"options": {"lifetime": 10}}, headers=headers
    )
    assert put.status == 200
    deleted = await alice.call(
        "DELETE", f"/rucio/rules/{rid}", json_body={"purge_replicas": False}, headers=headers
    )
    assert deleted.status == 200
    missing = await alice.call("GET", f"/rucio/rules/{rid}", headers=headers)
    assert (missing.status, missing.headers["ExceptionClass"]) == (404, "RuleNotFound")


async def test_rule_expires_after_lifetime(sim: Simulator, alice: Api) -> None:
    """§8: a rule is removed after its lifetime (GET 404)."""
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    body = {**rule_body(), "lifetime": 600}
    rid = (await alice.call("POST", "/rucio/rules/", json_body=body, headers=headers)).json()[0]
    sim.clock.advance(599)
    assert (await alice.call("GET", f"/rucio/rules/{rid}", headers=headers)).status == 200
    sim.clock.advance(1)
    assert (await alice.call("GET", f"/rucio/rules/{rid}", headers=headers)).status == 404


async def test_auth_failures_are_401_cannot_authenticate(sim: Simulator, alice: Api) -> None:
    """§8: bad credentials or a missing token → 401 CannotAuthenticate."""
    sim.configure(rucio_userpass={"alice": "right"})
    bad = await alice.call(
        "GET",
        "/rucio/auth/userpass",
        headers={
            "X-Rucio-Account": "alice",
            "X-Rucio-Username": "alice",
            "X-Rucio-Password": "wrong",
        },
    )
    assert (bad.status, bad.headers["ExceptionClass"]) == (401, "CannotAuthenticate")
    no_token = await alice.call("GET", "/rucio/rules/")
    assert no_token.status == 401


async def test_unknown_did_and_rse(sim: Simulator, alice: Api) -> None:
    """§8: 404 DataIdentifierNotFound; 409 InvalidRSEExpression."""
    sim.configure(rucio_known_dids=["user.alice:file1"], rucio_rses=["SRC_RSE"])
    headers = {"X-Rucio-Auth-Token": await rucio_token(alice)}
    missing = await alice.call(
        "POST", "/rucio/rules/", json_body=rule_body("nope"), headers=headers
    )
    assert (missing.status, missing.headers["ExceptionClass"]) == (404, "DataIdentifierNotFound")
    bad_rse = await alice.call(
        "POST", "/rucio/rules/", json_body=rule_body(rse="X"), headers=headers
    )
    assert (bad_rse.status, bad_rse.headers["ExceptionClass"]) == (409, "InvalidRSEExpression")
