"""A faithful local simulator of Skaha v1 sessions, Cavern (VOSpace) and Rucio rules.

It follows `docs/platform-api.md` §9 (what the simulator must reproduce): the wire formats of
§1–§8, a clock-driven session lifecycle, seeded fault injection and a `/_sim` control API. It
uses aiohttp (never httpx) and is imported only by tests, the CLI and the demo. Public surface:
`Simulator`, `SimulatorConfig`, `FaultRule`, `serve_forever`, `main`.
"""

from skaha_operator.simulator.cli import main, serve_forever
from skaha_operator.simulator.config import (
    FaultRule,
    PendingMode,
    SimulatorConfig,
    load_config,
)
from skaha_operator.simulator.server import RunningSimulator, Simulator, ThreadHandle

__all__ = [
    "FaultRule",
    "PendingMode",
    "RunningSimulator",
    "Simulator",
    "SimulatorConfig",
    "ThreadHandle",
    "load_config",
    "main",
    "serve_forever",
]
