"""The contract suite's targets: the in-memory fakes and the simulator served on loopback.

Every test in `tests/contract/` that takes `target` runs twice, once per target, through the
same ports (`skaha_operator.platform.ports`), so the fake and the simulator cannot drift apart.
Both targets share one timing setup: Pending 10 s, headless run 60 s, Terminating 5 s, Rucio
REPLICATING 30 s, on a clock only the test moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from skaha_operator.platform.base import DEFAULT_TIMEOUT
from skaha_operator.platform.clients import PlatformClients, PlatformSettings, RucioSettings
from skaha_operator.platform.fake import FakePlatform, FakeSkahaConfig
from skaha_operator.platform.ports import CavernPort, RucioPort, SkahaPort
from skaha_operator.platform.retry import RetryPolicy
from skaha_operator.simulator import Simulator, SimulatorConfig

PENDING_S = 10.0
RUN_S = 60.0
TERMINATE_S = 5.0
REPLICATE_S = 30.0
USER = "alice"
TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


async def no_sleep(seconds: float) -> None:
    """Retry waits are recorded by the policy's maths but never slept on in tests."""


FAST_RETRY = RetryPolicy(sleep=no_sleep)


@dataclass
class Target:
    """One implementation of the three ports, plus the hand on its clock."""

    name: str
    skaha: SkahaPort
    cavern: CavernPort
    rucio: RucioPort
    advance: Callable[[float], object]
    home: str


def simulator_config(**overrides: object) -> SimulatorConfig:
    """The simulator setup matching the fake's defaults."""
    base: dict[str, object] = {
        "tokens": TOKENS,
        "seed": 1,
        "frozen_clock": True,
        "pending_s": PENDING_S,
        "run_s": RUN_S,
        "terminate_s": TERMINATE_S,
        "replicate_s": REPLICATE_S,
    }
    return SimulatorConfig.model_validate({**base, **overrides})


def client_settings(
    base_url: str,
    token: str = "tok-alice",
    retry: RetryPolicy = FAST_RETRY,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> PlatformSettings:
    """Client settings for a served simulator."""
    return PlatformSettings(
        skaha_url=f"{base_url}/skaha",
        cavern_url=f"{base_url}/arc",
        token=SecretStr(token),
        rucio=RucioSettings(
            url=f"{base_url}/rucio", account=USER, username=USER, password=SecretStr("pw-alice")
        ),
        retry=retry,
        timeout=timeout,
    )


@pytest.fixture(params=["fake", "simulator"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """Each contract test runs against the fake and against the simulator."""
    if request.param == "fake":
        fake = FakePlatform(
            FakeSkahaConfig(user=USER, pending_s=PENDING_S, run_s=RUN_S, terminate_s=TERMINATE_S)
        )
        fake.rucio.replicate_s = REPLICATE_S
        yield Target("fake", fake.skaha, fake.cavern, fake.rucio, fake.advance, f"home/{USER}")
        return
    sim = Simulator(simulator_config())
    try:
        async with sim.serve(host="127.0.0.1", port=0) as running:
            clients = PlatformClients.create(client_settings(running.base_url))
            assert clients.rucio is not None
            try:
                yield Target(
                    "simulator",
                    clients.skaha,
                    clients.cavern,
                    clients.rucio,
                    sim.clock.advance,
                    f"home/{USER}",
                )
            finally:
                await clients.aclose()
    finally:
        sim.close()
