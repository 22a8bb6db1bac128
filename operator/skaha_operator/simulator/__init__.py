"""A faithful local simulator of Skaha v1 sessions, Cavern (VOSpace) and Rucio rules.

It follows `docs/platform-api.md` §9 (what the simulator must reproduce): the services'
wire formats, a clock-driven session lifecycle, seeded fault injection (timing windows included)
and a `/_sim` control API; docs/simulator.md lists every knob and control route. Headless
sessions can run for real as podman containers (`containers.py`, `job_mode`), with emulation
(`jobs.py`) as the fallback where no engine exists. It uses aiohttp (never httpx) and is imported
only by tests, the CLI and the demo. Public surface: `Simulator`, `SimulatorConfig`, `FaultRule`,
`CavernSeed`, `serve_forever`, `main`.
"""

from skaha_operator.simulator.cli import main, serve_forever
from skaha_operator.simulator.config import (
    CavernSeed,
    FaultRule,
    PendingMode,
    SimulatorConfig,
    load_config,
)
from skaha_operator.simulator.server import RunningSimulator, Simulator, ThreadHandle

__all__ = [
    "CavernSeed",
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
