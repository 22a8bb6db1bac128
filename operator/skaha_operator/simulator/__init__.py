"""A faithful local simulator of Skaha v1 sessions, Cavern (VOSpace) and Rucio rules.

It follows `/work/shared/docs/reference/skaha-api.md` §9 ("Minimal spec for a faithful local
simulator"): wire formats of §1–§8, a clock-driven session lifecycle, seeded fault injection and a
`/_sim` control API. Headless sessions can run for real as podman containers (`containers.py`,
`job_mode`), with emulation (`jobs.py`) as the fallback where no engine exists. It uses aiohttp
(never httpx) and is imported only by tests, the CLI and the demo. Public surface: `Simulator`,
`SimulatorConfig`, `FaultRule`, `serve_forever`, `main`.
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
