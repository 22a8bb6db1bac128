"""`Simulator`: the in-process handle on a simulated Skaha + Cavern + Rucio deployment.

Serve it on an event loop with `async with sim.serve(...)`, or in a background thread with
`sim.start_in_thread(...)` for synchronous callers (the `canfar` client) and the demo process.
Facts: `docs/platform-api.md` §9 (what the simulator must reproduce).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from skaha_operator.simulator import cavern_seed
from skaha_operator.simulator.app import make_app
from skaha_operator.simulator.cavern_store import CavernStore
from skaha_operator.simulator.clock import SimClock
from skaha_operator.simulator.config import CavernSeed, FaultRule, SimulatorConfig
from skaha_operator.simulator.containers import ContainerRunner, RunnerStatus, decide_runner
from skaha_operator.simulator.control_access import revoke_token, set_token
from skaha_operator.simulator.control_api import launch_docs, parse_phase, patch_config
from skaha_operator.simulator.faults import FaultBook
from skaha_operator.simulator.rucio_store import RucioStore
from skaha_operator.simulator.skaha_api import session_docs
from skaha_operator.simulator.state import SimState
from skaha_operator.simulator.store import SessionStore

# Hung handlers (hang_s) must not hold a shutdown for long.
SHUTDOWN_TIMEOUT_S = 1.0
THREAD_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunningSimulator:
    """Where a served simulator listens."""

    base_url: str

    @property
    def skaha_url(self) -> str:
        """Skaha service base (`…/skaha`); the v1 API is under `/v1`."""
        return f"{self.base_url}/skaha"

    @property
    def cavern_url(self) -> str:
        """Cavern service base (`…/arc`)."""
        return f"{self.base_url}/arc"

    @property
    def rucio_url(self) -> str:
        """Rucio base (`…/rucio`)."""
        return f"{self.base_url}/rucio"


class ThreadHandle:
    """A simulator served by a background thread's event loop."""

    def __init__(
        self,
        base_url: str,
        loop: asyncio.AbstractEventLoop,
        stop: asyncio.Event,
        thread: threading.Thread,
    ) -> None:
        self.base_url = base_url
        self._loop = loop
        self._stop = stop
        self._thread = thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)


class Simulator:
    """A faithful local Skaha/Cavern/Rucio: state, clock, faults and the HTTP app."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.clock = SimClock(frozen=self.config.frozen_clock, start=self.config.start_time)
        cavern = CavernStore(self.config.cavern_authority, self.config.cavern_root)
        cavern.seed(self.config.cavern_files)
        # The temp dir goes when the simulator is collected or the interpreter exits.
        self._finalizer = weakref.finalize(self, cavern.close)
        self.state = SimState(
            config=self.config,
            clock=self.clock,
            sessions=SessionStore(self.config, self.clock, cavern.ensure_home),
            cavern=cavern,
            rucio=RucioStore(self.config, self.clock),
            faults=FaultBook(self.config.faults, self.config.seed),
        )
        cavern_seed.seed(cavern, self.config.cavern_seed)
        # Headless sessions as containers where an engine exists (job_mode), else emulated.
        engine, status = decide_runner(self.config)
        self.state.jobs.status = status
        if engine is not None:
            runner = ContainerRunner(engine, self.config)
            self.state.jobs.containers = runner
            # Containers left by a simulator that was never served or closed go at exit.
            self._containers_finalizer = weakref.finalize(self, runner.remove_all)

    @property
    def job_runner(self) -> RunnerStatus:
        """How headless sessions run here (containers or emulation) and why."""
        return self.state.jobs.status

    # -- in-process control ---------------------------------------------------------------
    def sessions(self, user: str | None = None) -> list[dict[str, Any]]:
        """Current JSON of visible sessions: Terminating included, gone (404) excluded."""
        return session_docs(self.state, user)

    def launches(self) -> list[dict[str, Any]]:
        """Every session ever created, gone ones included (as `GET /_sim/launches`)."""
        return launch_docs(self.state)

    def set_faults(
        self, rules: Iterable[FaultRule | dict[str, Any]], *, append: bool = False
    ) -> None:
        """Install fault rules (replacing the current ones unless `append`)."""
        parsed = [r if isinstance(r, FaultRule) else FaultRule.model_validate(r) for r in rules]
        if append:
            self.state.faults.extend(parsed)
        else:
            self.state.faults.replace(parsed)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.state.faults.clear()

    def force(self, session_id: str, status: str) -> None:
        """Pin a session's status from now on (as `POST /_sim/sessions/{id}/force`)."""
        phase = parse_phase(status)
        self.state.sessions.find(session_id).force(
            phase, self.clock.now(), self.config.session_expiry_s
        )

    def configure(self, **knobs: Any) -> None:
        """Change runtime knobs (as `PATCH /_sim/config`)."""
        patch_config(self.state, knobs)

    def set_token(self, token: str, user: str) -> None:
        """Add or re-point a bearer token (as `PUT /_sim/tokens/{token}`)."""
        set_token(self.state, token, user)

    def revoke_token(self, token: str) -> None:
        """Revoke a bearer token: later calls with it are 401 (as `DELETE /_sim/tokens/…`)."""
        revoke_token(self.state, token)

    def stats(self, **filters: str) -> dict[str, Any]:
        """Request counts (as `GET /_sim/stats`); filters: method, route, token, user, outcome."""
        return self.state.stats.summary(**filters)

    def seed_cavern(self, dirs: Iterable[str] = (), files: dict[str, str] | None = None) -> None:
        """Create Cavern directories and files out of band (as `POST /_sim/cavern/seed`)."""
        cavern_seed.seed(self.state.cavern, CavernSeed(dirs=list(dirs), files=files or {}))

    def cavern_tree(self, under: str = "") -> list[dict[str, Any]]:
        """Every Cavern node under a path (as `GET /_sim/cavern/tree`)."""
        return cavern_seed.tree(self.state.cavern, under)

    def close(self) -> None:
        """Remove the job containers and the Cavern temp directory now."""
        if self.state.jobs.containers is not None:
            self._containers_finalizer()
        self._finalizer()

    # -- serving --------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        """The aiohttp application (for aiohttp's test client)."""
        return make_app(self.state)

    @asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 0
    ) -> AsyncIterator[RunningSimulator]:
        """Serve on `host:port` (0 = a free port) for the duration of the block."""
        runner = web.AppRunner(
            self.make_app(),
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            self.state.served_url = f"http://{_url_host(host, bound_host)}:{bound_port}"
            yield RunningSimulator(base_url=self.state.served_url)
        finally:
            await runner.cleanup()
            if self.state.jobs.containers is not None:
                await self.state.jobs.containers.aclose()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> ThreadHandle:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def run() -> None:
            stop = asyncio.Event()
            try:
                async with self.serve(host, port) as running:
                    box.update(url=running.base_url, loop=asyncio.get_running_loop(), stop=stop)
                    ready.set()
                    await stop.wait()
            except BaseException as exc:
                box["error"] = exc
                ready.set()
                raise

        thread = threading.Thread(
            target=lambda: asyncio.run(run()), name="skaha-simulator", daemon=True
        )
        thread.start()
        if not ready.wait(THREAD_START_TIMEOUT_S):
            raise TimeoutError("simulator thread did not start listening")
        if "error" in box:
            thread.join(THREAD_START_TIMEOUT_S)
            raise RuntimeError("simulator thread failed to start") from box["error"]
        return ThreadHandle(box["url"], box["loop"], box["stop"], thread)


def _url_host(requested: str, bound: str) -> str:
    """A host name usable in URLs: wildcard binds are reached via loopback; IPv6 in brackets."""
    host = requested if requested not in ("", "0.0.0.0", "::") else "127.0.0.1"
    if host == "localhost":
        host = bound
    return f"[{host}]" if ":" in host else host
