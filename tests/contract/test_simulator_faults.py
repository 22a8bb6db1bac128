"""Fault behaviour of the real clients against the simulator only (docs/platform-api.md §9.10).

The in-memory fakes model no transport, so 503s, 429s, hangs, dropped connections, 500 after
commit, a second user and the legacy API era are exercised here against the simulator alone.
Retry waits are recorded, never slept; the one real wait is a short client read timeout.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from skaha_operator.platform.base import CallRecord
from skaha_operator.platform.clients import PlatformClients
from skaha_operator.platform.errors import AuthError, Conflict, NotFound, RateLimited, Unavailable
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.wire import (
    ApiVersion,
    Did,
    RuleSpec,
    SessionParams,
    SessionType,
    SkahaSessionStatus,
)
from skaha_operator.simulator import Simulator
from tests.contract.conftest import PENDING_S, RUN_S, client_settings, simulator_config

NOTEBOOK = SessionParams(
    name="ghost-check", image="images.canfar.net/skaha/astroml:latest", type=SessionType.NOTEBOOK
)
HEADLESS = SessionParams(name="job", image="images.canfar.net/skaha/terminal:1.1.2")


@dataclass
class Harness:
    """A served simulator and clients that record every attempt and every retry wait."""

    sim: Simulator
    base_url: str
    clients: PlatformClients = field(init=False)
    records: list[CallRecord] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def codes(self, method: str, route: str) -> list[str]:
        """Status codes (or transport error names) of the recorded attempts on one route."""
        return [r.code for r in self.records if (r.method, r.route) == (method, route)]

    def connect(self, token: str = "tok-alice", read_timeout: float = 30.0) -> PlatformClients:
        """Another set of clients on the same simulator."""

        async def record_wait(seconds: float) -> None:
            self.waits.append(seconds)

        settings = client_settings(
            self.base_url,
            token=token,
            retry=RetryPolicy(retry_after_cap=3.0, sleep=record_wait),
            timeout=httpx.Timeout(5.0, read=read_timeout),
        )
        return PlatformClients.create(settings, on_call=self.records.append)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    sim = Simulator(simulator_config())
    try:
        async with sim.serve(host="127.0.0.1", port=0) as running:
            h = Harness(sim, running.base_url)
            h.clients = h.connect()
            try:
                yield h
            finally:
                await h.clients.aclose()
    finally:
        sim.close()


async def test_idempotent_calls_succeed_under_30_percent_503(harness: Harness) -> None:
    skaha = harness.clients.skaha
    session_id = await skaha.create_session(NOTEBOOK)
    await harness.clients.cavern.make_dirs("home/alice/data")
    harness.sim.set_faults(
        [
            {"route": "/skaha/v1/*", "method": "GET", "p_503": 0.3, "retry_after_s": 1},
            {"route": "/arc/*", "method": "*", "p_503": 0.3},
        ]
    )
    for n in range(60):
        assert (await skaha.get_session(session_id)).id == session_id
        assert len(await skaha.list_sessions()) == 1
        await harness.clients.cavern.put_file(f"home/alice/data/f{n % 3}.txt", b"x")
        await harness.clients.cavern.get_node("home/alice/data")
    gets = harness.codes("GET", "/v1/session/{id}")
    puts = harness.codes("PUT", "/files/{path}")
    assert gets.count("200") == 60
    assert puts.count("201") == 60
    assert gets.count("503") > 5  # the fault really fired, and each one was retried
    assert puts.count("503") > 5
    assert 1.0 in harness.waits  # Retry-After: 1 was honoured


async def test_a_launch_that_commits_then_answers_500_is_not_retried(harness: Harness) -> None:
    harness.sim.set_faults(
        [{"route": "/skaha/v1/session", "method": "POST", "fail_after_commit": 1}]
    )
    with pytest.raises(Unavailable) as caught:
        await harness.clients.skaha.create_session(NOTEBOOK)
    assert caught.value.status == 500
    assert caught.value.maybe_committed is True
    assert harness.codes("POST", "/v1/session") == ["500"]
    # The ghost exists exactly once; the caller finds it by name instead of launching again.
    ghosts = [s for s in await harness.clients.skaha.list_sessions() if s.name == "ghost-check"]
    assert len(ghosts) == 1


async def test_a_launch_that_hangs_is_not_retried(harness: Harness) -> None:
    clients = harness.connect(read_timeout=0.5)
    harness.sim.set_faults([{"route": "/skaha/v1/session", "method": "POST", "hang_s": 30}])
    try:
        with pytest.raises(Unavailable) as caught:
            await clients.skaha.create_session(NOTEBOOK)
    finally:
        await clients.aclose()
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert caught.value.maybe_committed is True
    assert harness.codes("POST", "/v1/session") == ["ReadTimeout"]


async def test_retry_after_is_honoured_but_capped(harness: Harness) -> None:
    harness.sim.set_faults(
        [{"route": "/skaha/v1/context", "p_429": 1.0, "retry_after_s": 120, "count": 2}]
    )
    context = await harness.clients.skaha.context()
    assert context.max_interactive_sessions == 5
    assert harness.codes("GET", "/v1/context") == ["429", "429", "200"]
    assert harness.waits == [3.0, 3.0]


async def test_429_on_a_post_surfaces_with_its_retry_after(harness: Harness) -> None:
    harness.sim.set_faults([{"route": "/skaha/v1/session", "method": "POST", "p_429": 1.0}])
    with pytest.raises(RateLimited) as caught:
        await harness.clients.skaha.create_session(NOTEBOOK)
    assert caught.value.retry_after == 1.0
    assert harness.codes("POST", "/v1/session") == ["429"]
    assert await harness.clients.skaha.list_sessions() == []


async def test_dropped_connections_on_reads_are_retried(harness: Harness) -> None:
    session_id = await harness.clients.skaha.create_session(NOTEBOOK)
    harness.sim.set_faults([{"route": "/skaha/v1/session/*", "method": "GET", "p_reset": 0.3}])
    for _ in range(30):
        assert (await harness.clients.skaha.get_session(session_id)).id == session_id
    codes = harness.codes("GET", "/v1/session/{id}")
    assert codes.count("200") == 30
    assert len(codes) > 30  # some attempts were dropped and retried


async def test_a_rule_created_before_a_500_is_found_not_duplicated(harness: Harness) -> None:
    rucio = harness.clients.rucio
    assert rucio is not None
    spec = RuleSpec(dids=[Did(scope="ska", name="vis.ms")], rse_expression="UKSRC_RAL")
    harness.sim.set_faults([{"route": "/rucio/rules*", "method": "POST", "fail_after_commit": 1}])
    with pytest.raises(Unavailable):
        await rucio.create_rule(spec)
    assert harness.codes("POST", "/rules/") == ["500"]
    harness.sim.clear_faults()
    assert len(await rucio.list_rules_for_did("ska", "vis.ms")) == 1
    with pytest.raises(Conflict, match="DuplicateRule"):
        await rucio.create_rule(spec)


async def test_another_users_session_is_not_found(harness: Harness) -> None:
    bob = harness.connect(token="tok-bob")
    try:
        bobs = await bob.skaha.create_session(NOTEBOOK)
        with pytest.raises(NotFound):  # (i) 404, not 403
            await harness.clients.skaha.get_session(bobs)
        await harness.clients.skaha.delete_session(bobs)  # HEAD: 200 and nothing happens
        assert (await bob.skaha.get_session(bobs)).status is SkahaSessionStatus.PENDING
        assert await harness.clients.skaha.list_sessions() == []
    finally:
        await bob.aclose()


async def test_an_unknown_token_is_an_auth_error(harness: Harness) -> None:
    stranger = harness.connect(token="tok-nobody")
    try:
        with pytest.raises(AuthError) as caught:
            await stranger.skaha.list_sessions()
    finally:
        await stranger.aclose()
    assert caught.value.status == 401


async def test_stuck_pending_stays_pending_with_pull_errors(harness: Harness) -> None:
    harness.sim.set_faults([{"route": "/skaha/v1/session", "method": "POST", "stuck_pending": 1}])
    session_id = await harness.clients.skaha.create_session(NOTEBOOK)
    harness.sim.clock.advance(600)
    session = await harness.clients.skaha.get_session(session_id)
    assert session.status is SkahaSessionStatus.PENDING
    assert session.start_time is None
    assert "ErrImagePull" in await harness.clients.skaha.events(session_id)


async def test_legacy_era_is_detected_and_its_statuses_parse(harness: Harness) -> None:
    harness.sim.configure(legacy_mode=True)
    skaha = harness.clients.skaha
    assert await skaha.detect_api_version() is ApiVersion.V0
    job = await skaha.create_session(HEADLESS)
    harness.sim.clock.advance(PENDING_S + RUN_S + 1)
    session = await skaha.get_session(job)
    assert session.status is SkahaSessionStatus.SUCCEEDED  # (e) the pod-phase vocabulary
    assert session.status.is_finished
    assert session.appid == "<none>"
    assert harness.codes("GET", "/v0/session/{id}") == ["200"]


async def test_no_secret_leaks_under_simulator_faults(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clients = harness.connect(read_timeout=0.5)
    harness.sim.set_faults(
        [
            {"route": "/skaha/v1/session", "method": "POST", "fail_after_commit": 1},
            {"route": "/skaha/v1/context", "p_503": 1.0},
            {"route": "/skaha/v1/image", "hang_s": 30},
            {"route": "/rucio/rules*", "method": "POST", "p_500": 1.0},
        ]
    )
    texts: list[str] = []
    assert clients.rucio is not None
    spec = RuleSpec(dids=[Did(scope="s", name="n")], rse_expression="R")
    for call in (
        clients.skaha.create_session(NOTEBOOK),
        clients.skaha.context(),
        clients.skaha.images(),
        clients.rucio.create_rule(spec),
    ):
        with pytest.raises(Unavailable) as caught:
            await call
        texts += [str(caught.value), repr(caught.value)]
        texts.append("".join(traceback.format_exception(caught.value)))
    texts += [repr(clients), repr(clients.skaha), repr(clients.rucio)]
    texts += [record.getMessage() for record in caplog.records]
    await clients.aclose()
    assert len(texts) >= 4 * 3 + 3
    for secret in ("tok-alice", "pw-alice"):
        assert [t for t in texts if secret in t] == []
