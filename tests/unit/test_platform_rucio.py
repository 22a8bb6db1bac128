"""RucioClient: token auth and re-auth, rules, NDJSON lists, error headers.

Facts: docs/platform-api.md §8.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from skaha_operator.platform.errors import AuthError, Conflict, NotFound, Rejected, Unavailable
from skaha_operator.platform.wire import Did, RuleSpec, RuleState
from tests.unit.platform_mock import RUCIO_PASSWORD, RUCIO_TOKEN, Sleeps, policy, rucio

RULE_ID = "0123456789abcdef0123456789abcdef"
SPEC = RuleSpec(dids=[Did(scope="ska", name="vis.ms")], rse_expression="UKSRC_RAL", lifetime=3600)
RULE = {
    "id": RULE_ID,
    "account": "alice",
    "scope": "ska",
    "name": "vis.ms",
    "state": "REPLICATING",
    "rse_expression": "UKSRC_RAL",
    "copies": 1,
    "locks_replicating_cnt": 1,
    "expires_at": "Thu, 06 Aug 2026 13:00:00 UTC",
    "created_at": "Thu, 06 Aug 2026 12:00:00 UTC",
}


def rucio_error(status: int, cls: str, message: str) -> httpx.Response:
    """Rucio's error convention: headers plus an octet-stream JSON body (§8)."""
    return httpx.Response(
        status,
        headers={
            "ExceptionClass": cls,
            "ExceptionMessage": message[:125],
            "Content-Type": "application/octet-stream",
        },
        content=json.dumps({"ExceptionClass": cls, "ExceptionMessage": message}).encode(),
    )


class MiniRucio:
    """Issues tokens that expire at `expires`, serves one rule, counts auth calls."""

    def __init__(self, expires: str = "Thu, 06 Aug 2026 13:00:00 UTC") -> None:
        self.expires = expires
        self.auth_calls = 0
        self.tokens: list[str] = []
        self.valid: set[str] = set()
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/auth/userpass":
            assert request.headers["X-Rucio-Password"] == RUCIO_PASSWORD
            self.auth_calls += 1
            token = f"{RUCIO_TOKEN}-{self.auth_calls}"
            self.valid = {token}
            return httpx.Response(
                200,
                headers={"X-Rucio-Auth-Token": token, "X-Rucio-Auth-Token-Expires": self.expires},
            )
        token = request.headers.get("X-Rucio-Auth-Token", "")
        self.tokens.append(token)
        if token not in self.valid:
            return rucio_error(401, "CannotAuthenticate", "Cannot authenticate with given token")
        if request.method == "POST":
            return httpx.Response(201, json=[RULE_ID])
        if request.url.path.endswith("/rules"):
            lines = [json.dumps({**RULE, "id": f"{n:032x}"}) for n in range(3)]
            return httpx.Response(
                200,
                text="\n".join(lines) + "\n",
                headers={"Content-Type": "application/x-json-stream"},
            )
        return httpx.Response(200, json=RULE)


async def test_authenticates_once_and_sends_the_token() -> None:
    server = MiniRucio()
    now = [datetime(2026, 8, 6, 12, 0, tzinfo=UTC)]
    client = rucio(server, now=lambda: now[0])
    rule = await client.get_rule(RULE_ID)
    await client.get_rule(RULE_ID)
    assert server.auth_calls == 1
    assert server.tokens == [f"{RUCIO_TOKEN}-1"] * 2
    assert rule.state is RuleState.REPLICATING
    assert rule.expires_at == datetime(2026, 8, 6, 13, 0, tzinfo=UTC)
    assert rule.locks_replicating_cnt == 1
    assert server.requests[1].headers["X-Rucio-Account"] == "alice"


async def test_reauthenticates_before_expiry() -> None:
    server = MiniRucio()
    now = [datetime(2026, 8, 6, 12, 0, tzinfo=UTC)]
    client = rucio(server, now=lambda: now[0])
    await client.get_rule(RULE_ID)
    now[0] += timedelta(minutes=59, seconds=30)  # inside the 60 s margin before 13:00
    await client.get_rule(RULE_ID)
    assert server.auth_calls == 2
    assert server.tokens == [f"{RUCIO_TOKEN}-1", f"{RUCIO_TOKEN}-2"]


async def test_reauthenticates_once_on_401_even_for_a_post() -> None:
    server = MiniRucio()
    now = [datetime(2026, 8, 6, 12, 0, tzinfo=UTC)]
    client = rucio(server, now=lambda: now[0])
    await client.get_rule(RULE_ID)
    server.valid = set()  # the server forgot our token (revoked, restarted)
    ids = await client.create_rule(SPEC)
    assert ids == [RULE_ID]
    assert server.auth_calls == 2
    posts = [r for r in server.requests if r.method == "POST"]
    assert len(posts) == 2  # one refused with 401, one accepted after re-auth
    assert json.loads(posts[-1].content) == {
        "dids": [{"scope": "ska", "name": "vis.ms"}],
        "copies": 1,
        "rse_expression": "UKSRC_RAL",
        "lifetime": 3600,
        "grouping": "DATASET",
        "notify": "N",
        "asynchronous": False,
        "ask_approval": False,
        "priority": 3,
    }


async def test_bad_credentials_are_an_auth_error() -> None:
    client = rucio(lambda _: rucio_error(401, "CannotAuthenticate", "Cannot authenticate"))
    with pytest.raises(AuthError, match="CannotAuthenticate: Cannot authenticate"):
        await client.get_rule(RULE_ID)


async def test_duplicate_rule_is_a_conflict_other_409s_are_rejections() -> None:
    answers = iter(
        [
            rucio_error(409, "DuplicateRule", "A duplicate rule for this account, did, already"),
            rucio_error(409, "InvalidRSEExpression", "Provided RSE expression is invalid: NOPE"),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/userpass":
            return httpx.Response(200, headers={"X-Rucio-Auth-Token": RUCIO_TOKEN})
        return next(answers)

    client = rucio(handler)
    with pytest.raises(Conflict, match="DuplicateRule"):
        await client.create_rule(SPEC)
    with pytest.raises(Rejected) as caught:
        await client.create_rule(SPEC)
    assert not isinstance(caught.value, Conflict)
    assert caught.value.message.startswith("InvalidRSEExpression: ")


async def test_create_rule_is_never_retried() -> None:
    posts = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/userpass":
            return httpx.Response(200, headers={"X-Rucio-Auth-Token": RUCIO_TOKEN})
        posts.append(request)
        return rucio_error(503, "ServiceUnavailable", "try later")

    with pytest.raises(Unavailable) as caught:
        await rucio(handler, policy(Sleeps())).create_rule(SPEC)
    assert len(posts) == 1
    assert caught.value.maybe_committed is True


async def test_list_rules_for_did_reads_ndjson() -> None:
    server = MiniRucio()
    rules = await rucio(server).list_rules_for_did("ska", "vis.ms")
    assert [r.id for r in rules] == [f"{n:032x}" for n in range(3)]
    assert server.requests[-1].url.path == "/dids/ska/vis.ms/rules"


async def test_delete_rule_reports_whether_it_existed() -> None:
    answers = iter([httpx.Response(200), rucio_error(404, "RuleNotFound", "No rule " + RULE_ID)])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/userpass":
            return httpx.Response(200, headers={"X-Rucio-Auth-Token": RUCIO_TOKEN})
        seen.append(request)
        return next(answers)

    client = rucio(handler)
    assert await client.delete_rule(RULE_ID, purge_replicas=True) is True
    assert await client.delete_rule(RULE_ID) is False
    assert json.loads(seen[0].content) == {"purge_replicas": True}


async def test_get_unknown_rule_is_not_found_with_rucio_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/userpass":
            return httpx.Response(200, headers={"X-Rucio-Auth-Token": RUCIO_TOKEN})
        return rucio_error(404, "RuleNotFound", "No replication rule found with ID " + RULE_ID)

    with pytest.raises(NotFound, match="RuleNotFound: No replication rule found"):
        await rucio(handler).get_rule(RULE_ID)


def test_unknown_rule_state_falls_back() -> None:
    assert RuleState("R") is RuleState.UNKNOWN
    assert RuleState("OK") is RuleState.OK
