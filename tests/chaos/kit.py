"""Machinery the campaigns share: simulator, operator processes, workloads, a status recorder.

Everything a campaign captures (operator logs, Events, every status written, metrics) is kept so
that the secret-hygiene checks can grep it. Every wait has a deadline; every process and thread
started here is stopped by its context manager.
"""

from __future__ import annotations

import itertools
import json
import random
import ssl
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, watch

from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.processes import free_port
from skaha_operator.reconcile.transitions import CHECK_TRANSITIONS, COMPUTE_TRANSITIONS
from skaha_operator.simulator import Simulator, SimulatorConfig
from tests.integration.operator_harness import MARKED, operator_process, wait_for

# Distinctive values, so a grep for them cannot match anything else.
TOKEN = "tok-chaos-7d1e0b5c93a4f862"
WRONG_TOKEN = "tok-wrong-5e2a9c4b7f1d0836"
SECRETS = (TOKEN, WRONG_TOKEN)
USER = "alice"
NOTEBOOK_IMAGE = "images.canfar.net/skaha/astroml:latest"
HEADLESS_IMAGE = "images.canfar.net/skaha/terminal:1.1.2"
PLURALS = {
    "SkahaPlatform": "skahaplatforms",
    "DockerContainer": "dockercontainers",
    "Compute": "computes",
    "Session": "sessions",
}
# A Session's phase is derived from its parts; it may only move up this ladder.
SESSION_RANK = {
    "Initializing": 0,
    "Waiting": 1,
    "Preparing": 2,
    "Available": 3,
    "Running": 3,
    "Releasing": 4,
    "Completed": 5,
    "Failed": 5,
    "Cancelled": 5,
    "Expired": 5,
}
TABLES = {"computes": COMPUTE_TRANSITIONS, "dockercontainers": CHECK_TRANSITIONS}
GAP = "~"  # in a phase sequence: the watch had to re-list here, moves in between were not seen


def reachable(table: dict[str, frozenset[str]], old: str, new: str) -> bool:
    """True when `new` can follow `old` through zero or more legal moves."""
    todo, seen = [old], {old}
    while todo:
        here = todo.pop()
        if here == new:
            return True
        for nxt in table.get(here, frozenset()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return False


# -- the simulated platform -----------------------------------------------------------------


@dataclass
class Platform:
    """A simulator served from a thread, and where it listens."""

    sim: Simulator
    url: str


@contextmanager
def simulator(seed: int, **knobs: Any) -> Iterator[Platform]:
    """A simulator with one user, no interactive cap, quick termination; stopped afterwards."""
    config = {
        "tokens": {TOKEN: USER},
        "seed": seed,
        "max_sessions": 100_000,
        "pending_s": 1.0,
        "terminate_s": 0.5,
        **knobs,
    }
    sim = Simulator(SimulatorConfig.model_validate(config))
    handle = sim.start_in_thread()
    try:
        yield Platform(sim, handle.base_url)
    finally:
        handle.stop()
        sim.close()


@contextmanager
def drawn_pending(
    sim: Simulator, seed: int, median: float = 1.5, cap: float = 6.0
) -> Iterator[None]:
    """Re-draw the simulator's Pending duration (lognormal, seeded) every 0.3 s.

    Interactive sessions take no SIM_* env, so this is how each notebook gets its own realistic
    Pending time; headless ones draw theirs into SIM_PENDING_SECONDS instead.
    """
    rng = random.Random(f"{seed}-pending")
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.3):
            sim.configure(pending_s=min(cap, rng.lognormvariate(0.0, 0.6) * median))

    thread = threading.Thread(target=run, name="drawn-pending", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def platform_objects(
    url: str, *, name: str = "local", secret: str = "skaha-token", token: str | None = TOKEN
) -> list[dict[str, Any]]:
    """A token Secret (unless `token` is None) and a SkahaPlatform naming it."""
    objs: list[dict[str, Any]] = []
    if token is not None:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret, "labels": MARKED},
                "stringData": {"token": token},
            }
        )
    objs.append(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SkahaPlatform",
            "metadata": {"name": name},
            "spec": {
                "skaha": {"url": f"{url}/skaha"},
                "cavern": {"url": f"{url}/arc", "user": USER},
                "tokenSecretRef": {"name": secret, "key": "token"},
            },
        }
    )
    return objs


def create(api: client.ApiClient, ns: str, obj: dict[str, Any]) -> None:
    """Create a Secret or one of our objects."""
    if obj["kind"] == "Secret":
        client.CoreV1Api(api).create_namespaced_secret(ns, obj)
        return
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURALS[obj["kind"]], obj
    )


def items(api: client.ApiClient, ns: str, plural: str) -> list[dict[str, Any]]:
    """Every object of one plural in the namespace."""
    found: list[dict[str, Any]] = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, ns, plural
    )["items"]
    return found


def phases(api: client.ApiClient, ns: str, plural: str = "sessions") -> dict[str, str | None]:
    """name -> status.phase of every object of one plural."""
    return {
        o["metadata"]["name"]: (o.get("status") or {}).get("phase") for o in items(api, ns, plural)
    }


# -- workloads ------------------------------------------------------------------------------


class Kind(StrEnum):
    """What a planned Session does, and so which phase it must end in."""

    NOTEBOOK = "notebook"  # interactive: Available until deleted
    JOB = "job"  # headless, exits 0 after a few seconds: Completed
    FAILING = "failing"  # headless, exits 3: Failed
    SERVICE = "service"  # headless, runs for an hour: Running until deleted


EXPECTED = {
    Kind.NOTEBOOK: "Available",
    Kind.JOB: "Completed",
    Kind.FAILING: "Failed",
    Kind.SERVICE: "Running",
}
DEFAULT_MIX = (
    Kind.NOTEBOOK,
    Kind.NOTEBOOK,
    Kind.JOB,
    Kind.JOB,
    Kind.JOB,
    Kind.FAILING,
    Kind.SERVICE,
)


@dataclass(frozen=True)
class Planned:
    """One Session of a workload: its manifest and the phase it must reach."""

    name: str
    kind: Kind
    body: dict[str, Any]

    @property
    def expected(self) -> str:
        """The phase this Session must settle in."""
        return EXPECTED[self.kind]


def session_body(
    name: str, kind: Kind, rng: random.Random, platform: str = "local", **spec: Any
) -> dict[str, Any]:
    """A Session manifest of one kind, with drawn Pending and run times for headless ones."""
    if kind is Kind.NOTEBOOK:
        image, compute = NOTEBOOK_IMAGE, {"type": "notebook", "cores": 1, "ramGiB": 2}
    else:
        env = {"SIM_PENDING_SECONDS": f"{min(6.0, rng.lognormvariate(0.0, 0.6) * 1.5):.2f}"}
        match kind:
            case Kind.JOB:
                env |= {"SIM_RUN_SECONDS": f"{rng.uniform(2.0, 8.0):.2f}", "SIM_LOG": "done"}
            case Kind.FAILING:
                env |= {"SIM_RUN_SECONDS": "2", "SIM_EXIT_CODE": "3", "SIM_LOG": "boom"}
            case _:
                env |= {"SIM_RUN_SECONDS": "3600"}
        image = HEADLESS_IMAGE
        compute = {"type": "headless", "command": "run.sh", "env": env}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": {
            "platformRef": platform,
            "executable": {"template": {"dockerContainer": {"image": image}}},
            "compute": {"template": compute},
            **spec,
        },
    }


def plan_sessions(
    rng: random.Random, count: int, prefix: str = "s", mix: tuple[Kind, ...] = DEFAULT_MIX
) -> list[Planned]:
    """`count` Sessions cycling through `mix`, shuffled by the seeded RNG."""
    kinds = [mix[i % len(mix)] for i in range(count)]
    rng.shuffle(kinds)
    return [
        Planned(f"{prefix}{i:03d}", k, session_body(f"{prefix}{i:03d}", k, rng))
        for i, k in enumerate(kinds)
    ]


def settle(
    api: client.ApiClient, ns: str, planned: list[Planned], timeout: float
) -> dict[str, str | None]:
    """Wait until every planned Session shows its expected phase; fail early on a wrong end."""
    return settle_to(api, ns, {p.name: p.expected for p in planned}, timeout)


def settle_to(
    api: client.ApiClient, ns: str, expected: dict[str, str | None], timeout: float
) -> dict[str, str | None]:
    """Wait until each named Session shows its phase (None: the Session is gone)."""
    terminal = {"Completed", "Failed", "Cancelled", "Expired"}
    deadline = time.monotonic() + timeout
    while True:
        last = phases(api, ns)
        off = {n: last.get(n) for n, want in expected.items() if last.get(n) != want}
        wrong = {n: p for n, p in off.items() if p in terminal}
        assert not wrong, f"Sessions ended in the wrong phase: {wrong}"
        if not off:
            return last
        if time.monotonic() > deadline:
            stuck = {n: _summary(api, ns, n) for n in off}
            raise AssertionError(f"after {timeout}s these Sessions are not as expected: {stuck}")
        time.sleep(0.5)


def _summary(api: client.ApiClient, ns: str, name: str) -> str:
    found = [o for o in items(api, ns, "sessions") if o["metadata"]["name"] == name]
    if not found:
        return "gone"
    st = found[0].get("status") or {}
    deleting = " (deleting)" if found[0]["metadata"].get("deletionTimestamp") else ""
    return f"{st.get('phase')}{deleting} {st.get('reason')}: {st.get('message')}"


# -- operator processes ---------------------------------------------------------------------


def _self_signed() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


_SELF_SIGNED = _self_signed()


@dataclass
class OperatorProc:
    """One operator process, its log and its metrics port."""

    proc: Any
    log: Path
    metrics_port: int
    # The bearer token a scrape presents: the operator serves /metrics over HTTPS and asks the
    # API server (TokenReview, SubjectAccessReview) whether its holder may read it.
    metrics_token: str = ""

    def metrics(self) -> str:
        """The Prometheus text the operator serves (its self-signed certificate is accepted)."""
        url = f"https://127.0.0.1:{self.metrics_port}/metrics"
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.metrics_token}"}
        )
        with urllib.request.urlopen(request, timeout=10, context=_SELF_SIGNED) as resp:
            text: str = resp.read().decode()
            return text

    def alive(self) -> bool:
        """True while the process runs."""
        return bool(self.proc.poll() is None)

    def wait_serving(self, timeout: float = 90.0) -> None:
        """Wait until the operator serves its metrics (it has imported and started up)."""

        def serving() -> bool:
            assert self.alive(), f"the operator exited:\n{self.log.read_text()[-3000:]}"
            try:
                self.metrics()
            except OSError:
                return False
            return True

        wait_for("the operator's metrics endpoint", serving, timeout)


class Operators:
    """The operator processes of one campaign, restricted to its namespace; all logs kept."""

    def __init__(self, cp: ControlPlane, ns: str, log_dir: Path, *extra: str) -> None:
        self.cp, self.ns, self.log_dir, self.extra = cp, ns, log_dir, extra
        self.started: list[OperatorProc] = []
        self.scraped: list[str] = []
        self._stack = ExitStack()

    def start(self, *extra: str, kubeconfig: Path | None = None) -> OperatorProc:
        """Start one more operator process (as admin unless `kubeconfig` names someone else)."""
        port = free_port()
        log = self.log_dir / f"operator-{len(self.started)}.log"
        argv = ["-n", self.ns, "--metrics-port", str(port), "--metrics-address", "127.0.0.1"]
        proc = self._stack.enter_context(
            operator_process(self.cp, log, *argv, *self.extra, *extra, kubeconfig=kubeconfig)
        )
        op = OperatorProc(proc, log, port, self.cp.token)
        self.started.append(op)
        return op

    def kill(self, op: OperatorProc) -> None:
        """SIGKILL: no clean-up handler, no last status write."""
        op.proc.kill()
        op.proc.wait(timeout=30)

    def scrape(self, op: OperatorProc) -> str:
        """Metrics of a live operator, kept for the secret grep."""
        text = op.metrics()
        self.scraped.append(text)
        return text

    def logs(self) -> str:
        """Every operator log of the campaign, concatenated."""
        return "\n".join(o.log.read_text(errors="replace") for o in self.started if o.log.exists())

    def __enter__(self) -> Operators:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


# -- what happened: statuses, launches, events ---------------------------------------------


@dataclass
class Seen:
    """What the recorder saw of one object."""

    phases: list[str] = field(default_factory=list)
    session_ids: set[str] = field(default_factory=set)
    session_name: str | None = None
    reasons: list[str] = field(default_factory=list)
    launch_attempts: int = 0


class Recorder:
    """Every status each object showed, in watch order, for a few plurals of one namespace.

    The watch resumes from the last resourceVersion it saw when the connection breaks (an API
    server restart), so no write is missed; a 410 (too old) re-lists and counts a gap. Every
    object seen is also grepped for the secrets.
    """

    def __init__(self, api: client.ApiClient, ns: str, plurals: tuple[str, ...]) -> None:
        self.api, self.ns, self.plurals = api, ns, plurals
        self.seen: dict[tuple[str, str], Seen] = {}
        self.leaks: list[str] = []
        self.gaps = 0
        self.reconnects = 0
        self.events = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        self._threads = [
            threading.Thread(target=self._run, args=(p,), daemon=True, name=f"rec-{p}")
            for p in plurals
        ]

    def _run(self, plural: str) -> None:
        custom = client.CustomObjectsApi(self.api)
        rv: str | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            self._watches.append(w)
            try:
                if rv is None:
                    listed = custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)
                    for obj in listed["items"]:
                        self._record(plural, obj)
                    rv = listed["metadata"]["resourceVersion"]
                for event in w.stream(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.ns,
                    plural,
                    resource_version=rv,
                    timeout_seconds=60,
                ):
                    obj = event["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    self._record(plural, obj)
            except client.ApiException as exc:
                if exc.status == 410:
                    # A restarted API server's watch cache starts at the current revision; what
                    # happened between our last event and the restart is re-listed, not replayed.
                    self._gap()
                    rv = None
                else:
                    self._pause()
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                self._pause()

    def _gap(self) -> None:
        with self._lock:
            self.gaps += 1
            for seen in self.seen.values():
                if seen.phases and seen.phases[-1] != GAP:
                    seen.phases.append(GAP)

    def _pause(self) -> None:
        if not self._stop.is_set():
            self.reconnects += 1
            self._stop.wait(0.5)

    def _record(self, plural: str, obj: dict[str, Any]) -> None:
        text = json.dumps(obj)
        status = obj.get("status") or {}
        with self._lock:
            self.events += 1
            self.leaks += [f"{plural} {obj['metadata']['name']}" for s in SECRETS if s in text]
            seen = self.seen.setdefault((plural, obj["metadata"]["name"]), Seen())
            phase = status.get("phase")
            if phase and seen.phases[-2:] == [phase, GAP]:
                seen.phases.pop()  # unchanged across the gap
            if phase and (not seen.phases or seen.phases[-1] != phase):
                seen.phases.append(phase)
            reason = status.get("reason")
            if reason and (not seen.reasons or seen.reasons[-1] != reason):
                seen.reasons.append(reason)
            launch = status.get("launch") or {}
            if launch.get("id"):
                seen.session_ids.add(launch["id"])
            seen.session_name = launch.get("name") or seen.session_name
            seen.launch_attempts = max(seen.launch_attempts, launch.get("attempts") or 0)

    def of(self, plural: str) -> dict[str, Seen]:
        """name -> what was seen, for one plural."""
        return {name: s for (p, name), s in self.seen.items() if p == plural}

    def regressions(self) -> list[str]:
        """Every recorded move that its kind's table (or the Session ladder) forbids."""
        bad = []
        for (plural, name), seen in self.seen.items():
            for (old, _), (new, across) in itertools.pairwise(_steps(seen.phases)):
                table = TABLES.get(plural)
                if plural == "sessions":
                    ok = SESSION_RANK[new] >= SESSION_RANK[old]
                elif table is None:
                    ok = True
                elif across:  # moves hidden by a re-list must still be a legal path
                    ok = reachable(table, old, new)
                else:
                    ok = new in table.get(old, frozenset())
                if not ok:
                    bad.append(f"{plural}/{name}: {' -> '.join(seen.phases)}")
                    break
        return bad

    def transitions(self) -> int:
        """How many phase changes were recorded, all kinds."""
        return sum(max(0, len(_steps(s.phases)) - 1) for s in self.seen.values())

    def __enter__(self) -> Recorder:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for w in self._watches:
            w.stop()
        for t in self._threads:
            t.join(timeout=70)


def _steps(phases: list[str]) -> list[tuple[str, bool]]:
    """(phase, True when a re-list gap came just before it), gaps themselves dropped."""
    out: list[tuple[str, bool]] = []
    gap = False
    for phase in phases:
        if phase == GAP:
            gap = True
            continue
        out.append((phase, gap))
        gap = False
    return out


def launch_check(sim: Simulator, rec: Recorder) -> dict[str, Any]:
    """Launch accounting: duplicates by name, Computes with more than one id, and the totals."""
    launched = Counter(d["name"] for d in sim.launches())
    computes = rec.of("computes")
    many_ids = {n: sorted(s.session_ids) for n, s in computes.items() if len(s.session_ids) > 1}
    ours = {s.session_name for s in computes.values() if s.session_name}
    per_compute = {n: launched.get(s.session_name or "", 0) for n, s in computes.items()}
    return {
        "launches": sum(launched.values()),
        "adopted": sum(1 for s in computes.values() if "Adopted" in s.reasons),
        "relaunched": sum(max(0, s.launch_attempts - 1) for s in computes.values()),
        "duplicate_names": {n: c for n, c in launched.items() if c > 1},
        "computes_with_many_ids": many_ids,
        "launched_computes": sum(1 for c in per_compute.values() if c == 1),
        "unknown_launches": sorted(set(launched) - ours),
    }


def release_all(api: client.ApiClient, ns: str, sim: Simulator, timeout: float) -> list[str]:
    """Delete every Session; wait until they, their parts and their Skaha sessions are gone.

    Returns the Skaha sessions still alive (should be none); a finished job that Skaha still
    lists holds nothing and is reported by `lingering` instead.
    """
    custom = client.CustomObjectsApi(api)
    for name in phases(api, ns):
        custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "sessions", name)
    wait_for(
        "Sessions and parts gone",
        lambda: not any(items(api, ns, p) for p in ("sessions", "computes", "dockercontainers")),
        timeout,
        every=0.5,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and active(sim):
        time.sleep(0.2)
    return active(sim)


def active(sim: Simulator) -> list[str]:
    """Names of our Skaha sessions still Pending, Running or Terminating."""
    ours = {d["name"] for d in sim.launches()}
    live = {"Pending", "Running", "Terminating"}
    return [s["name"] for s in sim.sessions() if s["name"] in ours and s["status"] in live]


def lingering(sim: Simulator) -> list[str]:
    """Finished Skaha sessions still listed (Skaha drops them at their TTL)."""
    return [s["name"] for s in sim.sessions() if s["status"] in {"Completed", "Failed"}]


def event_texts(api: client.ApiClient, ns: str) -> str:
    """Every Event's reason and message in the namespace, one per line."""
    events = client.CoreV1Api(api).list_namespaced_event(ns).items
    return "\n".join(f"{e.reason}: {e.message}" for e in events)


def secret_hits(captured: dict[str, str]) -> dict[str, int]:
    """source -> how many times any secret appears in what was captured from it."""
    return {
        source: sum(text.count(s) for s in SECRETS)
        for source, text in captured.items()
        if any(s in text for s in SECRETS)
    }
