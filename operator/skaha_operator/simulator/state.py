"""The shared state every route handler reads: config, clock, stores and the served base URL.

Also the per-request keys: the fault plan drawn for a request (`plan_of`) and the moment a
deferred commit becomes visible (`COMMIT_AT_KEY`, set by handlers that commit under
`commit_delay_s`, read by the fault middleware to time the answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from skaha_operator.simulator.cavern_store import CavernStore
from skaha_operator.simulator.clock import SimClock
from skaha_operator.simulator.config import SimulatorConfig
from skaha_operator.simulator.faults import FaultBook, FaultPlan
from skaha_operator.simulator.jobs import JobRunner
from skaha_operator.simulator.oidc_store import OidcStore
from skaha_operator.simulator.rucio_store import RucioStore
from skaha_operator.simulator.stats import RequestStats
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
    stats: RequestStats = field(default_factory=RequestStats)
    oidc: OidcStore = field(default_factory=OidcStore)
    served_url: str = field(default="http://127.0.0.1")

    @property
    def base_url(self) -> str:
        """Where connect URLs and transfer endpoints point: `public_url` or the served URL."""
        return (self.config.public_url or self.served_url).rstrip("/")


STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
USER_KEY: web.RequestKey[str] = web.RequestKey("sim_user", str)
PLAN_KEY: web.RequestKey[FaultPlan] = web.RequestKey("sim_fault_plan", FaultPlan)
COMMIT_AT_KEY: web.RequestKey[float] = web.RequestKey("sim_commit_at", float)


def state_of(request: web.Request) -> SimState:
    """The simulator state behind a request."""
    return request.app[STATE_KEY]


def user_of(request: web.Request) -> str:
    """The authenticated caller (set by the auth step before the handler runs)."""
    user: str | None = request.get(USER_KEY)
    if user is None:
        raise RuntimeError("route needs authentication but none ran")
    return user


def plan_of(request: web.Request) -> FaultPlan:
    """The fault plan drawn for this request (an empty one outside the fault middleware)."""
    plan: FaultPlan | None = request.get(PLAN_KEY)
    return plan if plan is not None else FaultPlan()
