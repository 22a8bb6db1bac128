"""Operator start-up and clean-up: shared state in memo, shards, the watches, resync sweeps.

kopf runs the process (signals, start-up and clean-up, the liveness endpoint); the objects are
the runtime's own: it lists and watches every kind itself (runtime/watch.py), steps each object
under its lock (runtime/driver.py), puts its own finalizer on and takes it off, keeps requeues as
in-memory timers (runtime/requeue.py), resyncs with a sweep over the cache (runtime/resync.py),
posts Events itself (k8s/events.py) and steps only the shards it holds on Leases
(runtime/shards.py): see docs/performance.md for what each saves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION, metrics
from skaha_operator.controllers.base import Controller
from skaha_operator.controllers.context import Context, OperatorConfig
from skaha_operator.controllers.platforms import PlatformCache
from skaha_operator.controllers.registry import CONTROLLERS
from skaha_operator.k8s.api import Kube, make_api_client
from skaha_operator.k8s.events import EventPoster
from skaha_operator.k8s.leases import Leases
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.k8s.watching import Streams
from skaha_operator.platform.base import CallRecord
from skaha_operator.runtime import trace
from skaha_operator.runtime.driver import step_once
from skaha_operator.runtime.requeue import Key, Runner
from skaha_operator.runtime.resync import resync_forever, spread_first_looks
from skaha_operator.runtime.shards import LeaseConfig, LeaseShards, default_identity
from skaha_operator.runtime.state import OperatorState
from skaha_operator.runtime.watch import observe_event, start_watches

# How many requests to the API server are in flight at once: the connections of the event loop's
# client (k8s/http.py) and the threads of the synchronous one (Secrets, ConfigMaps). The API server
# answers a burst faster with more of them in flight (etcd commits them together); measured in
# docs/performance.md. SKAHA_OPERATOR_API_THREADS overrides it.
API_THREADS = int(os.environ.get("SKAHA_OPERATOR_API_THREADS", "16"))
LEASE_THREADS = 8  # a round renews every held shard at once (k8s/leases.py)
logger = logging.getLogger(__name__)
# A platform is probed again now and then: options and the API version can change under us.
PLATFORM_RESYNC = 300.0
COMPONENT = "skaha-operator"  # Events' reporting component


def _record_call(call: CallRecord) -> None:
    metrics.SKAHA_REQUESTS.labels(call.service, call.method, call.route, call.code).inc()


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Build the shared clients, take the shards, list every kind and start the watches."""
    config = getattr(memo, "config", None) or OperatorConfig()
    leases: LeaseConfig | None = getattr(memo, "leases", None)
    # kopf's own retries (of a failing probe, say) wait 5 s, not its default minute.
    settings.execution.default_backoff = 5
    kube = Kube(
        make_api_client(pool=API_THREADS),
        on_conflict=lambda kind: metrics.CAS_CONFLICTS.labels(kind).inc(),
    )
    cache = ObjectCache(kube.get)
    # The synchronous client (Secrets, ConfigMaps) runs in the loop's default executor; its
    # default size (CPUs + 4) would queue those calls behind a handful of threads.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="kube")
    )
    ctx = Context(
        config=config,
        kube=kube,
        platforms=PlatformCache(
            kube,
            on_call=_record_call,
            http_timeout=config.http_timeout,
            reader=cache.get,
            ca_file=config.ca_bundle,
            hosts=config.allowed_hosts,
        ),
        cache=cache,
    )
    st = OperatorState(ctx=ctx)
    # Events name the replica that wrote them (e.g. which one launched a Compute).
    st.events = EventPoster(kube, COMPONENT, leases.identity if leases else default_identity())
    ctx.post = st.events.post
    st.tracer = trace.from_env()
    if st.tracer is not None:
        _trace_hooks(st, st.tracer)
    for controller in CONTROLLERS:
        st.requeuer.register(controller.plural, runner(controller, st))
    kube.on_stored = lambda plural, body: observe_event(plural, "MODIFIED", body, st)
    memo.state = st
    if leases is not None:
        lease_api = Leases(make_api_client(pool=LEASE_THREADS), leases.namespace, LEASE_THREADS)
        st.shards = LeaseShards(
            leases,
            lease_api,
            on_takeover=lambda shards: _take_over(st, shards),
            on_resume=lambda keys: _resume(st, keys),
        )
        # Before the objects are listed: what is held now is stepped at the listing, what
        # comes later by the takeover.
        await st.shards.start()
    st.streams = Streams(kube)
    listed = await start_watches(st, st.streams, list(getattr(memo, "namespaces", None) or []))
    logger.info("listed %d objects; watching", listed)
    loop = asyncio.get_running_loop()
    for controller in CONTROLLERS:
        plural = controller.plural
        interval = PLATFORM_RESYNC if plural == "skahaplatforms" else config.resync_interval
        st.background.append(
            loop.create_task(resync_forever(st, plural, interval), name=f"resync-{plural}")
        )


def _trace_hooks(st: OperatorState, tracer: trace.Tracer) -> None:
    """Record Kubernetes requests, platform calls and wake-ups with the object they serve."""

    def request(method: str, started: float, ended: float) -> None:
        key = trace.current.get() or ("", "", "")
        tracer.record("kube", p=key[0], ns=key[1], n=key[2], m=method, t0=started, t=ended)

    def fired(key: Key, late: float) -> None:
        tracer.record("fire", p=key[0], ns=key[1], n=key[2], late=late)

    st.ctx.kube.on_request = request
    st.requeuer.on_fire = fired
    st.ctx.platforms.on_call = _with_trace(tracer)


def _with_trace(tracer: trace.Tracer) -> Callable[[CallRecord], None]:
    def call(record: CallRecord) -> None:
        _record_call(record)
        key = trace.current.get() or ("", "", "")
        tracer.record("skaha", p=key[0], ns=key[1], n=key[2], m=record.method, r=record.route,
                      t0=record.started, t=record.started + record.seconds)  # fmt: skip

    return call


def _resume(st: OperatorState, keys: frozenset[Key]) -> None:
    """A lapsed hold was renewed: the steps refused meanwhile run now (runtime/shards.py)."""
    for key in keys:
        st.requeuer.schedule(key, 0.0)


def _take_over(st: OperatorState, shards: frozenset[int]) -> None:
    """Shards became ours: step every cached object in them now (runtime/shards.py)."""
    if not isinstance(st.shards, LeaseShards):
        return
    count = 0
    for controller in CONTROLLERS:
        taken = [
            body
            for body in st.ctx.cache.each(controller.plural)
            if st.shards.shard(str(body["metadata"]["namespace"]), body) in shards
        ]
        if controller.plural == "computes":
            spread_first_looks(st, taken)
        for body in taken:
            meta = body["metadata"]
            st.requeuer.schedule((controller.plural, meta["namespace"], meta["name"]), 0.0)
            count += 1
    metrics.TAKEOVER_STEPS.inc(count)


def runner(controller: Controller, st: OperatorState) -> Runner:
    """How the wake-ups step an object of the controller's kind (runtime/driver.py)."""

    async def run(key: Key) -> float | None:
        return await step_once(controller, st, key)

    return run


@kopf.on.probe(id="api")
async def probe_api(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Liveness content: one list round trip to the API server for our kinds (raises if it fails).

    kopf restarts a silent watch stream by itself (settings.watching.inactivity_timeout,
    docs/kubernetes-notes.md §3); what it cannot see is an API server we can no longer reach or
    are no longer allowed to read. A failing probe handler makes /healthz answer 500, so the
    kubelet restarts the pod after the probe's failureThreshold.
    """
    st = getattr(memo, "state", None)
    if not isinstance(st, OperatorState):
        raise kopf.PermanentError("operator state missing: the startup handler did not run")
    namespaces: list[str] = list(getattr(memo, "namespaces", None) or [])
    started = time.perf_counter()
    try:
        if namespaces:
            found = await asyncio.to_thread(
                st.ctx.kube.custom.list_namespaced_custom_object,
                GROUP, VERSION, namespaces[0], "sessions", limit=1, _request_timeout=5,
            )  # fmt: skip
        else:
            found = await asyncio.to_thread(
                st.ctx.kube.custom.list_cluster_custom_object,
                GROUP, VERSION, "sessions", limit=1, _request_timeout=5,
            )  # fmt: skip
    except Exception as exc:
        # Permanent: kopf would otherwise retry the probe with backoff inside the request.
        raise kopf.PermanentError(f"the API server did not answer a list: {exc}") from exc
    meta = found.get("metadata", {}) if isinstance(found, dict) else {}
    return {
        "apiLatencyMs": round((time.perf_counter() - started) * 1000, 1),
        "resourceVersion": meta.get("resourceVersion"),
    }


@kopf.on.cleanup()
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the sweeps, release the shards, cancel the wake-ups, close the clients."""
    st = getattr(memo, "state", None)
    if isinstance(st, OperatorState):
        for task in st.background:
            task.cancel()
        await asyncio.gather(*st.background, return_exceptions=True)
        await st.requeuer.aclose()
        if st.events is not None:
            await st.events.aclose()
        if st.streams is not None:
            await st.streams.aclose()
        await st.shards.aclose()  # stepped nothing since: released at once, for others to take
        if st.tracer is not None:
            st.tracer.close()
        await st.ctx.platforms.aclose()
        await st.ctx.kube.aclose()
