"""The shared state every route handler reads: config, clock, stores and the served base URL."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from skaha_operator.simulator.cavern_store import CavernStore
from skaha_operator.simulator.clock import SimClock
from skaha_operator.simulator.config import SimulatorConfig
from skaha_operator.simulator.faults import FaultBook
from skaha_operator.simulator.jobs import JobRunner
from skaha_operator.simulator.rucio_store import RucioStore
from skaha_operator.simulator.store import SessionStore


@dataclass
class SimState:
    """Everything the handlers share; one per Simulator."""

    config: SimulatorConfig
    clock: SimClock
    sessions: SessionStore
    cavern: CavernStore
    rucio: RucioStore
    faults: FaultBook
    jobs: JobRunner = field(default_factory=JobRunner)
    served_url: str = field(default="http://127.0.0.1")

    @property
    def base_url(self) -> str:
        """Where connect URLs and transfer endpoints point: `public_url` or the served URL."""
        return (self.config.public_url or self.served_url).rstrip("/")


STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
USER_KEY: web.RequestKey[str] = web.RequestKey("sim_user", str)


def state_of(request: web.Request) -> SimState:
    """The simulator state behind a request."""
    return request.app[STATE_KEY]


def user_of(request: web.Request) -> str:
    """The authenticated caller (set by the auth step before the handler runs)."""
    user: str | None = request.get(USER_KEY)
    if user is None:
        raise RuntimeError("route needs authentication but none ran")
    return user
