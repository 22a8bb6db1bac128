"""Helpers for the platform client unit tests: clients wired to an `httpx.MockTransport`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from pydantic import SecretStr

from skaha_operator.platform.base import BearerAuth, CallRecord, make_http_client
from skaha_operator.platform.cavern import CavernClient
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.platform.rucio import RucioClient
from skaha_operator.platform.skaha import SkahaClient

TOKEN = "tok-SECRET-alice-5f1d2c9a"
RUCIO_PASSWORD = "pw-SECRET-rucio-77aa"
RUCIO_TOKEN = "rucio-SECRET-token-0042"

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Sleeps:
    """A fake `sleep` for the retry policy: records each delay, never waits."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class Recorder:
    """Collects the per-attempt call records."""

    records: list[CallRecord] = field(default_factory=list)

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)


def policy(sleeps: Sleeps, max_attempts: int = 8, retry_after_cap: float = 10.0) -> RetryPolicy:
    """A retry policy that records its waits instead of sleeping."""
    return RetryPolicy(max_attempts=max_attempts, retry_after_cap=retry_after_cap, sleep=sleeps)


def skaha(
    handler: Handler, retry: RetryPolicy | None = None, on_call: Recorder | None = None
) -> SkahaClient:
    """A SkahaClient at http://skaha.test/skaha over the mock handler."""
    http = make_http_client(
        "http://skaha.test/skaha",
        auth=BearerAuth(SecretStr(TOKEN)),
        transport=httpx.MockTransport(handler),
    )
    return SkahaClient(
        http, token=SecretStr(TOKEN), retry=retry or policy(Sleeps()), on_call=on_call
    )


def cavern(handler: Handler, retry: RetryPolicy | None = None) -> CavernClient:
    """A CavernClient at http://cavern.test/arc over the mock handler."""
    http = make_http_client(
        "http://cavern.test/arc",
        auth=BearerAuth(SecretStr(TOKEN)),
        transport=httpx.MockTransport(handler),
    )
    return CavernClient(http, token=SecretStr(TOKEN), retry=retry or policy(Sleeps()))


def rucio(
    handler: Handler,
    retry: RetryPolicy | None = None,
    now: Callable[[], datetime] | None = None,
) -> RucioClient:
    """A RucioClient at http://rucio.test over the mock handler."""
    http = make_http_client("http://rucio.test", transport=httpx.MockTransport(handler))
    return RucioClient(
        http,
        account="alice",
        username="alice",
        password=SecretStr(RUCIO_PASSWORD),
        retry=retry or policy(Sleeps()),
        now=now,
    )


def text(status: int, body: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    """An OpenCADC-style text/plain reply (§5)."""
    return httpx.Response(
        status, text=body, headers={"Content-Type": "text/plain", **(headers or {})}
    )
