"""Headless jobs whose outcome follows their command: the operator's download and notebook setup.

Where a container engine is usable (`job_mode` auto or container), every headless session runs
for real as a container (`containers.py`) and nothing here decides its outcome. Otherwise (the
emulation, the fallback where no engine exists):
a real job runs a shell script; the simulator cannot, so it reads the same inputs the script reads
(the job's environment, `SKOP_JOB=download|notebook-setup`, and files in the Cavern tree) and
decides at launch how the job ends and what it logs. The job's effects (the downloaded file, the
fetched notebook, the virtual environment) appear in the Cavern tree only once the job has
Completed, so nothing is there before the job ends and nothing is written by a job that was
deleted or failed. Effects are applied before each request is handled (`settle`).

The simulator cannot reach the internet: a URL is fetchable only when it points at the
simulator's own `/_sim/files/<name>` (payloads from `SimulatorConfig.files` or
`PUT /_sim/files/<name>`); any other host fails as curl does when it cannot resolve a host.
pip fails for requirements named in `SimulatorConfig.pip_unavailable`, as pip does for a package
that does not exist.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from skaha_operator.simulator.containers import ContainerRunner, RunnerStatus
from skaha_operator.simulator.errors import SimError
from skaha_operator.simulator.schedule import env_map
from skaha_operator.simulator.sessions import Phase, SimSession

if TYPE_CHECKING:
    from skaha_operator.simulator.state import SimState

FILES_ROUTE = "/_sim/files/"
MOUNT_ROOT = "/arc/"
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class JobRecord:
    """A recognised job: its kind, its session, and the effect applied once it Completed."""

    kind: str
    session: SimSession
    effect: Callable[[], None] | None
    settled: bool = False


@dataclass
class JobRunner:
    """Recognised jobs by session id, the payloads served under /_sim/files, and a launch log."""

    files: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, session id, name)
    containers: ContainerRunner | None = None  # headless sessions as containers
    status: RunnerStatus = field(
        default_factory=lambda: RunnerStatus("emulate", "job_mode is emulate")
    )

    def payload(self, state: SimState, name: str) -> bytes | None:
        """A served payload: set at run time, else from the config (text)."""
        if name in self.files:
            return self.files[name]
        text = state.config.files.get(name)
        return None if text is None else text.encode()

    def on_launch(self, state: SimState, session: SimSession) -> None:
        """Run a headless session as a container, or recognise an operator job and fix its end."""
        if self.containers is not None and self.containers.handles(session):
            self.containers.start(state, session)
            return
        env = env_map(session.env)
        kind = env.get("SKOP_JOB")
        if kind not in {"download", "notebook-setup"}:
            return
        short = state.config.run_s is None and "SIM_RUN_SECONDS" not in env
        if short and session.start_at is not None:
            # A short job: the default lognormal headless run (median 60 s) is for science jobs.
            session.end_at = session.start_at + state.config.job_run_s
        if kind == "download":
            ok, lines, effect = self._download(state, env)
        else:
            ok, lines, effect = self._setup(state, env)
        session.log_text = "\n".join(lines)
        if not ok:
            session.end_phase = Phase.FAILED
            session.exit_code = 1
        else:
            session.end_phase = Phase.COMPLETED
            session.exit_code = 0
        self.jobs[session.id] = JobRecord(kind, session, effect if ok else None)
        self.log.append((kind, session.id, session.name))

    def on_delete(self, session: SimSession) -> None:
        """DELETE of a session: stop its container, if it has one."""
        if self.containers is not None and session.real:
            self.containers.stop(session)

    def settle(self, now: float) -> None:
        """Apply the effects of jobs that have Completed by `now` (never of deleted ones)."""
        if self.containers is not None:
            self.containers.settle(now)
        for record in self.jobs.values():
            if record.settled:
                continue
            ends, final = record.session.finish()
            deleted = record.session.deleted_at
            if deleted is not None and deleted < ends:
                record.settled = True  # stopped before it finished: no effect
                continue
            if now < ends:
                continue
            record.settled = True
            if final is Phase.COMPLETED and record.effect is not None:
                record.effect()

    # -- what the scripts do ----------------------------------------------------------------

    def _fetch(self, state: SimState, url: str) -> tuple[bytes | None, str]:
        """(payload, error line) for a URL, as curl would see it from inside the platform."""
        for base in {state.base_url, state.served_url.rstrip("/")}:
            prefix = base + FILES_ROUTE
            if url.startswith(prefix):
                data = self.payload(state, url[len(prefix) :].split("?", 1)[0])
                if data is None:
                    return None, "curl: (22) The requested URL returned error: 404"
                return data, ""
        host = url.split("://", 1)[-1].split("/", 1)[0]
        return None, f"curl: (6) Could not resolve host: {host}"

    def _download(
        self, state: SimState, env: dict[str, str]
    ) -> tuple[bool, list[str], Callable[[], None] | None]:
        url, dest = env.get("SKOP_URL", ""), env.get("SKOP_DEST", "")
        target = _cavern_file(state, dest)
        if target is None:
            return False, [f"mkdir: cannot create directory '{dest}': Permission denied"], None
        data, error = self._fetch(state, url)
        if data is None:
            return False, [error], None
        checksum = env.get("SKOP_CHECKSUM", "")
        algo, _, expected = checksum.partition(":")
        if checksum:
            known = algo in {"sha256", "md5"}
            digest = hashlib.new(algo, data, usedforsecurity=False).hexdigest() if known else ""
            if digest != expected:
                return (
                    False,
                    [
                        f"{dest}.part: FAILED",
                        f"{algo}sum: WARNING: 1 computed checksum did NOT match",
                    ],
                    None,
                )
        lines = ([f"{dest}.part: OK"] if checksum else []) + [f"downloaded {url} to {dest}"]
        return True, lines, lambda: _write(target, data)

    def _setup(
        self, state: SimState, env: dict[str, str]
    ) -> tuple[bool, list[str], Callable[[], None] | None]:
        effects: list[Callable[[], None]] = []
        notebook_url = env.get("SKOP_NOTEBOOK_URL")
        if notebook_url:
            data, error = self._fetch(state, notebook_url)
            target = _cavern_file(state, env.get("SKOP_NOTEBOOK", ""))
            if data is None or target is None:
                code = "404: Not Found" if "404" in error else "Name or service not known"
                return False, [f"urllib.error.URLError: HTTP Error {code}"], None
            effects.append(lambda: _write(target, data))
        requirements_file = _cavern_file(state, env.get("SKOP_REQUIREMENTS", ""))
        if requirements_file is None or not requirements_file.is_file():
            name = env.get("SKOP_REQUIREMENTS", "")
            return (
                False,
                [
                    "ERROR: Could not open requirements file: [Errno 2] No such file or "
                    f"directory: '{name}'"
                ],
                None,
            )
        wanted = [
            match.group(1)
            for line in requirements_file.read_text().splitlines()
            if (match := _REQUIREMENT_NAME.match(line))
        ]
        missing = {n.lower() for n in state.config.pip_unavailable}
        for name in wanted:
            if name.lower() in missing:
                return (
                    False,
                    [
                        f"Collecting {name}",
                        f"ERROR: Could not find a version that satisfies the requirement {name} "
                        "(from versions: none)",
                        f"ERROR: No matching distribution found for {name}",
                    ],
                    None,
                )
        venv = _cavern_file(state, env.get("SKOP_ENV", ""))
        if venv is not None:
            effects.append(
                lambda: _write(venv / "pyvenv.cfg", b"include-system-site-packages = true\n")
            )
        installed = " ".join(f"{n}-1.0" for n in wanted)
        lines = [f"Collecting {n}" for n in wanted]
        lines.append(f"Successfully installed {installed}" if wanted else "nothing to install")

        def apply() -> None:
            for effect in effects:
                effect()

        return True, lines, apply


def _cavern_file(state: SimState, mount_path: str) -> Path | None:
    """The Cavern tree path of an in-session path under /arc/ (None outside the tree)."""
    if not mount_path.startswith(MOUNT_ROOT):
        return None
    parts = [p for p in mount_path[len(MOUNT_ROOT) :].split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    return state.cavern.root.joinpath(*parts)


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def settle_middleware(state: SimState) -> Middleware:
    """A middleware applying finished jobs' effects before each request is handled."""

    @web.middleware
    async def settle(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.jobs.settle(state.clock.now())
        return await handler(request)

    return settle


def add_routes(app: web.Application, state: SimState) -> None:
    """Register GET and PUT /_sim/files/{name}: test payloads served by the simulator itself."""

    async def get_file(request: web.Request) -> web.Response:
        data = state.jobs.payload(state, request.match_info["name"])
        if data is None:
            raise SimError(404, f"not found: {request.path}")
        return web.Response(body=data, content_type="application/octet-stream")

    async def put_file(request: web.Request) -> web.Response:
        # Serve these bytes from now on; the reply gives their checksums for Data specs.
        data = await request.read()
        state.jobs.files[request.match_info["name"]] = data
        return web.json_response(
            {
                "sha256": hashlib.sha256(data).hexdigest(),
                "md5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            }
        )

    app.router.add_get(FILES_ROUTE + "{name:.+}", get_file)
    app.router.add_put(FILES_ROUTE + "{name:.+}", put_file)
