"""Retry policy: idempotent calls retried briefly, POST never (docs/design.md §4.8)."""

from __future__ import annotations

import random

import httpx
import pytest

from skaha_operator.platform.errors import RateLimited, Rejected, Unavailable
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.wire import SessionParams
from tests.unit.platform_mock import Recorder, Sleeps, policy, skaha, text

SESSION = {"id": "abcd1234", "status": "Running", "type": "notebook", "name": "n"}
PARAMS = SessionParams(name="n", image="images.canfar.net/skaha/astroml:latest")


class Flaky:
    """Answers 503 to a seeded 30% of requests, else the wrapped reply; counts calls."""

    def __init__(self, seed: int, reply: httpx.Response, p_503: float = 0.3) -> None:
        self.rng = random.Random(seed)
        self.reply = reply
        self.p_503 = p_503
        self.calls = 0
        self.failures = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.rng.random() < self.p_503:
            self.failures += 1
            return text(503, f"temporarily unavailable: {request.url.path}", {"Retry-After": "1"})
        return httpx.Response(self.reply.status_code, json=self.reply.json())


async def test_idempotent_calls_succeed_under_30_percent_503() -> None:
    flaky = Flaky(seed=42, reply=httpx.Response(200, json=SESSION))
    sleeps = Sleeps()
    client = skaha(flaky, policy(sleeps))
    results = [await client.get_session("abcd1234") for _ in range(200)]
    assert len(results) == 200
    assert all(r.id == "abcd1234" for r in results)
    assert flaky.failures > 30  # the fault really fired (~30% of attempts)
    assert flaky.calls == 200 + flaky.failures
    assert len(sleeps.delays) == flaky.failures


async def test_delete_is_retried_too() -> None:
    flaky = Flaky(seed=7, reply=httpx.Response(200, json={}), p_503=0.3)
    client = skaha(flaky, policy(Sleeps()))
    for _ in range(50):
        await client.delete_session("abcd1234")
    assert flaky.failures > 0
    assert flaky.calls == 50 + flaky.failures


async def test_post_500_is_not_retried() -> None:
    calls = []

    def fail(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return text(500, "unexpected exception: java.lang.RuntimeException: boom")

    sleeps = Sleeps()
    with pytest.raises(Unavailable) as caught:
        await skaha(fail, policy(sleeps)).create_session(PARAMS)
    assert calls == ["POST"]
    assert sleeps.delays == []
    assert caught.value.maybe_committed is True


async def test_post_that_hangs_is_not_retried() -> None:
    calls = []

    def hang(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(Unavailable) as caught:
        await skaha(hang, policy(Sleeps())).create_session(PARAMS)
    assert calls == ["POST"]
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_post_503_is_not_retried() -> None:
    calls = []

    def busy(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return text(503, "temporarily unavailable", {"Retry-After": "1"})

    with pytest.raises(Unavailable):
        await skaha(busy, policy(Sleeps())).renew("abcd1234")
    assert calls == ["POST"]


async def test_retry_after_is_honoured_and_capped() -> None:
    answers = iter(
        [
            text(503, "busy", {"Retry-After": "3"}),
            text(429, "slow down", {"Retry-After": "600"}),
            httpx.Response(200, json=SESSION),
        ]
    )
    sleeps = Sleeps()
    client = skaha(lambda _: next(answers), policy(sleeps, retry_after_cap=10.0))
    session = await client.get_session("abcd1234")
    assert session.id == "abcd1234"
    assert sleeps.delays == [3.0, 10.0]


async def test_backoff_is_exponential_without_retry_after() -> None:
    policy_ = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy_.delay(n, Unavailable("x")) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    calls = []

    def always_down(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return text(429, "too many requests", {"Retry-After": "2"})

    sleeps = Sleeps()
    with pytest.raises(RateLimited) as caught:
        await skaha(always_down, policy(sleeps, max_attempts=4)).list_sessions()
    assert len(calls) == 4
    assert sleeps.delays == [2.0, 2.0, 2.0]
    assert caught.value.retry_after == 2.0


async def test_client_errors_are_not_retried() -> None:
    calls = []

    def reject(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return text(400, "unknown type: bogus")

    with pytest.raises(Rejected):
        await skaha(reject, policy(Sleeps())).list_sessions()
    assert calls == [1]


async def test_every_attempt_is_counted_with_its_route_template() -> None:
    answers = iter([text(503, "busy"), httpx.Response(200, json=SESSION)])
    recorder = Recorder()
    client = skaha(lambda _: next(answers), policy(Sleeps()), on_call=recorder)
    await client.get_session("abcd1234")
    assert [(r.service, r.method, r.route, r.code) for r in recorder.records] == [
        ("skaha", "GET", "/v1/session/{id}", "503"),
        ("skaha", "GET", "/v1/session/{id}", "200"),
    ]


async def test_transport_failures_are_counted_by_exception_name() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    recorder = Recorder()
    with pytest.raises(Unavailable):
        await skaha(refuse, policy(Sleeps(), max_attempts=2), on_call=recorder).context()
    assert [r.code for r in recorder.records] == ["ConnectError", "ConnectError"]
