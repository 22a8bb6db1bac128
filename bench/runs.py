"""One benchmark run each: the floor client, the operator (one or more instances, with a restart)
and the bare kopf baseline, all against one control plane and one simulator process.

Each run gets fresh namespaces, creates its N Sessions at once and watches them until every one is
usable (Available or Running), then lets trailing writes land before the second snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from kubernetes import client
from pydantic import SecretStr

from bench.floor import floor_one
from bench.happy_path import api_client, lease_writes, samples, scrape, session
from bench.kapi import KubeApi, follow
from bench.measure import (
    WRITE_VERBS,
    ApiCost,
    ApiSnapshot,
    cpu_seconds,
    memory_kib,
    operator_calls,
    reconciles,
)
from skaha_operator import GROUP, VERSION
from skaha_operator.controlplane import ControlPlane
from skaha_operator.controlplane.kit import (
    create,
    install_finalizer_policy,
    operator_process,
    platform_objects,
)
from skaha_operator.controlplane.processes import free_port
from skaha_operator.platform.clients import PlatformClients, PlatformSettings

USABLE = frozenset({"Available", "Running"})
SETTLE_S = 2.0  # trailing writes (the last Events, summaries) after the last Session is usable
# Production timings (the CLI defaults), not the tests' short ones.
OPERATOR_ARGS = ("--poll-base", "1", "--poll-cap", "30", "--resync", "60",
                 "--http-timeout", "30", "--adopt-grace", "90")  # fmt: skip


@dataclass
class Result:
    """What one run measured."""

    who: str
    n: int
    elapsed: float = 0.0
    times: dict[str, float] = field(default_factory=dict)
    api: ApiCost = field(default_factory=ApiCost)
    calls: Counter[str] = field(default_factory=Counter)
    cpu_s: float | None = None
    peak_rss_kib: int | None = None
    rss_growth_kib: int | None = None
    resume_s: float | None = None
    resume_writes: float | None = None
    resume_rss_kib: int | None = None  # the restarted operator's peak, N present
    resume_looks: int | None = None  # Skaha looks by id made by then (the rest come spread)
    instances: int = 1
    polls: int | None = None  # Skaha polls until Running, summed from the Computes' status
    server_cpu_s: float | None = None  # kube-apiserver + etcd over the window
    # After the run: RSS (KiB) of kube-apiserver and etcd, and etcd's database size (bytes).
    server_memory: dict[str, int] = field(default_factory=dict)
    # Steady state after all are usable (the resync sweeps, polls of running jobs): per hour.
    idle_s: float = 0.0
    idle_cpu_s: float | None = None
    idle_api: ApiCost | None = None
    idle_calls: int | None = None
    shares: list[float] | None = None  # replicas on one namespace: the launches each made
    lease_writes_per_s: float | None = None  # the replicas' Lease renewals over the window

    def calls_to_usable(self) -> float | None:
        """Skaha calls per Session to make it usable: image lists, launches, polls to Running."""
        if self.polls is None:
            return sum(self.calls.values()) / self.n if self.calls else None
        fixed = sum(v for k, v in self.calls.items() if k in {"GET /v1/image", "POST /v1/session"})
        return (fixed + self.polls) / self.n

    @property
    def rate(self) -> float:
        """Sessions per second: N over the time from the first create to the last usable."""
        return self.n / self.elapsed if self.elapsed else 0.0


def server_cpu(cp: ControlPlane) -> float:
    """CPU seconds of kube-apiserver and etcd so far."""
    return sum(
        cpu_seconds(c.proc.pid)
        for c in cp.children
        if c.name in {"kube-apiserver", "etcd"} and c.proc is not None
    )


def server_memory(cp: ControlPlane) -> dict[str, int]:
    """RSS (KiB) of kube-apiserver and etcd now, and the size of etcd's database (bytes)."""
    out = {
        f"{c.name} RSS KiB": memory_kib(c.proc.pid)["VmRSS"]
        for c in cp.children
        if c.name in {"kube-apiserver", "etcd"} and c.proc is not None
    }
    text = scrape(f"{cp.server}/metrics", {"Authorization": f"Bearer {cp.token}"}, cp.ssl_context())
    sizes = samples(text, "apiserver_storage_size_bytes") or samples(
        text, "apiserver_storage_db_total_size_in_bytes"
    )
    if sizes:
        out["etcd db bytes"] = int(max(value for _, value in sizes))
    return out


def prepare_namespace(cp: ControlPlane, ns: str, sim_url: str) -> None:
    """A namespace with the token Secret and a SkahaPlatform pointing at the simulator."""
    with api_client(cp) as api:
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))
        )
        for obj in platform_objects(ns, sim_url):
            create(api, ns, obj)


def wait_platform(cp: ControlPlane, ns: str, timeout: float = 120) -> None:
    """Until the operator has probed the namespace's SkahaPlatform (not per-Session cost)."""
    deadline = time.monotonic() + timeout
    with api_client(cp) as api:
        custom = client.CustomObjectsApi(api)
        while time.monotonic() < deadline:
            got = cast(
                dict[str, Any],
                custom.get_namespaced_custom_object(GROUP, VERSION, ns, "skahaplatforms", "local"),
            )
            if (got.get("status") or {}).get("phase") == "Available":
                return
            time.sleep(0.2)
    raise TimeoutError(f"SkahaPlatform in {ns} not Available after {timeout}s")


async def _watch_usable(
    api: KubeApi, ns: str, rv: str, usable: dict[str, float], want: int, done: asyncio.Event
) -> None:
    def seen(obj: dict[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name")
        if name and name not in usable and (obj.get("status") or {}).get("phase") in USABLE:
            usable[name] = time.monotonic()
            if len(usable) >= want:
                done.set()

    await follow(api, "sessions", ns, rv, seen)


async def create_and_watch(
    cp: ControlPlane,
    namespaces: list[str],
    n: int,
    timeout: float,  # noqa: ASYNC109 (bounds only the wait for usable; a timeout is reported)
) -> tuple[float, dict[str, float]]:
    """Create N Sessions at once (round-robin over namespaces); wait until all are usable."""
    api = KubeApi(cp)
    usable: dict[str, float] = {}
    created: dict[str, float] = {}
    done = asyncio.Event()
    watchers = []
    try:
        for ns in namespaces:
            rv = (await api.list("sessions", ns))["metadata"]["resourceVersion"]
            watchers.append(asyncio.create_task(_watch_usable(api, ns, rv, usable, n, done)))
        start = time.monotonic()

        async def one(i: int) -> None:
            name, ns = f"s{i}", namespaces[i % len(namespaces)]
            created[name] = time.monotonic()
            await api.create("sessions", ns, session(name))

        await asyncio.gather(*(one(i) for i in range(n)))
        with contextlib.suppress(TimeoutError):  # reported: fewer usable than created
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await api.aclose()
    elapsed = (max(usable.values()) - start) if usable else float("inf")
    return elapsed, {k: usable[k] - created[k] for k in usable}


def run_floor(cp: ControlPlane, sim_url: str, ns: str, n: int) -> Result:
    """The floor client in this process, against the API server and the simulator."""
    prepare_namespace(cp, ns, sim_url)
    result = Result("floor", n)
    calls: Counter[str] = Counter()

    def count(call: Any) -> None:
        calls[f"{call.method} {call.route}"] += 1

    async def go() -> tuple[float, dict[str, float]]:
        api = KubeApi(cp)
        settings = PlatformSettings(
            skaha_url=f"{sim_url}/skaha", cavern_url=f"{sim_url}/arc",
            token=SecretStr("tok-alice"), limits=httpx.Limits(max_connections=64),
            timeout=httpx.Timeout(60.0, pool=None),
        )  # fmt: skip
        skaha = PlatformClients.create(settings, on_call=count)
        spec = session("x")["spec"]
        start = time.monotonic()
        starts: dict[str, float] = {}

        async def one(i: int) -> tuple[str, float]:
            name = f"s{i}"
            starts[name] = time.monotonic()
            return name, await floor_one(api, skaha, ns, name, spec)

        try:
            done = dict(await asyncio.gather(*(one(i) for i in range(n))))
        finally:
            await skaha.aclose()
            await api.aclose()
        return max(done.values()) - start, {k: done[k] - starts[k] for k in done}

    before, server0 = ApiSnapshot.take(cp), server_cpu(cp)
    result.elapsed, result.times = asyncio.run(go())
    time.sleep(SETTLE_S)
    result.api = ApiCost.between(before, ApiSnapshot.take(cp))
    result.server_cpu_s = server_cpu(cp) - server0
    result.calls = calls
    return result


def _metrics_urls(ports: list[int]) -> list[str]:
    return [f"http://127.0.0.1:{p}/metrics" for p in ports]


def _sum_calls(urls: list[str]) -> Counter[tuple[str, str, str]]:
    total: Counter[tuple[str, str, str]] = Counter()
    for url in urls:
        total += operator_calls(url)
    return total


def run_operator(
    cp: ControlPlane,
    sim_url: str,
    namespaces: list[str],
    n: int,
    workdir: Path,
    timeout: float,
    restart: bool = True,
    replicas: int = 1,
    idle: float = 0.0,
) -> Result:
    """The operator, one instance per namespace (`-n`), then one restart with N objects present;
    or `replicas` instances on one namespace, splitting it by shard Leases."""
    if replicas > 1:
        (ns,) = namespaces
        who, instances = f"{replicas} replicas, one namespace", replicas
        placed = [(ns, f"replica-{i}") for i in range(replicas)]
    else:
        who = "operator" if len(namespaces) == 1 else f"operator x{len(namespaces)}"
        instances = len(namespaces)
        placed = [(ns, ns) for ns in namespaces]
    result = Result(who, n, instances=instances)
    for ns in namespaces:
        prepare_namespace(cp, ns, sim_url)
    with api_client(cp) as api:  # as `helm install` makes it on Kubernetes 1.36 (design.md §4.6)
        install_finalizer_policy(api, f"bench-{namespaces[0]}", namespaces)
    ports = [free_port() for _ in placed]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                operator_process(
                    cp,
                    workdir / f"operator-{ident}.log",
                    *OPERATOR_ARGS,
                    "-n",
                    ns,
                    "--identity",
                    ident,
                    "--metrics-port",
                    str(port),
                    "--metrics-address",
                    "127.0.0.1",
                    "--metrics-insecure",
                )
            )
            for (ns, ident), port in zip(placed, ports, strict=True)
        ]
        for ns in namespaces:
            wait_platform(cp, ns)
        if replicas > 1:
            wait_balanced(cp, namespaces[0], [ident for _, ident in placed])
        time.sleep(1.0)
        urls = _metrics_urls(ports)
        before, calls0 = ApiSnapshot.take(cp), _sum_calls(urls)
        leases0, window0, server0 = lease_writes(cp), time.monotonic(), server_cpu(cp)
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        rss0 = [memory_kib(p.pid)["VmRSS"] for p in procs]
        result.elapsed, result.times = asyncio.run(create_and_watch(cp, namespaces, n, timeout))
        # Platform calls up to the moment all are usable (running headless jobs go on polling).
        for (method, route, _code), count in (_sum_calls(urls) - calls0).items():
            result.calls[f"{method} {route}"] += count
        if replicas > 1:
            launched = [
                sum(v for (m, r, _), v in operator_calls(u).items() if (m, r) == LAUNCH)
                for u in urls
            ]
            result.shares = [count / max(1, sum(launched)) for count in launched]
        time.sleep(SETTLE_S)
        result.api = ApiCost.between(before, ApiSnapshot.take(cp))
        result.lease_writes_per_s = (lease_writes(cp) - leases0) / (time.monotonic() - window0)
        result.server_cpu_s = server_cpu(cp) - server0
        result.server_memory = server_memory(cp)
        result.polls = _polls(cp, namespaces)
        result.cpu_s = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True))
        mem = [memory_kib(p.pid) for p in procs]
        result.peak_rss_kib = max(m["VmHWM"] for m in mem)
        result.rss_growth_kib = sum(m["VmRSS"] for m in mem) - sum(rss0)
        if idle > 0:
            # Nothing changes any more: what remains is the resync sweeps and the polls of the
            # running jobs (backing off to the cap), the steady cost of N Sessions.
            snap, cpu1 = ApiSnapshot.take(cp), [cpu_seconds(p.pid) for p in procs]
            calls1 = sum(_sum_calls(urls).values())
            time.sleep(idle)
            result.idle_s = idle
            result.idle_api = ApiCost.between(snap, ApiSnapshot.take(cp))
            result.idle_cpu_s = sum(
                cpu_seconds(p.pid) - c for p, c in zip(procs, cpu1, strict=True)
            )
            result.idle_calls = sum(_sum_calls(urls).values()) - calls1
    if restart and len(namespaces) == 1:
        (result.resume_s, result.resume_writes, result.resume_rss_kib,
         result.resume_looks) = _resume(cp, namespaces[0], n, workdir)  # fmt: skip
    return result


LAUNCH = ("POST", "/v1/session")
LOOK = ("GET", "/v1/session/{id}")


def wait_balanced(cp: ControlPlane, ns: str, identities: list[str], timeout: float = 120) -> None:
    """Until the replicas hold the shards evenly (not per-Session cost: the split is made once)."""
    deadline = time.monotonic() + timeout
    with api_client(cp) as api:
        coord = client.CoordinationV1Api(api)
        while time.monotonic() < deadline:
            held = Counter(
                str(lease.spec.holder_identity if lease.spec is not None else None)
                for lease in coord.list_namespaced_lease(ns).items
                if lease.metadata is not None and "-shard-" in (lease.metadata.name or "")
            )
            if sorted(held) == sorted(identities) and max(held.values()) - min(held.values()) <= 1:
                return
            time.sleep(0.5)
    raise TimeoutError(f"the shards of {ns} were not split among {identities} in {timeout}s")


def _polls(cp: ControlPlane, namespaces: list[str]) -> int:
    """Polls each Compute made until Running (its status.polls), summed."""
    with api_client(cp) as api:
        custom = client.CustomObjectsApi(api)
        return sum(
            int((c.get("status") or {}).get("polls") or 0)
            for ns in namespaces
            for c in cast(
                dict[str, Any],
                custom.list_namespaced_custom_object(GROUP, VERSION, ns, "computes"),
            )["items"]
        )


def _resume(
    cp: ControlPlane, ns: str, n: int, workdir: Path
) -> tuple[float, float, int, int | None]:
    """Start a fresh operator with N Sessions present: seconds until every Session and Compute
    was reconciled once, the API writes per Session that cost, its peak RSS (KiB) and how many
    running Computes had looked at their Skaha session by then."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    before = ApiSnapshot.take(cp)
    started = time.monotonic()
    with operator_process(
        cp, workdir / f"operator-{ns}-resume.log", *OPERATOR_ARGS, "-n", ns,
        "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--metrics-insecure",
    ) as proc:  # fmt: skip
        deadline = started + 600
        took, looks = float("inf"), None
        while time.monotonic() < deadline:
            try:
                seen = reconciles(url)
            except OSError:
                seen = Counter()
            if seen["Session"] >= n and seen["Compute"] >= n:
                took = time.monotonic() - started
                looks = sum(v for (m, r, _), v in operator_calls(url).items() if (m, r) == LOOK)
                break
            time.sleep(0.2)
        time.sleep(SETTLE_S)
        cost = ApiCost.between(before, ApiSnapshot.take(cp))
        peak = memory_kib(proc.pid)["VmHWM"]
    return took, cost.per(n, WRITE_VERBS), peak, looks


def run_bare(
    cp: ControlPlane, sim_url: str, ns: str, n: int, workdir: Path, timeout: float
) -> Result:
    """The bare kopf operator as a subprocess on its own namespace."""
    prepare_namespace(cp, ns, sim_url)
    result = Result("bare kopf", n)
    calls_file = workdir / f"bare-{ns}.json"
    argv = [sys.executable, "-m", "bench.bare_kopf", "--namespace", ns,
            "--skaha-url", f"{sim_url}/skaha", "--calls-file", str(calls_file)]  # fmt: skip
    env = {"KUBECONFIG": str(cp.kubeconfig), "PATH": "/usr/bin:/bin"}
    with (workdir / f"bare-{ns}.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        time.sleep(3.0)  # kopf's start-up: watches established
        before, server0 = ApiSnapshot.take(cp), server_cpu(cp)
        cpu0 = cpu_seconds(proc.pid)
        result.elapsed, result.times = asyncio.run(create_and_watch(cp, [ns], n, timeout))
        time.sleep(SETTLE_S)
        result.api = ApiCost.between(before, ApiSnapshot.take(cp))
        result.server_cpu_s = server_cpu(cp) - server0
        result.cpu_s = cpu_seconds(proc.pid) - cpu0
        result.peak_rss_kib = memory_kib(proc.pid)["VmHWM"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if calls_file.exists():
        result.calls = Counter(json.loads(calls_file.read_text()))
    return result
