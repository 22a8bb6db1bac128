"""Headless sessions run for real: each one is a container on a local engine (podman).

Where an engine and the job stand-in image exist, a headless session is not emulated: its image
name resolves to a local stand-in (`job_images`, else `job_standin_image`), the Cavern tree is
bind-mounted at `/arc`, and the POST's `cmd`/`args`/`env` become the container's entrypoint,
arguments and environment as Skaha builds its Job (reference `skaha-api.md` §2: `args` is
space-separated; each `env` is `KEY=VALUE`) and as Kubernetes then expands them (`$(VAR)`, with
`$$` an escaped `$` and undefined references left as they are). Skaha's launch template adds
`skaha_hostname`, `skaha_username`, `skaha_sessionid`, `HOME` and `PWD` (the user's home under
`/arc`) and `OMP_NUM_THREADS`, and sets the working directory to the home. `REPLICA_ID` and
`REPLICA_COUNT` come from the client (reference §6), so they arrive in the POST's env.

The session's status follows the container: Pending until `podman run -d` has started it,
Running until it exits, then Completed (exit 0) or Failed, lingering for the headless TTL.
Logs are the container's stdout and stderr. DELETE stops it (Terminating until it is gone).
Every job gets the site's environment: `PIP_INDEX_URL` pointing at the simulator's own stand-in
index (`pypi.py`), then `job_env` (another index, a proxy), before the POST's env.

Interactive sessions keep the emulation, and so does everything when no engine is usable: the
reason is in `GET /_sim/config` (`job_runner`) and in the start-up log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skaha_operator.simulator.schedule import env_map
from skaha_operator.simulator.sessions import Phase, SessionType, SimSession

if TYPE_CHECKING:
    from skaha_operator.simulator.config import SimulatorConfig
    from skaha_operator.simulator.state import SimState

log = logging.getLogger(__name__)

LABEL = "io.skaha-operator.simulator"
MOUNT = "/arc"
PROBE_TIMEOUT_S = 60.0
ENGINE_TIMEOUT_S = 120.0
GIB = 1024**3


# -- Kubernetes variable expansion ----------------------------------------------------------------


def expand(text: str, env: dict[str, str]) -> str:
    """`$(VAR)` references expanded exactly as Kubernetes does for command, args and env values.

    `$$` is an escaped `$` (so `$$(VAR)` gives the literal `$(VAR)`); a reference to an undefined
    variable, an unclosed `$(`, and a `$` before any other character are kept as they are
    (k8s.io/kubernetes third_party/forked/golang/expansion).
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    size = len(text)
    while cursor < size:
        if text[cursor] == "$" and cursor + 1 < size:
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")
                advance = 1
            elif following == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : close]
                    out.append(env.get(name, f"$({name})"))
                    advance = close - cursor
            else:
                out.append("$" + following)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def split_args(args: str | None) -> list[str]:
    """Skaha's `args`: space-separated (Java `split(" ")`: trailing empty strings dropped)."""
    if args is None:
        return []
    parts = args.split(" ")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def skaha_env(session: SimSession, hostname: str) -> list[tuple[str, str]]:
    """The variables Skaha's launch-headless template adds after the image bundle's env."""
    home = f"{MOUNT}/home/{session.user}"
    return [
        ("skaha_hostname", hostname),
        ("skaha_username", session.user),
        ("skaha_sessionid", session.id),
        ("HOME", home),
        ("PWD", home),
        ("OMP_NUM_THREADS", _number(session.cores)),
    ]


def container_env(
    session: SimSession, site_env: dict[str, str], hostname: str
) -> list[tuple[str, str]]:
    """The container's env in order, each value expanded against the ones before it (k8s).

    Order: the site's job env, the POST's `env` (later values win), then Skaha's variables.
    """
    ordered: dict[str, str] = dict(site_env)
    for key, value in env_map(session.env).items():
        ordered.pop(key, None)
        ordered[key] = value
    for key, value in skaha_env(session, hostname):
        ordered.pop(key, None)
        ordered[key] = value
    resolved: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for key, value in ordered.items():
        expanded = expand(value, resolved)
        resolved[key] = expanded
        out.append((key, expanded))
    return out


# -- the engine -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """A usable container engine and what it allows here."""

    binary: str
    env: dict[str, str]
    version: str
    limits: bool  # --cpus/--memory accepted
    rootful: bool  # the engine runs as root: containers run as the session's uid


@dataclass(frozen=True)
class RunnerStatus:
    """How headless sessions run in this simulator, and why (shown by `GET /_sim/config`)."""

    mode: str  # "container" or "emulate"
    reason: str
    engine: str | None = None
    standin_image: str | None = None
    limits: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `job_runner` entry of `GET /_sim/config`."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "engine": self.engine,
            "standin_image": self.standin_image,
            "resource_limits": self.limits,
        }


_PROBES: dict[tuple[str, str], tuple[Engine | None, str]] = {}


def project_containers_conf() -> Path:
    """Where hack/podman.sh writes containers.conf (runc, cgroupfs, no default ulimits): the
    project's cache, honouring SKAHA_CACHE and XDG_CACHE_HOME like the script."""
    if explicit := os.environ.get("SKAHA_CACHE"):
        cache = Path(explicit)
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "skaha-operator"
    return cache / "podman" / "containers.conf"


def engine_environment() -> dict[str, str]:
    """The process environment, with the project's containers.conf when none is chosen."""
    env = dict(os.environ)
    conf = project_containers_conf()
    if "CONTAINERS_CONF" not in env and conf.is_file():
        env["CONTAINERS_CONF"] = str(conf)
    return env


def probe_engine(binary: str, image: str) -> tuple[Engine | None, str]:
    """Find the engine and check it runs the stand-in (with limits if allowed); cached."""
    key = (binary, image)
    if key not in _PROBES:
        _PROBES[key] = _probe(binary, image)
    return _PROBES[key]


def _probe(binary: str, image: str) -> tuple[Engine | None, str]:
    path = shutil.which(binary)
    if path is None:
        return None, f"no container engine: {binary} not found on PATH"
    env = engine_environment()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [path, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )

    try:
        version = run("--version").stdout.strip().split()[-1]
        if run("image", "exists", image).returncode != 0:
            return None, (
                f"the job stand-in image {image} is missing (build it: hack/podman.sh standin)"
            )
        base = ["run", "--rm", "--network", "none", "--log-driver", "k8s-file"]
        limited = run(*base, "--cpus", "1", "--memory", "256m", image, "true")
        limits = limited.returncode == 0
        if not limits:
            plain = run(*base, image, "true")
            if plain.returncode != 0:
                return None, f"{binary} cannot run containers here: {plain.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{binary} does not answer: {exc}"
    return Engine(path, env, version, limits, os.geteuid() == 0), "container engine ready"


def decide_runner(config: SimulatorConfig) -> tuple[Engine | None, RunnerStatus]:
    """Container or emulation, from `job_mode` and what this machine has."""
    mode = config.job_mode
    if mode == "emulate":
        return None, RunnerStatus("emulate", "job_mode is emulate")
    if mode == "auto" and config.frozen_clock:
        return None, RunnerStatus("emulate", "frozen clock: real containers cannot follow it")
    engine, reason = probe_engine(config.job_engine, config.job_standin_image)
    if engine is None:
        if mode == "container":
            raise RuntimeError(f"job_mode is container but {reason}")
        return None, RunnerStatus("emulate", reason)
    return engine, RunnerStatus(
        "container",
        reason,
        engine=f"{Path(engine.binary).name} {engine.version}",
        standin_image=config.job_standin_image,
        limits=engine.limits,
    )


# -- running sessions -----------------------------------------------------------------------------


def resolve_image(config: SimulatorConfig, image: str) -> str:
    """The local image a requested image runs on: the mapping, else the stand-in."""
    return config.job_images.get(image, config.job_standin_image)


def site_env(config: SimulatorConfig, served_url: str) -> dict[str, str]:
    """What the simulated site gives every job: its package index, then `job_env`."""
    return {"PIP_INDEX_URL": f"{served_url.rstrip('/')}/_sim/pypi/simple/", **config.job_env}


def run_argv(
    session: SimSession,
    *,
    config: SimulatorConfig,
    engine: Engine,
    name: str,
    instance: str,
    cavern_root: Path,
    served_url: str,
) -> list[str]:
    """`podman run -d …` for one headless session (pure: no process is started)."""
    hostname = served_url.split("://", 1)[-1].split("/", 1)[0]
    env = container_env(session, site_env(config, served_url), hostname)
    values = dict(env)
    home = values["HOME"]
    argv = [
        engine.binary,
        "run",
        "--detach",
        "--name",
        name,
        "--label",
        f"{LABEL}={instance}",
        "--label",
        f"{LABEL}.session={session.id}",
        "--log-driver",
        "k8s-file",
        "--network",
        config.job_network,
        "--volume",
        f"{cavern_root}:{MOUNT}",
        "--workdir",
        home,
        "--hostname",
        name[:63],
        # The engine's own additions, which a Kubernetes pod does not have.
        "--unsetenv",
        "TERM",
        "--unsetenv",
        "container",
    ]
    if engine.rootful:
        argv += ["--user", f"{session.uid}:{session.gid}"]
    else:
        argv += ["--user", "0:0"]  # rootless: the container's root is the simulator's user
    if engine.limits:
        cores, ram = limits_of(session, config)
        argv += ["--cpus", _number(min(cores, float(os.cpu_count() or 1)))]
        argv += ["--memory", f"{int(ram * GIB)}b"]
    for key, value in env:
        argv += ["--env", f"{key}={value}"]
    args = [expand(arg, values) for arg in split_args(session.args)]
    if session.cmd is not None:
        argv += ["--entrypoint", json.dumps([expand(session.cmd, values)])]
    argv.append(resolve_image(config, session.image))
    argv += args
    return argv


def limits_of(session: SimSession, config: SimulatorConfig) -> tuple[float, float]:
    """(cores, GiB) limits: the request when fixed, else the site's default limits (§2)."""
    if session.fixed:
        return session.cores, session.ram
    return float(config.cores_default_limit), float(config.memory_default_limit)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class Running:
    """One container: its name, and the task that waits for it."""

    session: SimSession
    name: str
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    started_s: float | None = None  # wall time the POST handed the job to the engine
    running_s: float | None = None  # wall time `podman run -d` returned


@dataclass
class ContainerRunner:
    """Headless sessions as containers, for one simulator (containers carry its instance label)."""

    engine: Engine
    config: SimulatorConfig
    instance: str = field(default_factory=lambda: secrets.token_hex(4))
    running: dict[str, Running] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def handles(self, session: SimSession) -> bool:
        """Headless sessions run as containers; interactive ones are emulated."""
        return session.type is SessionType.HEADLESS

    def start(self, state: SimState, session: SimSession) -> None:
        """Launch the container in the background; the session is Pending until it runs."""
        session.real = True
        session.start_at = None
        session.end_at = None
        if session.stuck:
            return  # a stuck image pull never starts (fault injection)
        name = f"skaha-sim-{self.instance}-{session.id}"
        entry = Running(session, name, started_s=time.monotonic())
        self.running[session.id] = entry
        entry.task = self._spawn(self._run(state, entry))

    def stop(self, session: SimSession) -> None:
        """DELETE: stop the container; the session is Terminating until it is gone."""
        entry = self.running.get(session.id)
        if entry is None or entry.stopping:
            return
        entry.stopping = True
        session.terminate_s = float("inf")
        self._spawn(self._stop(entry))

    def settle(self, now: float) -> None:
        """Stop containers whose session passed its deadline (the Job is then Failed)."""
        for entry in list(self.running.values()):
            session = entry.session
            if not entry.stopping and now >= session.created + session.deadline_s:
                entry.stopping = True
                self._spawn(self._stop(entry))

    async def logs(self, session: SimSession) -> str:
        """The container's stdout and stderr so far; once it has ended, what was captured then
        (the container may be being removed, and `logs` on it can answer 0 with nothing)."""
        entry = self.running.get(session.id)
        captured = session.end_at is not None and session.log_text is not None
        if entry is None or session.start_at is None or captured:
            return session.log_text or ""
        code, out = await self._engine("logs", entry.name)
        return out if code == 0 else (session.log_text or "")

    async def aclose(self) -> None:
        """Remove every container of this simulator and wait for the background tasks."""
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.to_thread(self.remove_all)

    def remove_all(self) -> None:
        """Synchronously remove this simulator's containers (shutdown, interpreter exit)."""
        try:
            listed = subprocess.run(
                [self.engine.binary, "ps", "--all", "--quiet", "--filter",
                 f"label={LABEL}={self.instance}"],
                capture_output=True, text=True, env=self.engine.env,
                timeout=ENGINE_TIMEOUT_S, check=False,
            )  # fmt: skip
            ids = listed.stdout.split()
            if ids:
                subprocess.run(
                    [self.engine.binary, "rm", "--force", "--time", "0", *ids],
                    capture_output=True, env=self.engine.env,
                    timeout=ENGINE_TIMEOUT_S, check=False,
                )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not remove the simulator's containers: %s", exc)

    # -- internals ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _engine(
        self, *args: str, limit_s: float | None = ENGINE_TIMEOUT_S
    ) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            self.engine.binary,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.engine.env,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out.decode(errors="replace")

    async def _run(self, state: SimState, entry: Running) -> None:
        session = entry.session
        try:
            await asyncio.to_thread(_own_home, state.cavern.root, session, self.engine)
            argv = run_argv(
                session,
                config=self.config,
                engine=self.engine,
                name=entry.name,
                instance=self.instance,
                cavern_root=state.cavern.root,
                served_url=state.served_url,
            )
            code, out = await self._engine(*argv[1:])
            if code != 0:
                # The engine refused the container: the pod never ran (e.g. a bad command).
                session.log_text = out.strip() + "\n"
                self._finish(state, session, 128 if code == 125 else code)
                return
            entry.running_s = time.monotonic()
            if session.start_at is None:
                session.start_at = state.clock.now()
            if entry.stopping:  # deleted while the engine was starting it
                await self._engine("stop", "--time", str(self._grace()), entry.name)
            # No deadline of its own: DELETE and the session's deadline stop the container.
            _, waited = await self._engine("wait", entry.name, limit_s=None)
            try:
                exit_code = int(waited.strip().splitlines()[-1])
            except (ValueError, IndexError):
                exit_code = 1
            code, out = await self._engine("logs", entry.name)
            session.log_text = out if code == 0 else ""
            self._finish(state, session, exit_code)
        finally:
            with contextlib.suppress(Exception):
                await self._engine("rm", "--force", "--time", "0", entry.name)
            self.running.pop(session.id, None)
            if session.deleted_at is not None:
                # Stopped by DELETE: gone from now on.
                session.terminate_s = max(0.0, state.clock.now() - session.deleted_at)

    def _finish(self, state: SimState, session: SimSession, exit_code: int) -> None:
        now = state.clock.now()
        if session.deleted_at is not None:
            return
        if session.start_at is None:
            session.start_at = now
        if now < session.created + session.deadline_s and session.end_at is None:
            session.end_at = now
            session.exit_code = exit_code
            session.end_phase = Phase.COMPLETED if exit_code == 0 else Phase.FAILED

    def _grace(self) -> int:
        return max(0, int(self.config.job_stop_grace_s))

    async def _stop(self, entry: Running) -> None:
        if entry.running_s is not None:
            with contextlib.suppress(Exception):
                await self._engine("stop", "--time", str(self._grace()), entry.name)
        if entry.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(entry.task), ENGINE_TIMEOUT_S)


def _own_home(root: Path, session: SimSession, engine: Engine) -> None:
    """Let the session's uid use its home and the projects, as Skaha's user does (rootful).

    The Cavern tree is written by the simulator's own user; the container runs as the session's
    uid, so the top directories are opened for traversal, the user's home tree becomes theirs,
    and the projects tree is open to every user (the simulator's Cavern lets any user write
    there, where a site would use project groups).
    """
    if not engine.rootful:
        return
    home = root / "home" / session.user
    home.mkdir(parents=True, exist_ok=True)
    for top in (root, root / "home"):
        top.chmod(0o755)
    for path in _walk(home):
        with contextlib.suppress(OSError):
            os.chown(path, session.uid, session.gid, follow_symlinks=False)
    for path in _walk(root / "projects"):
        if path.is_symlink():
            continue
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode
            path.chmod(mode | (0o777 if path.is_dir() else 0o666))


def _walk(top: Path) -> Iterable[Path]:
    yield top
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            yield Path(dirpath) / name
