"""Operator start-up and clean-up: kopf settings under our API group, shared state in memo.

The finalizer lives under `skaha.broker.dev` so it is recognisably ours
(docs/kubernetes-notes.md §5). kopf's progress and diffbase bookkeeping is kept in memory
(runtime/persistence.py), never in our status schema; requeues are in-memory timers
(runtime/requeue.py) and observed objects come from a watch-fed cache (runtime/watch.py): see
docs/performance.md for what each saves.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from skaha_operator import GROUP, VERSION, metrics
from skaha_operator.controllers.base import Controller
from skaha_operator.controllers.context import Context, OperatorConfig
from skaha_operator.controllers.platforms import PlatformCache
from skaha_operator.controllers.registry import CONTROLLERS
from skaha_operator.k8s.api import Kube, make_api_client
from skaha_operator.k8s.objects import ObjectCache
from skaha_operator.platform.base import CallRecord
from skaha_operator.runtime.driver import step_once
from skaha_operator.runtime.persistence import MemoryDiffBaseStorage, MemoryProgressStorage
from skaha_operator.runtime.requeue import Key, Runner
from skaha_operator.runtime.state import OperatorState
from skaha_operator.runtime.watch import observe_event

API_THREADS = 16


def _record_call(call: CallRecord) -> None:
    metrics.SKAHA_REQUESTS.labels(call.service, call.method, call.route, call.code).inc()


@kopf.on.startup()
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf and build the shared clients."""
    config = getattr(memo, "config", None) or OperatorConfig()
    settings.persistence.finalizer = config.finalizer
    progress, diffbase = MemoryProgressStorage(prefix=GROUP), MemoryDiffBaseStorage(prefix=GROUP)
    settings.persistence.progress_storage = progress
    settings.persistence.diffbase_storage = diffbase
    settings.posting.reporting_component = "skaha-operator"
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Our own CAS retries are short; kopf's default 60 s backoff for unexpected errors is too slow.
    settings.execution.default_backoff = 5
    kube = Kube(
        make_api_client(), on_conflict=lambda kind: metrics.CAS_CONFLICTS.labels(kind).inc()
    )
    cache = ObjectCache(kube.get)
    # The synchronous client runs in the loop's default executor; its default size
    # (CPUs + 4) queues the API calls of hundreds of objects behind a handful of threads.
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
        ),
        cache=cache,
        post=_post_event,
    )
    st = OperatorState(ctx=ctx, forgetters=[progress.forget, diffbase.forget])
    for controller in CONTROLLERS:
        st.requeuer.register(controller.plural, _runner(controller, st))
    kube.on_stored = lambda plural, body: observe_event(plural, "MODIFIED", body, st)
    memo.state = st


def _post_event(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    # kopf's poster reads only the object's reference fields, which a plain dict has.
    obj: Any = body
    kopf.event(obj, type=type_, reason=reason, message=message)


def _runner(controller: Controller, st: OperatorState) -> Runner:
    async def run(key: Key) -> float | None:
        body = await st.ctx.cache.get(*key)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None  # gone, or the delete handler drives it now
        return (await step_once(controller, st, key, body)).requeue_after

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
    """Close the platform clients."""
    st = getattr(memo, "state", None)
    if isinstance(st, OperatorState):
        await st.requeuer.aclose()
        await st.ctx.platforms.aclose()
        st.ctx.kube.api.close()
