"""Fixtures: a frozen-clock simulator served on a free port, and an aiohttp client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import Api

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-eve": "eve"}


@pytest.fixture
def config() -> SimulatorConfig:
    """Deterministic timings: Pending 5 s, Terminating 10 s, headless run 60 s."""
    return SimulatorConfig(
        tokens=TOKENS, seed=1, frozen_clock=True, pending_s=5, terminate_s=10, run_s=60
    )


@pytest.fixture
async def sim(config: SimulatorConfig) -> AsyncIterator[Simulator]:
    """The simulator object (state, clock, faults)."""
    simulator = Simulator(config)
    yield simulator
    simulator.close()


@pytest.fixture
async def base_url(sim: Simulator) -> AsyncIterator[str]:
    """The simulator served on 127.0.0.1 and a free port."""
    async with sim.serve(host="127.0.0.1", port=0) as running:
        yield running.base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp client with a deadline on every request."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.fixture
def alice(http: aiohttp.ClientSession, base_url: str) -> Api:
    """Calls as alice."""
    return Api(http, base_url, "tok-alice")


@pytest.fixture
def bob(http: aiohttp.ClientSession, base_url: str) -> Api:
    """Calls as bob."""
    return Api(http, base_url, "tok-bob")
